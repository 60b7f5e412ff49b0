// Impersonation both ways: reading the client's own `Impersonate-*` headers (nested impersonation,
// as Kubernetes' WithImpersonation filter reads them) and writing the headers the proxy sends
// upstream for the identity a request runs as (as client-go's impersonating round tripper does).
import type { UserInfo } from "../kube/userinfo.ts";
import type { Attributes } from "./authz.ts";
import { goJSON } from "./gojson.ts";

const userHeader = "impersonate-user";
const groupHeader = "impersonate-group";
const uidHeader = "impersonate-uid";
const extraHeaderPrefix = "impersonate-extra-";

/** One identity part the client asked to act as; each needs its own `impersonate` permission. */
export type ImpersonationRequest =
  | { kind: "User"; name: string }
  | { kind: "ServiceAccount"; namespace: string; name: string }
  | { kind: "Group"; name: string }
  | { kind: "UserExtra"; key: string; value: string }
  | { kind: "UID"; uid: string };

export class ImpersonationHeaderError extends Error {
  override readonly name = "ImpersonationHeaderError";
}

function values(headers: Record<string, string | string[]>, name: string): string[] {
  const v = headers[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** True when the client sent any header whose name starts with `Impersonate`. */
export function hasImpersonationHeaders(headers: Record<string, string | string[]>): boolean {
  return Object.keys(headers).some((name) => name.toLowerCase().startsWith("impersonate"));
}

// serviceaccount.SplitUsername: exactly system:serviceaccount:<namespace>:<name>, both non-empty.
function splitServiceAccount(username: string): { namespace: string; name: string } | undefined {
  const prefix = "system:serviceaccount:";
  if (!username.startsWith(prefix)) return undefined;
  const parts = username.slice(prefix.length).split(":");
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "") return undefined;
  return { namespace: parts[0]!, name: parts[1]! };
}

// url.PathUnescape, which leaves the key as it was when it is not a valid escape.
function unescapeExtraKey(key: string): string {
  try {
    return decodeURIComponent(key);
  } catch {
    return key;
  }
}

/**
 * buildImpersonationRequests: the user, each group, each extra value, the UID. Throws
 * ImpersonationHeaderError, worded like Kubernetes, when groups, extras or a UID come without a user.
 */
export function parseImpersonationHeaders(
  headers: Record<string, string | string[]>,
): ImpersonationRequest[] {
  const requests: ImpersonationRequest[] = [];
  const user = values(headers, userHeader)[0] ?? "";
  if (user !== "") {
    const sa = splitServiceAccount(user);
    requests.push(sa ? { kind: "ServiceAccount", ...sa } : { kind: "User", name: user });
  }
  const groups = values(headers, groupHeader);
  for (const name of groups) requests.push({ kind: "Group", name });
  let hasExtra = false;
  for (const [header, headerValues] of Object.entries(headers)) {
    const lower = header.toLowerCase();
    if (!lower.startsWith(extraHeaderPrefix)) continue;
    hasExtra = true;
    const key = unescapeExtraKey(lower.slice(extraHeaderPrefix.length));
    for (const value of Array.isArray(headerValues) ? headerValues : [headerValues]) {
      requests.push({ kind: "UserExtra", key, value });
    }
  }
  const uid = values(headers, uidHeader)[0] ?? "";
  if (uid !== "") requests.push({ kind: "UID", uid });
  if ((groups.length > 0 || hasExtra || uid !== "") && user === "") {
    throw new ImpersonationHeaderError(
      `requested ${describeRequests(requests)} without impersonating a user`,
    );
  }
  return requests;
}

// Go's %v of the []corev1.ObjectReference Kubernetes builds: each struct's seven fields
// (Kind Namespace Name UID APIVersion ResourceVersion FieldPath) separated by spaces.
function describeRequests(requests: ImpersonationRequest[]): string {
  const ref = (r: ImpersonationRequest): string[] => {
    switch (r.kind) {
      case "User":
      case "Group":
        return [r.kind, "", r.name, "", "", "", ""];
      case "ServiceAccount":
        return [r.kind, r.namespace, r.name, "", "", "", ""];
      case "UserExtra":
        return [r.kind, "", r.value, "", "authentication.k8s.io/v1", "", r.key];
      case "UID":
        return [r.kind, "", r.uid, "", "authentication.k8s.io/v1", "", ""];
    }
  };
  return `[${requests.map((r) => `{${ref(r).join(" ")}}`).join(" ")}]`;
}

/** The `impersonate` check Kubernetes makes for one requested part. */
export function impersonationAttributes(request: ImpersonationRequest): Attributes {
  switch (request.kind) {
    case "User":
      return { verb: "impersonate", resourceRequest: true, resource: "users", name: request.name };
    case "Group":
      return { verb: "impersonate", resourceRequest: true, resource: "groups", name: request.name };
    case "ServiceAccount":
      return {
        verb: "impersonate",
        resourceRequest: true,
        resource: "serviceaccounts",
        namespace: request.namespace,
        name: request.name,
      };
    case "UserExtra":
      return {
        verb: "impersonate",
        resourceRequest: true,
        apiGroup: "authentication.k8s.io",
        apiVersion: "v1",
        resource: "userextras",
        subresource: request.key,
        name: request.value,
      };
    case "UID":
      return {
        verb: "impersonate",
        resourceRequest: true,
        apiGroup: "authentication.k8s.io",
        apiVersion: "v1",
        resource: "uids",
        name: request.uid,
      };
  }
}

/**
 * The identity WithImpersonation builds once every part is allowed: a service account without
 * explicit groups gets its fixed groups, and system:authenticated (or, for system:anonymous,
 * system:unauthenticated) is added unless an explicit group already says which.
 */
export function impersonatedUser(requests: ImpersonationRequest[]): UserInfo {
  const groupsSpecified = requests.some((r) => r.kind === "Group");
  let username = "";
  let uid = "";
  let groups: string[] = [];
  const extra: Record<string, string[]> = {};
  for (const r of requests) {
    switch (r.kind) {
      case "ServiceAccount":
        username = `system:serviceaccount:${r.namespace}:${r.name}`;
        if (!groupsSpecified) groups = ["system:serviceaccounts", `system:serviceaccounts:${r.namespace}`];
        break;
      case "User":
        username = r.name;
        break;
      case "Group":
        groups.push(r.name);
        break;
      case "UserExtra":
        extra[r.key] = [...(extra[r.key] ?? []), r.value];
        break;
      case "UID":
        uid = r.uid;
        break;
    }
  }
  if (username !== "system:anonymous") {
    if (!groups.some((g) => g === "system:authenticated" || g === "system:unauthenticated")) {
      groups.push("system:authenticated");
    }
  } else if (!groups.includes("system:unauthenticated")) {
    groups.push("system:unauthenticated");
  }
  return { username, ...(uid ? { uid } : {}), groups, extra };
}

const reservedSuffix = ".impersonation-proxy.concierge.pinniped.dev";
export const originalUserInfoKey = `original-user-info${reservedSuffix}`;
// Very conservative, as upstream: impersonation headers lose case and need escaping, so only keys
// that survive the round trip unchanged are forwarded.
const extraKeyPattern = /^[a-z0-9/\-._]+$/;

export class UnsupportedIdentityError extends Error {
  override readonly name = "UnsupportedIdentityError";
}

/**
 * The `Impersonate-*` headers that make kube-apiserver run the request as `user`; with
 * `original`, nested impersonation, the authenticated user is recorded in a reserved extra.
 * Throws UnsupportedIdentityError for what cannot be forwarded faithfully: an empty username
 * (client-go would silently send no impersonation at all, CVE-2026-23990), an extra key that
 * impersonation would alter or that claims our reserved suffix, or a value no header can carry.
 */
export function impersonationHeaders(user: UserInfo, original?: UserInfo): Record<string, string | string[]> {
  if (user.username === "") throw new UnsupportedIdentityError("empty username");
  for (const key of Object.keys(user.extra ?? {})) {
    if (!extraKeyPattern.test(key)) throw new UnsupportedIdentityError(`disallowed extra key seen: ${key}`);
    if (key.endsWith(reservedSuffix)) {
      throw new UnsupportedIdentityError(`disallowed extra key with reserved prefix seen: ${key}`);
    }
  }
  const extra: Record<string, string[]> = { ...user.extra };
  if (original) extra[originalUserInfoKey] = [originalUserInfoJSON(original)];

  const headers: Record<string, string | string[]> = { "Impersonate-User": user.username };
  if (user.groups.length > 0) headers["Impersonate-Group"] = [...user.groups];
  for (const [key, vals] of Object.entries(extra).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (vals.length > 0) headers[`Impersonate-Extra-${headerKeyEscape(key)}`] = [...vals];
  }
  for (const value of Object.values(headers).flat()) {
    if (!isHeaderValue(value)) throw new UnsupportedIdentityError("identity cannot be sent in a header");
  }
  return headers;
}

// HTTP field values cannot hold CR, LF or NUL (nor other controls but tab); anything that would
// need them is refused rather than mangled.
function isHeaderValue(value: string): boolean {
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    if ((cp < 0x20 && cp !== 0x09) || cp === 0x7f) return false;
  }
  return true;
}

// client-go's headerKeyEscape: bytes outside RFC 7230's token characters, and `%` itself, become
// %XX, which kube-apiserver's url.PathUnescape reverses.
const tokenChars = /^[!#$&'*+\-.^_`|~0-9A-Za-z]$/;
export function headerKeyEscape(key: string): string {
  const known = escapedKeys.get(key);
  if (known !== undefined) return known;
  const escaped = escapeHeaderKey(key);
  if (escapedKeys.size < maxEscapedKeys) escapedKeys.set(key, escaped);
  return escaped;
}

// Extra keys are few (the certificate's credential ID on every proxied request); the bound is
// for a webhook that invents new ones.
const escapedKeys = new Map<string, string>();
const maxEscapedKeys = 1000;

function escapeHeaderKey(key: string): string {
  let out = "";
  for (const byte of Buffer.from(key, "utf8")) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && tokenChars.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * json.Marshal of authenticationv1.UserInfo: empty fields omitted, map keys sorted, and `<`, `>`
 * and `&` escaped as Go's encoder does.
 */
export function originalUserInfoJSON(user: UserInfo): string {
  const out: Record<string, unknown> = {};
  if (user.username !== "") out.username = user.username;
  if (user.uid) out.uid = user.uid;
  if (user.groups.length > 0) out.groups = user.groups;
  const extra = user.extra ?? {};
  const keys = Object.keys(extra).sort();
  if (keys.length > 0) out.extra = Object.fromEntries(keys.map((k) => [k, extra[k]]));
  return goJSON(out);
}
