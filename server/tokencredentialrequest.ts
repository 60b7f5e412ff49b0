// TokenCredentialRequest create, in upstream's order (internal/registry/credentialrequest/rest.go):
// request checks with their exact errors, then every authentication problem answered the same
// way, as a successful create whose status says "authentication failed". The handler reads the
// authenticator cache and asks the injected issuer (in the process: every strategy's issuer in
// order); it does no I/O of its own.
import { createHash } from "node:crypto";
import { tokenCredentialRequest as tcr } from "../apis/index.ts";
import { type AuthenticatorCache, authenticationGroup } from "../authenticators/cache.ts";
import type { AuthenticationResult, UserInfo } from "../authenticators/types.ts";
import { signingRequestPublicKey } from "../certs/csr.ts";
import type { Credential, Issuer } from "../issuers/issuer.ts";
import { deadline } from "../kube/deadline.ts";
import { GroupSuffix } from "../kube/groupsuffix.ts";
import { isObject } from "../kube/isobject.ts";
import { discardLogger, type Logger } from "../observability/logger.ts";
import { Metrics, removeSeries } from "../observability/metrics.ts";
import { LogRateLimiter } from "../observability/ratelimit.ts";
import { type APIResponse, badRequest, dryRunError, invalid } from "./status.ts";
import { type StrictDecoding, strictDecodingError } from "./strictdecode.ts";
import { type Kind, objectOfKind } from "./typemeta.ts";

/** Upstream's fixed lifetime; certificates cannot be revoked, so it stays short by default. */
export const defaultClientCertificateTTLSeconds = 5 * 60;
export const minClientCertificateTTLSeconds = 60;
export const maxClientCertificateTTLSeconds = 24 * 60 * 60;
/** A slow webhook must not hold a login (or a kubectl) for longer than this. */
export const defaultAuthenticationTimeoutMs = 30_000;
/** How often the same authenticator and reason may log a rejected login at info. */
export const defaultRejectionLogIntervalMs = 10_000;

/** The only extra key allowed for a certificate: Kubernetes ≥ 1.32 authenticators add it; it is never issued. */
export const credentialIDExtraKey = "authentication.kubernetes.io/credential-id";

export type TokenCredentialRequestOutcome =
  | "issued"
  | "no_authenticator"
  | "rejected"
  | "authenticator_error"
  | "unsupported_user_info"
  | "issuer_error";

export interface TokenCredentialRequestOptions {
  authenticators: Pick<AuthenticatorCache, "get"> & Partial<Pick<AuthenticatorCache, "onChange">>;
  /** At most one "login rejected" info line per authenticator and reason in this long. */
  rejectionLogIntervalMs?: number;
  /** The rate limiter's clock (tests). */
  now?: () => number;
  /**
   * Gives the credential for an authenticated user, or says why not. While it `carriesExtras`
   * (the issuer that would serve is the JWTCredential strategy's), a user's uid and extras are
   * issued instead of refused.
   */
  issuer: Pick<Issuer, "issue"> & Partial<Pick<Issuer, "carriesExtras">>;
  /** Within [60, 86400]; default 300. */
  clientCertificateTTLSeconds?: number;
  authenticationTimeoutMs?: number;
  /** The install's API groups (kube/groupsuffix.ts); default upstream's own. */
  groups?: GroupSuffix;
  /** Upstream's `audit.logUsernamesAndGroups`: off by default, audit events redact them. */
  logUsernamesAndGroups?: boolean;
  log?: Logger;
  metrics?: Metrics;
}

export interface CreateContext {
  /** The namespace of the request path, if it had one. */
  namespace?: string;
  dryRun: readonly string[];
  /** kube-apiserver's Audit-ID of the request, to cross-reference its audit log. */
  auditID: string;
  /** Aborts when the client goes away. */
  signal?: AbortSignal;
  /** The body's unknown and duplicate fields, under the request's `fieldValidation`. */
  strict?: StrictDecoding;
}

export type CreateHandler = (body: unknown, ctx: CreateContext) => Promise<APIResponse>;

export function validateClientCertificateTTL(seconds: number): number {
  if (
    !Number.isInteger(seconds) ||
    seconds < minClientCertificateTTLSeconds ||
    seconds > maxClientCertificateTTLSeconds
  ) {
    throw new Error(
      `client certificate TTL must be a whole number of seconds in [${minClientCertificateTTLSeconds}, ${maxClientCertificateTTLSeconds}], got ${seconds}`,
    );
  }
  return seconds;
}

interface Authenticator {
  apiGroup: string | null;
  kind: string;
  name: string;
}

interface Decoded {
  name: string;
  token: string;
  authenticator: Authenticator;
  certificateSigningRequest?: string;
}

const cannotHandle = (why: string) =>
  badRequest(`${tcr.kind} in version "${tcr.version}" cannot be handled as a ${tcr.kind}: ${why}`);

/** The request as the generic apiserver would decode it, or the 400 it would answer. */
function decode(value: unknown, served: Kind): Decoded | APIResponse {
  const typed = objectOfKind(value, served);
  if ("error" in typed) return badRequest(typed.error);
  const body = typed.object;
  const metadata = body.metadata ?? {};
  if (!isObject(metadata)) return cannotHandle("metadata must be an object");
  const name = metadata.name ?? "";
  if (typeof name !== "string") return cannotHandle("metadata.name must be a string");
  const spec = body.spec ?? {};
  if (!isObject(spec)) return cannotHandle("spec must be an object");
  const token = spec.token ?? "";
  if (typeof token !== "string") return cannotHandle("spec.token must be a string");
  const ref = spec.authenticator ?? {};
  if (!isObject(ref)) return cannotHandle("spec.authenticator must be an object");
  const apiGroup = ref.apiGroup ?? null;
  const refKind = ref.kind ?? "";
  const refName = ref.name ?? "";
  if (apiGroup !== null && typeof apiGroup !== "string")
    return cannotHandle("spec.authenticator.apiGroup must be a string");
  if (typeof refKind !== "string") return cannotHandle("spec.authenticator.kind must be a string");
  if (typeof refName !== "string") return cannotHandle("spec.authenticator.name must be a string");
  const csr = spec.certificateSigningRequest ?? undefined;
  if (csr !== undefined && typeof csr !== "string")
    return cannotHandle("spec.certificateSigningRequest must be a string");
  return {
    name,
    token,
    authenticator: { apiGroup, kind: refKind, name: refName },
    ...(csr !== undefined ? { certificateSigningRequest: csr } : {}),
  };
}

/**
 * Upstream's validateUserInfo, with its error strings; a uid and extras pass when the credential
 * carries them (ours: a JWT).
 */
function validateUserInfo(user: UserInfo, carriesExtras: boolean): string | undefined {
  if (user.username === "") return "empty username is not allowed";
  if (carriesExtras) return undefined;
  if (user.uid) return "UIDs are not supported";
  const keys = Object.keys(user.extra ?? {});
  if (keys.some((k) => k !== credentialIDExtraKey)) {
    return `extra may have only one key '${credentialIDExtraKey}'`;
  }
  return undefined;
}

/** What a credential carries besides name and groups: the uid and extras, without the credential ID. */
function uidAndExtras(user: UserInfo): { uid?: string; extra?: Record<string, string[]> } {
  const extra = Object.entries(user.extra ?? {}).filter(([k]) => k !== credentialIDExtraKey);
  return {
    ...(user.uid ? { uid: user.uid } : {}),
    ...(extra.length > 0 ? { extra: Object.fromEntries(extra.map(([k, v]) => [k, [...v]])) } : {}),
  };
}

// plog's redaction of personal information, unless logging it was enabled.
function personal(value: string | readonly string[] | Record<string, unknown>, show: boolean): unknown {
  if (show) return value;
  if (typeof value === "string") return "redacted";
  if (Array.isArray(value)) return [`redacted ${value.length} values`];
  return { redacted: `redacted ${Object.keys(value).length} keys` };
}

function authenticationFailed(served: Kind): APIResponse {
  return {
    code: 201,
    body: response(served, { message: "authentication failed" }),
  };
}

// The Go struct's JSON: metadata and spec come back empty, `apiGroup` has no omitempty.
function response(served: Kind, status: Record<string, unknown>) {
  return {
    kind: served.kind,
    apiVersion: `${served.group}/${served.version}`,
    metadata: { creationTimestamp: null },
    spec: { authenticator: { apiGroup: null, kind: "", name: "" } },
    status,
  };
}

/** metav1.Time's JSON: RFC 3339 in UTC, whole seconds. */
export function metaTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

class Aborted extends Error {}

// Races the authenticator against the deadline, so one that ignores its signal still cannot hold
// the request.
async function authenticate(
  authenticator: { authenticateToken(token: string, signal?: AbortSignal): Promise<AuthenticationResult> },
  token: string,
  timeoutMs: number,
  clientGone: AbortSignal | undefined,
): Promise<AuthenticationResult> {
  const { signal, clear } = deadline(timeoutMs, clientGone);
  if (signal.aborted) throw new Aborted("aborted before authentication started");
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new Aborted(signal.reason instanceof Error ? signal.reason.message : "aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([authenticator.authenticateToken(token, signal), aborted]);
  } finally {
    clear();
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}

export function createTokenCredentialRequestHandler(options: TokenCredentialRequestOptions): CreateHandler {
  const ttlSeconds = validateClientCertificateTTL(
    options.clientCertificateTTLSeconds ?? defaultClientCertificateTTLSeconds,
  );
  const timeoutMs = options.authenticationTimeoutMs ?? defaultAuthenticationTimeoutMs;
  const showPersonal = options.logUsernamesAndGroups ?? false;
  const groups = options.groups ?? new GroupSuffix();
  const served: Kind = { group: groups.served(tcr.group), version: tcr.version, kind: tcr.kind };
  const log = (options.log ?? discardLogger()).child({ component: "tokencredentialrequest" });
  const metrics = options.metrics ?? new Metrics();
  const outcomes = metrics.counter({
    name: "token_credential_requests_total",
    help: "TokenCredentialRequests that reached authentication, by outcome.",
    labelNames: ["outcome"] as const,
  });
  const rejections = metrics.counter({
    name: "token_credential_request_rejections_total",
    help: "Logins an authenticator rejected, by authenticator kind and name and the reason's code.",
    labelNames: ["kind", "authenticator", "reason"] as const,
  });
  // One info line per authenticator and reason per interval: the operator sees why logins fail at
  // the default level, and a flood of bad tokens cannot flood the log.
  const rejectionLog = new LogRateLimiter({
    intervalMs: options.rejectionLogIntervalMs ?? defaultRejectionLogIntervalMs,
    ...(options.now ? { now: options.now } : {}),
  });
  // A deleted authenticator's series go with it.
  options.authenticators.onChange?.((key, entry) => {
    if (entry) return;
    void removeSeries(rejections, { kind: key.kind, authenticator: key.name });
  });

  return async (body, ctx) => {
    const decoded = decode(body, served);
    if (!("token" in decoded)) return decoded;
    const strictError = strictDecodingError(ctx.strict);
    if (strictError) return cannotHandle(strictError);
    if (decoded.token === "") {
      return invalid(served.group, "", decoded.name, [
        {
          type: "FieldValueRequired",
          field: "spec.token.value",
          message: "Required value: token must be supplied",
        },
      ]);
    }
    if (decoded.certificateSigningRequest !== undefined) {
      try {
        signingRequestPublicKey(decoded.certificateSigningRequest);
      } catch (error) {
        return invalid(served.group, "", decoded.name, [
          {
            type: "FieldValueInvalid",
            field: "spec.certificateSigningRequest",
            message: `Invalid value: "<omitted>": ${(error as Error).message}`,
          },
        ]);
      }
    }
    const dryRun = dryRunError(served.group, ctx.dryRun);
    if (dryRun) return dryRun;
    if (ctx.namespace) return badRequest(`namespace is not allowed on ${tcr.kind}: ${ctx.namespace}`);

    const ref = decoded.authenticator;
    const audit = (msg: string, fields: Record<string, unknown>) =>
      log.info(msg, { auditEvent: true, auditID: ctx.auditID, ...fields });
    const failed = (outcome: TokenCredentialRequestOutcome) => {
      outcomes.inc({ outcome });
      return authenticationFailed(served);
    };
    const unexpected = (reason: string, err: unknown, outcome: TokenCredentialRequestOutcome) => {
      audit("TokenCredentialRequest Unexpected Error", {
        reason,
        err: err instanceof Error ? err.message : String(err),
        authenticator: ref,
      });
      return failed(outcome);
    };

    // The hash, never the token: it lets an operator match this request to the issuer's logs.
    audit("TokenCredentialRequest Token Received", {
      tokenID: createHash("sha256").update(decoded.token).digest("hex"),
    });

    // Authenticators are cached under upstream's group, which the install serves under its suffix
    // (upstream's Unreplace); any other group (or none) must miss.
    const entry =
      ref.apiGroup !== null && groups.internal(ref.apiGroup) === authenticationGroup
        ? options.authenticators.get({ apiGroup: authenticationGroup, kind: ref.kind, name: ref.name })
        : undefined;
    if (!entry)
      return unexpected("authenticator returned an error", "no such authenticator", "no_authenticator");

    let result: AuthenticationResult;
    try {
      result = await authenticate(entry.authenticator, decoded.token, timeoutMs, ctx.signal);
    } catch (err) {
      return unexpected("authenticator returned an error", err, "authenticator_error");
    }
    if (!result.authenticated) {
      audit("TokenCredentialRequest Authentication Failed", {
        reason: "auth rejected by authenticator",
        authenticator: ref,
      });
      const code = result.code ?? "rejected";
      rejections.inc({ kind: ref.kind, authenticator: ref.name, reason: code });
      const take = rejectionLog.take(`${ref.kind}/${ref.name}/${code}`);
      if (take.log) {
        log.info("login rejected by authenticator", {
          authenticator: ref,
          reason: code,
          detail: result.safeReason ?? result.reason,
          ...(take.suppressed > 0 ? { suppressedSinceLast: take.suppressed } : {}),
        });
      }
      log.debug("authenticator rejected the token", { reason: result.reason, authenticator: ref });
      return failed("rejected");
    }

    const user = result.user;
    const invalidUser = validateUserInfo(user, options.issuer.carriesExtras === true);
    if (invalidUser) {
      audit("TokenCredentialRequest Unsupported UserInfo", {
        personalInfo: {
          userInfoName: personal(user.username, showPersonal),
          userInfoUID: personal(user.uid ?? "", showPersonal),
        },
        userInfoExtrasCount: Object.keys(user.extra ?? {}).length,
        reason: "unsupported value in userInfo returned by authenticator",
        err: invalidUser,
        authenticator: ref,
      });
      return failed("unsupported_user_info");
    }

    let credential: Credential;
    try {
      const result = await options.issuer.issue({
        user: { username: user.username, groups: [...user.groups], ...uidAndExtras(user) },
        ttlSeconds,
        ...(decoded.certificateSigningRequest !== undefined
          ? { certificateSigningRequestPEM: decoded.certificateSigningRequest }
          : {}),
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
      if (!result.ok) return unexpected("cert issuer returned an error", result.reason, "issuer_error");
      credential = result.credential;
    } catch (err) {
      return unexpected("cert issuer returned an error", err, "issuer_error");
    }

    const expiry = credential.type === "certificate" ? credential.notAfter : credential.expiresAt;
    const expirationTimestamp = metaTime(expiry);
    audit("TokenCredentialRequest Authenticated User", {
      personalInfo: {
        username: personal(user.username, showPersonal),
        groups: personal(user.groups, showPersonal),
      },
      ...(credential.type === "certificate"
        ? {
            issuedClientCert: {
              ...(credential.notBefore ? { notBefore: metaTime(credential.notBefore) } : {}),
              notAfter: expirationTimestamp,
            },
          }
        : { issuedToken: { expiresAt: expirationTimestamp } }),
      authenticator: ref,
    });
    outcomes.inc({ outcome: "issued" });
    return {
      code: 201,
      body: response(served, {
        credential:
          credential.type === "certificate"
            ? {
                expirationTimestamp,
                clientCertificateData: credential.certificatePEM,
                ...(credential.keyPEM !== undefined ? { clientKeyData: credential.keyPEM } : {}),
              }
            : { expirationTimestamp, token: credential.token },
      }),
    };
  };
}
