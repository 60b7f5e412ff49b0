// The checks a CRD schema cannot express, for the validating admission webhook: URLs that the
// reconcilers would refuse, CA bundles that do not parse, CEL that does not compile, and the
// one-of rules between fields. Pure: the same object always gives the same errors.
//
// Runtime problems (an unreachable issuer, a missing CA Secret) are not checked here; the
// reconcilers report those as conditions.

import type {
  ClaimValidationRule,
  JWTAuthenticatorSpec,
  JWTTokenClaims,
  TLSSpec,
  UserValidationRule,
  WebhookAuthenticatorSpec,
} from "../apis/index.ts";
import { jwtAuthenticator, webhookAuthenticator } from "../apis/index.ts";
import { compileValidator } from "../apis/validation.ts";
import { compileClaims } from "../authenticators/cel/claims.ts";
import { refusedHost } from "../authenticators/outbound.ts";
import { parsePEMCertificates } from "../authenticators/tls/cabundle.ts";
import { decodeStdBase64 } from "../authenticators/tls/gobase64.ts";
import { duplicate, type FieldError, forbidden, invalid, required } from "../kube/fielderror.ts";
import { goQuote } from "../kube/goquote.ts";
import { isObject } from "../kube/isobject.ts";

export type { FieldError } from "../kube/fielderror.ts";

const checkJWTSchema = compileValidator(jwtAuthenticator.schema);
const checkWebhookSchema = compileValidator(webhookAuthenticator.schema);

export function validateJWTAuthenticator(obj: unknown): FieldError[] {
  const schemaErrors = schemaCheck(checkJWTSchema, obj);
  if (schemaErrors.length > 0) return schemaErrors;
  const spec = (obj as { spec: JWTAuthenticatorSpec }).spec;
  const structural = [
    ...validateClaims(spec.claims),
    ...validateClaimValidationRules(spec.claimValidationRules ?? []),
    ...validateUserValidationRules(spec.userValidationRules ?? []),
  ];
  return [
    ...validateIssuer(spec.issuer),
    ...validateAudiences(spec),
    ...structural,
    ...validateExpressions(spec, structural),
    ...validateTLS(spec.tls),
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

function parseURL(raw: string): URLParts | { error: string } {
  if (hasControlCharacter(raw)) return { error: "invalid control character in URL" };
  const [, scheme = "", authority = "", path = "", query, fragment] = rfc3986.exec(raw) ?? [];
  if (scheme !== "" && !/^[A-Za-z][A-Za-z0-9+.-]*$/.test(scheme)) return { error: "missing protocol scheme" };
  const at = authority.lastIndexOf("@");
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  const hostport = splitHostPort(authority.slice(at + 1));
  if ("error" in hostport) return hostport;
  return { scheme: scheme.toLowerCase(), userinfo, host: hostport.host, path, query, fragment };
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
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

// ---- claims ----

function validateClaims(claims: JWTTokenClaims | undefined): FieldError[] {
  if (!claims) return [];
  const errors: FieldError[] = [];
  if (claims.username && claims.usernameExpression) {
    errors.push(
      forbidden("spec.claims.usernameExpression", "may not be specified together with spec.claims.username"),
    );
  }
  if (claims.groups && claims.groupsExpression) {
    errors.push(
      forbidden("spec.claims.groupsExpression", "may not be specified together with spec.claims.groups"),
    );
  }
  const seen = new Set<string>();
  (claims.extra ?? []).forEach((mapping, i) => {
    const field = `spec.claims.extra[${i}]`;
    errors.push(...validateExtraKey(`${field}.key`, mapping.key));
    if (seen.has(mapping.key)) {
      errors.push(duplicate(`${field}.key`, mapping.key));
      return;
    }
    seen.add(mapping.key);
    if (mapping.valueExpression === "") errors.push(required(`${field}.valueExpression`));
  });
  return errors;
}

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const httpPath = /^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/;

// Kubernetes' rules for claimMappings.extra keys (IsDomainPrefixedPath, lowercase, not reserved),
// plus Pinniped's: no `=`, because extras travel as `key=value` in certificate OUs.
function validateExtraKey(field: string, key: string): FieldError[] {
  if (key === "") return [required(field)];
  const errors: FieldError[] = [];
  const slash = key.indexOf("/");
  const host = slash < 0 ? "" : key.slice(0, slash);
  const path = slash < 0 ? "" : key.slice(slash + 1);
  if (host === "" || path === "") {
    errors.push(invalid(field, key, 'must be a domain-prefixed path (such as "acme.io/foo")'));
  } else {
    if (host.length > 253) errors.push(invalid(field, host, "must be no more than 253 characters"));
    if (!dns1123Subdomain.test(host)) {
      errors.push(
        invalid(
          field,
          host,
          "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
      );
    }
    if (!httpPath.test(path)) {
      errors.push(
        invalid(
          field,
          path,
          "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        ),
      );
    }
  }
  if (key !== key.toLowerCase()) errors.push(invalid(field, key, "must be lowercase"));
  if (key.includes("=")) errors.push(invalid(field, key, 'must not contain an equals sign ("=")'));
  if (/^(?:[^/]*\.)?(?:kubernetes\.io|k8s\.io)\//.test(key)) {
    errors.push(
      invalid(field, key, "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use"),
    );
  }
  return errors;
}

// Kubernetes' ClaimValidationRule rules: a rule is either a claim (with an optional required
// value) or an expression (with an optional message), and no rule appears twice.
function validateClaimValidationRules(rules: readonly ClaimValidationRule[]): FieldError[] {
  const errors: FieldError[] = [];
  const seenClaims = new Set<string>();
  const seenExpressions = new Set<string>();
  rules.forEach((rule, i) => {
    const field = `spec.claimValidationRules[${i}]`;
    const claim = rule.claim ?? "";
    const expression = rule.expression ?? "";
    if (claim !== "" && expression !== "") {
      errors.push(invalid(field, claim, "claim and expression can't both be set"));
    } else if (claim === "" && expression === "") {
      errors.push(required(field, "claim or expression is required"));
    } else if (claim !== "") {
      if (rule.message)
        errors.push(invalid(`${field}.message`, rule.message, "may not be specified when claim is set"));
      if (seenClaims.has(claim)) errors.push(duplicate(`${field}.claim`, claim));
      seenClaims.add(claim);
    } else {
      if (rule.requiredValue) {
        errors.push(
          invalid(
            `${field}.requiredValue`,
            rule.requiredValue,
            "may not be specified when expression is set",
          ),
        );
      }
      if (seenExpressions.has(expression)) errors.push(duplicate(`${field}.expression`, expression));
      seenExpressions.add(expression);
    }
  });
  return errors;
}

function validateUserValidationRules(rules: readonly UserValidationRule[]): FieldError[] {
  const errors: FieldError[] = [];
  const seen = new Set<string>();
  rules.forEach((rule, i) => {
    const field = `spec.userValidationRules[${i}].expression`;
    if (rule.expression === "") errors.push(required(field));
    else if (seen.has(rule.expression)) errors.push(duplicate(field, rule.expression));
    seen.add(rule.expression);
  });
  return errors;
}

// Every CEL expression must parse, type-check and produce the right type, as the reconciler will
// compile them the same way. A field that already failed a rule above (empty, duplicate, or next
// to a field it excludes) is not reported again, as Kubernetes does not compile those either.
function validateExpressions(spec: JWTAuthenticatorSpec, structural: readonly FieldError[]): FieldError[] {
  const failed = new Set(structural.map((e) => e.field));
  const sources = expressionSources(spec);
  return compileClaims(spec)
    .errors.filter((e) => !failed.has(e.field) && !failed.has(e.field.replace(/\.expression$/, "")))
    .map((e) => invalid(e.field, sources.get(e.field) ?? "", e.message));
}

function expressionSources(spec: JWTAuthenticatorSpec): Map<string, string | undefined> {
  return new Map<string, string | undefined>([
    ["spec.claims.usernameExpression", spec.claims?.usernameExpression],
    ["spec.claims.groupsExpression", spec.claims?.groupsExpression],
    ...(spec.claims?.extra ?? []).map(
      (e, i) => [`spec.claims.extra[${i}].valueExpression`, e.valueExpression] as const,
    ),
    ...(spec.claimValidationRules ?? []).map(
      (r, i) => [`spec.claimValidationRules[${i}].expression`, r.expression] as const,
    ),
    ...(spec.userValidationRules ?? []).map(
      (r, i) => [`spec.userValidationRules[${i}].expression`, r.expression] as const,
    ),
  ]);
}
