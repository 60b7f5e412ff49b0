// From verified claims to a Kubernetes user, in the order and with the rules of Kubernetes' OIDC
// authenticator (k8s.io/apiserver/plugin/pkg/authenticator/token/oidc): username, groups, extra,
// required claims, claim validation rules, user validation rules. Pinniped adds no prefixes.
import {
  type CompiledClaims,
  type CompiledExpression,
  celUser,
  celValueFromJSON,
  charged,
  type EvaluationBudget,
  evaluationBudget,
  metered,
} from "../cel/claims.ts";
import type { UserInfo } from "../types.ts";

/** Kubernetes adds this extra from a `jti` claim; TokenCredentialRequest allows exactly this key. */
export const credentialIDKey = "authentication.kubernetes.io/credential-id";
const systemPrefix = "system:";

export type FailureKind =
  | "oversized"
  | "malformed"
  | "unsupported_alg"
  | "issuer"
  | "audience"
  | "expired"
  | "not_yet_valid"
  | "unknown_kid"
  | "signature"
  | "jwks_unavailable"
  | "claims"
  | "claim_validation"
  | "user_validation"
  | "system_prefix"
  | "aborted"
  | "internal";

export type Outcome<T> =
  | { ok: true; value: T }
  /** `safeReason`: `reason` without the token's claim values, where it has any. */
  | { ok: false; kind: FailureKind; reason: string; safeReason?: string };

export interface IdentityConfig {
  usernameClaim: string;
  groupsClaim: string;
  compiled: CompiledClaims;
  claimValidationRules: readonly { claim?: string; requiredValue?: string }[];
  systemPrefixPolicy: "Reject" | "Allow";
  /** Value reads all expressions may make for one token; default defaultEvaluationBudget. */
  evaluationBudget?: number;
}

const fail = (kind: FailureKind, reason: string): { ok: false; kind: FailureKind; reason: string } => ({
  ok: false,
  kind,
  reason,
});

/** A claim of the token itself, never something inherited from Object.prototype. */
export function claimValue(claims: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(claims, name) ? claims[name] : undefined;
}

function usesCEL(compiled: CompiledClaims): boolean {
  return (
    compiled.username !== undefined ||
    compiled.groups !== undefined ||
    compiled.extra.length > 0 ||
    compiled.claimRules.length > 0 ||
    compiled.userRules.length > 0
  );
}

/**
 * Maps claims that passed signature, issuer, audience and time checks. Never throws: an expression
 * that fails to evaluate fails the login, as in Kubernetes.
 */
// The one budget shared by every expression evaluated for a token, by the variables they read.
const budgets = new WeakMap<object, EvaluationBudget>();

export function userFromClaims(claims: Record<string, unknown>, config: IdentityConfig): Outcome<UserInfo> {
  const { compiled } = config;
  // Converted once for all expressions, and only when there are any (as Kubernetes does).
  const budget = evaluationBudget(config.evaluationBudget);
  const vars = usesCEL(compiled) ? { claims: metered(celValueFromJSON(claims), budget) } : {};
  budgets.set(vars, budget);

  const username = compiled.username
    ? usernameFromExpression(compiled.username, vars)
    : usernameFromClaim(claims, config.usernameClaim);
  if (!username.ok) return username;

  const groups = compiled.groups
    ? stringListFromExpression(compiled.groups, vars, "groups expression")
    : groupsFromClaim(claims, config.groupsClaim);
  if (!groups.ok) return groups;

  const extra: Record<string, string[]> = {};
  const jti = claimValue(claims, "jti");
  if (typeof jti === "string" && jti !== "") extra[credentialIDKey] = [`JTI=${jti}`];
  for (const mapping of compiled.extra) {
    const values = stringListFromExpression(mapping.value, vars, `extra ${JSON.stringify(mapping.key)}`);
    if (!values.ok) return values;
    if (values.value.length > 0) extra[mapping.key] = values.value;
  }

  for (const rule of config.claimValidationRules) {
    if (!rule.claim) continue;
    const checked = requiredClaim(claims, rule.claim, rule.requiredValue ?? "");
    if (!checked.ok) return checked;
  }
  for (const { rule, message } of compiled.claimRules) {
    const checked = validationRule(rule, message, vars, "claim_validation");
    if (!checked.ok) return checked;
  }

  const user: UserInfo = { username: username.value, groups: groups.value };
  if (Object.keys(extra).length > 0) user.extra = extra;

  if (compiled.userRules.length > 0) {
    const userVars = { user: metered(celUser(user), budget) };
    budgets.set(userVars, budget);
    for (const { rule, message } of compiled.userRules) {
      const checked = validationRule(rule, message, userVars, "user_validation");
      if (!checked.ok) return checked;
    }
  }

  if (config.systemPrefixPolicy === "Reject") {
    if (user.username.startsWith(systemPrefix)) {
      return fail(
        "system_prefix",
        `username ${JSON.stringify(user.username)} has the reserved "system:" prefix`,
      );
    }
    const group = user.groups.find((g) => g.startsWith(systemPrefix));
    if (group !== undefined) {
      return {
        ...fail("system_prefix", `group ${JSON.stringify(group)} has the reserved "system:" prefix`),
        safeReason: 'a group has the reserved "system:" prefix',
      };
    }
  }
  return { ok: true, value: user };
}

function usernameFromClaim(claims: Record<string, unknown>, claim: string): Outcome<string> {
  const value = claimValue(claims, claim);
  if (value === undefined) return fail("claims", `username claim ${JSON.stringify(claim)} is missing`);
  if (typeof value !== "string") {
    return fail("claims", `username claim ${JSON.stringify(claim)} is not a string`);
  }
  // Kubernetes maps an empty claim to an empty username, which TokenCredentialRequest then refuses.
  if (value === "") return fail("claims", `username claim ${JSON.stringify(claim)} is empty`);
  // OIDC Core §5.1: an address the issuer says is unverified must not become an identity.
  const emailVerified = claimValue(claims, "email_verified");
  if (claim === "email" && emailVerified !== undefined && emailVerified !== true) {
    return fail(
      "claims",
      typeof emailVerified === "boolean" ? "email not verified" : 'claim "email_verified" is not a boolean',
    );
  }
  return { ok: true, value };
}

function usernameFromExpression(expression: CompiledExpression, vars: object): Outcome<string> {
  const result = evaluate(expression, vars, "username expression");
  if (!result.ok) return result;
  if (typeof result.value !== "string") return fail("claims", "username expression must return a string");
  if (result.value === "") return fail("claims", "username expression returned an empty string");
  return { ok: true, value: result.value };
}

/**
 * A string or an array of strings; a missing claim or `null` is no groups. Unlike Kubernetes, empty
 * strings are dropped (as its expression path does) rather than becoming a group named "".
 */
function groupsFromClaim(claims: Record<string, unknown>, claim: string): Outcome<string[]> {
  const value = claimValue(claims, claim);
  if (value === undefined || value === null) return { ok: true, value: [] };
  if (typeof value === "string") return { ok: true, value: value === "" ? [] : [value] };
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
    return { ok: true, value: value.filter((v) => v !== "") };
  }
  return fail("claims", `groups claim ${JSON.stringify(claim)} is not a string or an array of strings`);
}

/** Kubernetes' convertCELValueToStringList: "", [] and null are nothing; "" inside a list is dropped. */
function stringListFromExpression(
  expression: CompiledExpression,
  vars: object,
  what: string,
): Outcome<string[]> {
  const result = evaluate(expression, vars, what);
  if (!result.ok) return result;
  const value = result.value;
  if (value === null) return { ok: true, value: [] };
  if (typeof value === "string") return { ok: true, value: value === "" ? [] : [value] };
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
    return { ok: true, value: value.filter((v) => v !== "") };
  }
  return fail("claims", `${what} must return a string or a list of strings`);
}

/** Only string claims can be required, as in Kubernetes; an unset requiredValue means "". */
function requiredClaim(claims: Record<string, unknown>, claim: string, required: string): Outcome<true> {
  const name = JSON.stringify(claim);
  const value = claimValue(claims, claim);
  if (value === undefined) return fail("claim_validation", `required claim ${name} is missing`);
  if (typeof value !== "string") return fail("claim_validation", `required claim ${name} is not a string`);
  // The value is left out of the reason: claims are the user's data, and the reason goes to logs.
  if (value !== required)
    return fail("claim_validation", `required claim ${name} does not have the required value`);
  return { ok: true, value: true };
}

function validationRule(
  rule: CompiledExpression,
  message: string | undefined,
  vars: object,
  kind: "claim_validation" | "user_validation",
): Outcome<true> {
  const name = ruleName(rule);
  const result = evaluate(rule, vars, name, kind);
  if (!result.ok) return result;
  if (typeof result.value !== "boolean")
    return fail(kind, `${name}: validation expression must return a boolean`);
  if (!result.value)
    return fail(kind, `${name}: ${message || `validation expression '${rule.source}' failed`}`);
  return { ok: true, value: true };
}

/** `spec.userValidationRules[0].expression` → `userValidationRules[0]`. */
function ruleName(rule: CompiledExpression): string {
  return rule.field.replace(/^spec\./, "").replace(/\.expression$/, "");
}

function evaluate(
  expression: CompiledExpression,
  vars: object,
  what: string,
  kind: FailureKind = "claims",
): Outcome<unknown> {
  const budget = budgets.get(vars);
  const run = () => expression.evaluate(vars as Record<string, unknown>);
  try {
    return { ok: true, value: budget ? charged(budget, run) : run() };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // cel-js appends the source with a caret on further lines; the first line says what went wrong.
    return fail(kind, `${what}: evaluation failed: ${message.split("\n")[0]}`);
  }
}
