// The one check of a JWTAuthenticator spec's claims and rules, for both the reconciler (its
// AuthenticatorValid condition) and the admission webhook: Kubernetes' validateJWTAuthenticator
// (k8s.io/apiserver v0.34 pkg/apis/apiserver/validation: claim validation rules, claim mappings,
// user validation rules, CEL, in that order and with its wording), then Pinniped's own rule
// against "=" in extra keys. Field paths use the CRD's names, as upstream rewrites them.
import type { JWTAuthenticatorSpec } from "../../apis/index.ts";
import { duplicate, type FieldError, invalid, required } from "../../kube/fielderror.ts";
import type { CompileError } from "../cel/claims.ts";

const dns1123SubdomainFmt = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const dns1123Subdomain = new RegExp(`^${dns1123SubdomainFmt}$`);
const dns1123SubdomainMessage =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', " +
  `and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '${dns1123SubdomainFmt}')`;
const httpPathFmt = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+";
const httpPath = new RegExp(`^${httpPathFmt}$`);

/** k8s.io/apimachinery's IsDomainPrefixedPath. */
function domainPrefixedPathErrors(field: string, path: string): FieldError[] {
  if (path.length === 0) return [required(field)];
  const slash = path.indexOf("/");
  const host = slash < 0 ? "" : path.slice(0, slash);
  const rest = slash < 0 ? "" : path.slice(slash + 1);
  if (host.length === 0 || rest.length === 0) {
    return [invalid(field, path, 'must be a domain-prefixed path (such as "acme.io/foo")')];
  }
  const errors: FieldError[] = [];
  if (host.length > 253) errors.push(invalid(field, host, "must be no more than 253 characters"));
  if (!dns1123Subdomain.test(host)) errors.push(invalid(field, host, dns1123SubdomainMessage));
  if (!httpPath.test(rest)) {
    errors.push(invalid(field, rest, `Invalid path (regex used for validation is '${httpPathFmt}')`));
  }
  return errors;
}

/** Kubernetes' isKubernetesDomainPrefix: k8s.io, kubernetes.io and their subdomains. */
function kubernetesDomainPrefix(key: string): boolean {
  const slash = key.indexOf("/");
  const domain = slash < 0 ? "" : key.slice(0, slash);
  return [/^(?:.+\.)?kubernetes\.io$/, /^(?:.+\.)?k8s\.io$/].some((pattern) => pattern.test(domain));
}

/**
 * The spec's errors in upstream's order. `compileErrors` come from `compileClaims(spec)`; an
 * expression's error is reported only where Kubernetes would have compiled it (not, for example,
 * when a rule sets both claim and expression, which is its own error). `prefix` goes before every
 * field path: none in conditions (as upstream's), `spec.` in the admission webhook's answer.
 */
export function specErrors(
  spec: JWTAuthenticatorSpec,
  compileErrors: readonly CompileError[],
  prefix = "",
): FieldError[] {
  const errors: FieldError[] = [];
  const compiled = (field: string, source: string) => {
    for (const e of compileErrors)
      if (e.field === `spec.${field}`) errors.push(invalid(field, source, e.message));
  };

  const seenClaims = new Set<string>();
  const seenClaimExpressions = new Set<string>();
  (spec.claimValidationRules ?? []).forEach((rule, i) => {
    const path = `claimValidationRules[${i}]`;
    const claim = rule.claim ?? "";
    const expression = rule.expression ?? "";
    if (claim && expression) {
      errors.push(invalid(path, claim, "claim and expression can't both be set"));
    } else if (!claim && !expression) {
      errors.push(required(path, "claim or expression is required"));
    } else if (claim) {
      if (rule.message) {
        errors.push(invalid(`${path}.message`, rule.message, "may not be specified when claim is set"));
      }
      if (seenClaims.has(claim)) errors.push(duplicate(`${path}.claim`, claim));
      seenClaims.add(claim);
    } else {
      if (rule.requiredValue) {
        errors.push(
          invalid(`${path}.requiredValue`, rule.requiredValue, "may not be specified when expression is set"),
        );
      }
      if (seenClaimExpressions.has(expression)) {
        errors.push(duplicate(`${path}.expression`, expression));
        return;
      }
      seenClaimExpressions.add(expression);
      compiled(`${path}.expression`, expression);
    }
  });

  const claims = spec.claims ?? {};
  for (const [name, claim, expression] of [
    ["username", claims.username, claims.usernameExpression],
    ["groups", claims.groups, claims.groupsExpression],
  ] as const) {
    if (claim && expression) {
      errors.push(invalid(`claims.${name}`, "", "claim and expression can't both be set"));
    } else if (expression) {
      compiled(`claims.${name}Expression`, expression);
    }
  }

  const seenExtraKeys = new Set<string>();
  (claims.extra ?? []).forEach((mapping, i) => {
    const path = `claims.extra[${i}]`;
    errors.push(...domainPrefixedPathErrors(`${path}.key`, mapping.key));
    if (mapping.key !== mapping.key.toLowerCase()) {
      errors.push(invalid(`${path}.key`, mapping.key, "must be lowercase"));
    }
    if (kubernetesDomainPrefix(mapping.key)) {
      errors.push(
        invalid(
          `${path}.key`,
          mapping.key,
          "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use",
        ),
      );
    }
    if (seenExtraKeys.has(mapping.key)) {
      errors.push(duplicate(`${path}.key`, mapping.key));
      return;
    }
    seenExtraKeys.add(mapping.key);
    if (!mapping.valueExpression) {
      errors.push(required(`${path}.valueExpression`));
      return;
    }
    compiled(`${path}.valueExpression`, mapping.valueExpression);
  });

  const seenUserExpressions = new Set<string>();
  (spec.userValidationRules ?? []).forEach((rule, i) => {
    const path = `userValidationRules[${i}].expression`;
    if (!rule.expression) {
      errors.push(required(path));
      return;
    }
    if (seenUserExpressions.has(rule.expression)) {
      errors.push(duplicate(path, rule.expression));
      return;
    }
    seenUserExpressions.add(rule.expression);
    compiled(path, rule.expression);
  });

  // Pinniped's own rule: extras travel in a client certificate's OU as "key=value".
  (claims.extra ?? []).forEach((mapping, i) => {
    if (mapping.key.includes("=")) {
      errors.push(
        invalid(
          `claims.extra[${i}].key`,
          mapping.key,
          "Pinniped does not allow extra key names to contain equals sign",
        ),
      );
    }
  });
  return prefix === "" ? errors : errors.map((e) => ({ ...e, field: `${prefix}${e.field}` }));
}
