// The checks a CRD schema cannot express, for the validating admission webhook: URLs that the
// reconcilers would refuse, CA bundles that do not parse, and the claims, rules and CEL that the
// JWTAuthenticator reconciler checks (authenticators/jwt/validation.ts, shared with it). Pure: the same object always gives the same errors.
//
// Runtime problems (an unreachable issuer, a missing CA Secret) are not checked here; the
// reconcilers report those as conditions.

import type { JWTAuthenticatorSpec, TLSSpec, WebhookAuthenticatorSpec } from "../apis/index.ts";
import { jwtAuthenticator, webhookAuthenticator } from "../apis/index.ts";
import { compileValidator } from "../apis/validation.ts";
import { compileClaims } from "../authenticators/cel/claims.ts";
import { specErrors } from "../authenticators/jwt/validation.ts";
import { refusedHost } from "../authenticators/outbound.ts";
import { parsePEMCertificates } from "../authenticators/tls/cabundle.ts";
import { decodeStdBase64 } from "../authenticators/tls/gobase64.ts";
import { duplicate, type FieldError, forbidden, invalid, required } from "../kube/fielderror.ts";
import { goQuote } from "../kube/goquote.ts";
import { goParseURL } from "../kube/gourl.ts";
import { isObject } from "../kube/isobject.ts";

export type { FieldError } from "../kube/fielderror.ts";

// Compiled on the first admission review: Ajv's compiled code and the schemas cost memory that
// a replica never needs until kube-apiserver calls the webhook.
let checkJWTSchema: ReturnType<typeof compileValidator> | undefined;
let checkWebhookSchema: ReturnType<typeof compileValidator> | undefined;

export function validateJWTAuthenticator(obj: unknown): FieldError[] {
  checkJWTSchema ??= compileValidator(jwtAuthenticator.schema);
  const schemaErrors = schemaCheck(checkJWTSchema, obj);
  if (schemaErrors.length > 0) return schemaErrors;
  const spec = (obj as { spec: JWTAuthenticatorSpec }).spec;
  return [
    ...validateIssuer(spec.issuer),
    ...validateAudiences(spec),
    // The reconciler's own check, so a spec this webhook admits never fails it with another message.
    ...specErrors(spec, compileClaims(spec).errors, "spec."),
    ...validateTLS(spec.tls),
  ];
}

/**
 * Problems with a valid spec that the admission webhook still warns about: extras reach
 * kube-apiserver through no credential the Concierge issues. A client certificate cannot carry
 * them, so a TokenCredentialRequest refuses every login whose extra mappings produce a value
 * (upstream's validateUserInfo). The reconciler keeps such an authenticator out of the cache with
 * a ClaimsExtraDeliverable condition; this warning says so where the apply runs.
 */
export function jwtAuthenticatorAdvisories(obj: unknown, extrasDeliverable = false): FieldError[] {
  // A configured strategy whose credential carries extras (a JWT): nothing to warn about.
  if (extrasDeliverable) return [];
  const extra = (obj as { spec?: Partial<JWTAuthenticatorSpec> } | undefined)?.spec?.claims?.extra;
  if (!Array.isArray(extra) || extra.length === 0) return [];
  return [
    forbidden(
      "spec.claims.extra",
      "the Concierge's client certificates cannot carry extras to kube-apiserver, so this JWTAuthenticator is not Ready and serves no login until spec.claims.extra is removed",
    ),
  ];
}

/**
 * What the webhook refuses outright: the one rule of our additions to the spec that lived in the
 * CRD as a CEL rule, worded as kube-apiserver worded it (see apis/.../jwtauthenticator.ts for why
 * it moved). Objects that do not use our additions never meet it.
 */
export function jwtAuthenticatorDenials(obj: unknown): FieldError[] {
  const spec = (obj as { spec?: Partial<JWTAuthenticatorSpec> } | undefined)?.spec;
  if (
    !Array.isArray(spec?.audiences) ||
    spec.audiences.length === 0 ||
    spec.audienceMatchPolicy !== undefined
  ) {
    return [];
  }
  return [required("spec.audienceMatchPolicy", "audienceMatchPolicy must be MatchAny when audiences is set")];
}

export function validateWebhookAuthenticator(obj: unknown): FieldError[] {
  checkWebhookSchema ??= compileValidator(webhookAuthenticator.schema);
  const schemaErrors = schemaCheck(checkWebhookSchema, obj);
  if (schemaErrors.length > 0) return schemaErrors;
  const spec = (obj as { spec: WebhookAuthenticatorSpec }).spec;
  return [...validateEndpoint(spec.endpoint), ...validateTLS(spec.tls)];
}

// kube-apiserver checks the CRD schema before any validating webhook runs, so this only finds
// something when the installed CRD and this code disagree. It is here so that every check below
// can trust the shape of what it reads.
function schemaCheck(check: ReturnType<typeof compileValidator>, obj: unknown): FieldError[] {
  if (!isObject(obj)) {
    const type = obj === null ? "null" : Array.isArray(obj) ? "array" : typeof obj;
    return [invalid("<root>", type, "must be a JSON object")];
  }
  return check(obj).errors.map((line) => {
    const at = line.indexOf(": ");
    return at < 0
      ? { field: "<root>", message: line }
      : { field: line.slice(0, at), message: line.slice(at + 2) };
  });
}

// ---- URLs ----

interface URLParts {
  scheme: string;
  userinfo: string | undefined;
  host: string;
  path: string;
  query: string | undefined;
  fragment: string | undefined;
}

// RFC 3986 appendix B. Go's url.Parse splits the same way; WHATWG's URL parser (Node's `URL`)
// does not, e.g. it reads `https:///x` as host `x`, where Go (and so upstream) sees no host.
const rfc3986 = /^(?:([^:/?#]+):)?(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/s;

// Go's url.Parse decides what parses, with the reconcilers' wording; the value is already in
// the field error, so its `parse "<url>": ` prefix is left off.
function parseURL(raw: string): URLParts | { error: string } {
  const go = goParseURL(raw);
  if ("error" in go) return { error: go.error.replace(/^parse "(?:[^"\\]|\\.)*": /, "") };
  const [, scheme = "", authority = "", path = "", query, fragment] = rfc3986.exec(raw) ?? [];
  const at = authority.lastIndexOf("@");
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  const hostport = splitHostPort(authority.slice(at + 1));
  if ("error" in hostport) return hostport;
  return { scheme: scheme.toLowerCase(), userinfo, host: hostport.host, path, query, fragment };
}

function splitHostPort(hostport: string): { host: string } | { error: string } {
  let host = hostport;
  let port = "";
  if (hostport.startsWith("[")) {
    const close = hostport.indexOf("]");
    if (close < 0) return { error: "missing ']' in host" };
    host = hostport.slice(0, close + 1);
    port = hostport.slice(close + 1);
  } else if (hostport.includes(":")) {
    host = hostport.slice(0, hostport.lastIndexOf(":"));
    port = hostport.slice(hostport.lastIndexOf(":"));
  }
  // Go accepts an empty port (`host:`) and any digits; a port that cannot be dialled is refused here.
  if (port !== "" && !/^:\d*$/.test(port)) return { error: `invalid port ${goQuote(port)} after host` };
  const number = Number(port.slice(1));
  if (port.length > 1 && (number < 1 || number > 65535)) {
    return { error: `invalid port ${goQuote(port)} after host: must be between 1 and 65535` };
  }
  // WHATWG's host parser is stricter than Go's, and refuses what no dialer could reach.
  if (host !== "" && !URL.canParse(`https://${host}/`)) return { error: `invalid host ${goQuote(host)}` };
  return { host };
}

// Go's URL.Redacted: a password in the URL must not travel on into error messages.
function redactURL(raw: string): string {
  const [, prefix = "", authority = "", rest = ""] = /^([^:/?#]+:\/\/)([^/?#]*)(.*)$/s.exec(raw) ?? [];
  const at = authority.lastIndexOf("@");
  const colon = authority.indexOf(":");
  if (at < 0 || colon < 0 || colon > at) return raw;
  return `${prefix}${authority.slice(0, colon)}:xxxxx${authority.slice(at)}${rest}`;
}

interface URLRules {
  field: string;
  rejectQueryAndFragment: boolean;
  rejectWellKnownPath: boolean;
}

function validateURL(raw: string, rules: URLRules): FieldError[] {
  const shown = redactURL(raw);
  const bad = (detail: string) => invalid(rules.field, shown, detail);
  const parsed = parseURL(raw);
  if ("error" in parsed) return [bad(`URL is invalid: ${parsed.error}`)];
  const errors: FieldError[] = [];
  if (parsed.scheme !== "https") errors.push(bad("has invalid scheme, require 'https'"));
  if (parsed.host === "") errors.push(bad("URL must have a host"));
  if (parsed.userinfo !== undefined) errors.push(bad("URL must not contain a username or password"));
  const refused = refusedHost(parsed.host);
  if (refused) errors.push(bad(`host ${refused}`));
  if (rules.rejectWellKnownPath && decodePath(parsed.path).endsWith("/.well-known/openid-configuration")) {
    errors.push(bad("cannot include path '/.well-known/openid-configuration'"));
  }
  if (rules.rejectQueryAndFragment) {
    // Like Go, a bare `?` or `#` is an empty query or fragment, which upstream allows.
    if (parsed.query) errors.push(bad("cannot include query params"));
    if (parsed.fragment) errors.push(bad("cannot include fragment"));
  }
  return errors;
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

// The issuer is also the exact `iss` value and the base of discovery, so it gets upstream's
// IssuerURLValid checks plus Kubernetes' rule against credentials in the URL.
function validateIssuer(issuer: string): FieldError[] {
  return validateURL(issuer, {
    field: "spec.issuer",
    rejectQueryAndFragment: true,
    rejectWellKnownPath: true,
  });
}

// The endpoint is POSTed to as given, so a query is legitimate. Upstream checks only that it
// parses, is https and has a host to dial; credentials in it would end up in logs and conditions.
function validateEndpoint(endpoint: string): FieldError[] {
  return validateURL(endpoint, {
    field: "spec.endpoint",
    rejectQueryAndFragment: false,
    rejectWellKnownPath: false,
  });
}

// ---- audiences ----

// The schema already makes each of spec.audiences non-empty and unique; together with
// spec.audience they form one list for Kubernetes, so repeating spec.audience is a duplicate too.
function validateAudiences(spec: JWTAuthenticatorSpec): FieldError[] {
  const errors: FieldError[] = [];
  (spec.audiences ?? []).forEach((audience, i) => {
    if (audience === spec.audience) errors.push(duplicate(`spec.audiences[${i}]`, audience));
  });
  return errors;
}

// ---- TLS ----

function validateTLS(tls: TLSSpec | undefined): FieldError[] {
  const errors: FieldError[] = [];
  const data = tls?.certificateAuthorityData ?? "";
  if (data !== "" && tls?.certificateAuthorityDataSource) {
    errors.push(
      forbidden(
        "spec.tls.certificateAuthorityDataSource",
        "may not be specified together with spec.tls.certificateAuthorityData",
      ),
    );
  }
  if (data === "") return errors;
  // The bundle is long and says nothing the field name does not, so it is omitted from the
  // message, as kube-apiserver does for the CA of its own JWT authenticators.
  const field = "spec.tls.certificateAuthorityData";
  let pem: Buffer;
  try {
    pem = decodeStdBase64(data);
  } catch (err) {
    return [...errors, invalid(field, "<omitted>", (err as Error).message)];
  }
  if (parsePEMCertificates(pem).length === 0) {
    errors.push(
      invalid(
        field,
        "<omitted>",
        `no base64-encoded PEM certificates found in ${data.length} bytes of data (PEM certificates must begin with "-----BEGIN CERTIFICATE-----")`,
      ),
    );
  }
  return errors;
}
