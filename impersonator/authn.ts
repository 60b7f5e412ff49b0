// Who is calling: the parts of the generic apiserver's authentication chain the proxy keeps.
// A verified client certificate wins over a bearer token (x509 comes first in Kubernetes' union
// authenticator); a request with neither is anonymous, whatever other credentials it carries.
import { createHash, type X509Certificate } from "node:crypto";
import { children, decodeObjectIdentifier, type Element, readElement } from "../kube/der.ts";
import type { UserInfo } from "../kube/userinfo.ts";
import type { RequestInfo } from "./requestinfo.ts";

export const anonymousUsername = "system:anonymous";
export const unauthenticatedGroup = "system:unauthenticated";
export const authenticatedGroup = "system:authenticated";

export function anonymousUser(): UserInfo {
  return { username: anonymousUsername, groups: [unauthenticatedGroup], extra: {} };
}

export const credentialIDKey = "authentication.kubernetes.io/credential-id";

/**
 * The certificate's user as Kubernetes' CommonNameUserConversion reads it: CN is the username,
 * each O a group, no UID, and the certificate's fingerprint as its credential ID (the extra
 * kube-apiserver 1.32+ and upstream add, which audit logs and WhoAmI show). An empty CN
 * authenticates nobody (undefined).
 */
export function userFromCertificate(cert: X509Certificate): UserInfo | undefined {
  let read = certificateUsers.get(cert);
  if (!read) {
    const { commonName, organizations } = subjectNames(cert.raw);
    read = {
      commonName,
      organizations,
      credentialID: commonName === "" ? "" : certificateCredentialID(cert),
    };
    certificateUsers.set(cert, read);
  }
  if (read.commonName === "") return undefined;
  return withAuthenticatedGroup({
    username: read.commonName,
    groups: [...read.organizations],
    extra: { [credentialIDKey]: [read.credentialID] },
  });
}

// What a certificate says, read once per parsed certificate: the proxy parses a client's
// certificate once per connection, and a client sends many requests over one (the DER walk and
// the SHA-256 were a tenth of the proxy's own CPU per request).
const certificateUsers = new WeakMap<
  X509Certificate,
  { commonName: string; organizations: readonly string[]; credentialID: string }
>();

/** `X509SHA256=<hex>`: the SHA-256 of the leaf's DER, as kube-apiserver's x509 authenticator names it. */
export function certificateCredentialID(cert: X509Certificate): string {
  return `X509SHA256=${createHash("sha256").update(cert.raw).digest("hex")}`;
}

/**
 * Kubernetes' AuthenticatedGroupAdder: every authenticated user but system:anonymous gets
 * system:authenticated unless it already has it or system:unauthenticated.
 */
export function withAuthenticatedGroup(user: UserInfo): UserInfo {
  if (user.username === anonymousUsername) return user;
  if (user.groups.some((g) => g === authenticatedGroup || g === unauthenticatedGroup)) return user;
  return { ...user, groups: [...user.groups, authenticatedGroup] };
}

/**
 * The bearer token as Kubernetes' bearertoken authenticator finds it: `Bearer <token>` (scheme in
 * any case); anything else, including an empty token or Basic auth, is no token at all.
 */
export function bearerToken(headers: Record<string, string | string[]>): string | undefined {
  const raw = headers.authorization;
  const value = (Array.isArray(raw) ? raw[0] : raw)?.trim();
  if (!value) return undefined;
  const parts = value.split(" ");
  if (parts.length < 2 || parts[0]!.toLowerCase() !== "bearer") return undefined;
  return parts[1] === "" ? undefined : parts[1];
}

/**
 * Which anonymous requests the proxy forwards; see conciergeCredentialRequest for the default and
 * clusterAnonymousPolicy for what the Concierge uses.
 */
export type AnonymousPolicy = (info: RequestInfo, signal: AbortSignal) => boolean | Promise<boolean>;

/**
 * The Concierge's own credential APIs: `create` of TokenCredentialRequests (how a client gets a
 * credential in the first place) and of WhoAmIRequests. Only the group's prefix is checked,
 * because the API group suffix is configurable.
 */
export function conciergeCredentialRequest(info: RequestInfo): boolean {
  if (!info.isResourceRequest || info.verb !== "create" || info.subresource !== "") return false;
  return (
    (info.resource === "tokencredentialrequests" && info.apiGroup.startsWith("login.concierge.")) ||
    (info.resource === "whoamirequests" && info.apiGroup.startsWith("identity.concierge."))
  );
}

/**
 * Runs `call` with a signal that aborts on the caller's signal or after `timeoutMs`, and stops
 * waiting at that moment even if the call ignores its signal, so nothing can hold a request.
 */
export async function callWithDeadline<T>(
  signal: AbortSignal,
  timeoutMs: number,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  deadline.throwIfAborted();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(deadline.reason);
    deadline.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([call(deadline), aborted]);
  } finally {
    if (onAbort) deadline.removeEventListener("abort", onAbort);
  }
}

const oidCommonName = "2.5.4.3";
const oidOrganization = "2.5.4.10";

// Go's pkix.Name.FillFromRDNSequence: the last CN wins, every O counts, in order. Only string
// values count, as in Go.
function subjectNames(certDER: Buffer): { commonName: string; organizations: string[] } {
  const [tbs] = children(readElement(certDER));
  if (!tbs) throw new Error("x509: malformed certificate");
  const fields = children(tbs);
  const skipVersion = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[skipVersion + 4];
  if (!subject) throw new Error("x509: malformed certificate");
  let commonName = "";
  const organizations: string[] = [];
  for (const rdn of children(subject)) {
    for (const atv of children(rdn)) {
      const [type, value] = children(atv);
      if (!type || !value) continue;
      const text = decodeString(value);
      if (text === undefined) continue;
      const oid = decodeObjectIdentifier(type.content);
      if (oid === oidCommonName) commonName = text;
      else if (oid === oidOrganization) organizations.push(text);
    }
  }
  return { commonName, organizations };
}

function decodeString(value: Element): string | undefined {
  switch (value.tag) {
    case 0x0c: // UTF8String
    case 0x13: // PrintableString
    case 0x16: // IA5String
      return value.content.toString("utf8");
    case 0x14: // T61String, which Go reads as Latin-1
      return value.content.toString("latin1");
    case 0x1e: // BMPString: UTF-16 big-endian
      return value.content.length % 2 === 0
        ? Buffer.from(value.content).swap16().toString("utf16le")
        : undefined;
    default:
      return undefined;
  }
}
