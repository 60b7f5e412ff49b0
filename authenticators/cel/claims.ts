// JWTAuthenticator CEL expressions, compatible with Kubernetes' structured
// authentication configuration: compiled and type-checked once per spec (by the
// reconciler and by the admission webhook), evaluated once per token.
import { Environment } from "@marcbachmann/cel-js";

export interface CompileError {
  /** The spec field, e.g. `spec.claimValidationRules[1].expression`. */
  field: string;
  message: string;
}

type Kind = "string" | "stringOrList" | "bool";

/** Result types a type check may report for each kind; `dyn` is decided at evaluation. */
const acceptedTypes: Record<Kind, string[]> = {
  string: ["string", "dyn"],
  // `[]` type-checks as a list of a free type parameter and `null` as null_type; Kubernetes
  // accepts both (they mean "no groups" / "no extra").
  stringOrList: ["string", "list<string>", "list<dyn>", "list<T>", "list", "null", "null_type", "dyn"],
  bool: ["bool", "dyn"],
};
const kindDescription: Record<Kind, string> = {
  string: "string",
  stringOrList: "string or list of strings",
  bool: "bool",
};

export interface CompiledExpression {
  readonly field: string;
  readonly source: string;
  /** Throws on an evaluation error (missing claim, wrong type): the login fails, not the process. */
  evaluate(vars: Record<string, unknown>): unknown;
}

const claimsEnv = new Environment({ enableOptionalTypes: true }).registerVariable("claims", "map");

/**
 * `user` is typed like Kubernetes' UserInfo, so `user.usrname` or `user.username + 1`
 * fail at apply time rather than at every login. Evaluate with every field present
 * (see `celUser`).
 */
const userEnv = new Environment({ enableOptionalTypes: true }).registerVariable({
  name: "user",
  schema: { username: "string", uid: "string", groups: "list<string>", extra: "map<string, list<string>>" },
});

/** The `user` variable for userValidationRules: absent fields are empty, as in Kubernetes. */
export function celUser(user: {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}): Record<string, unknown> {
  return { username: user.username, uid: user.uid ?? "", groups: user.groups ?? [], extra: user.extra ?? {} };
}

function compile(
  env: Environment,
  field: string,
  source: string,
  kind: Kind,
  errors: CompileError[],
): CompiledExpression | undefined {
  let check: ReturnType<Environment["check"]>;
  try {
    check = env.check(source);
  } catch (err) {
    errors.push({ field, message: `compilation failed: ${firstLine(err)}` });
    return undefined;
  }
  if (!check.valid) {
    errors.push({ field, message: `compilation failed: ${firstLine(check.error)}` });
    return undefined;
  }
  const type = String(check.type);
  if (!acceptedTypes[kind].includes(type)) {
    errors.push({ field, message: `must evaluate to ${kindDescription[kind]}, but evaluates to ${type}` });
    return undefined;
  }
  const program = env.parse(source);
  return {
    field,
    source,
    evaluate: (vars) => program(vars),
  };
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split("\n")[0] ?? message;
}

export interface ClaimsSpecInput {
  claims?: {
    usernameExpression?: string;
    groupsExpression?: string;
    extra?: { key: string; valueExpression: string }[];
  };
  claimValidationRules?: { claim?: string; requiredValue?: string; expression?: string; message?: string }[];
  userValidationRules?: { expression: string; message?: string }[];
}

export interface CompiledClaims {
  username: CompiledExpression | undefined;
  groups: CompiledExpression | undefined;
  extra: { key: string; value: CompiledExpression }[];
  claimRules: { rule: CompiledExpression; message: string | undefined }[];
  userRules: { rule: CompiledExpression; message: string | undefined }[];
}

/**
 * Compiles every expression of a JWTAuthenticator spec. `errors` lists each one that
 * does not parse, does not type-check, or has the wrong result type, by field.
 */
export function compileClaims(spec: ClaimsSpecInput): { compiled: CompiledClaims; errors: CompileError[] } {
  const errors: CompileError[] = [];
  const claims = spec.claims ?? {};
  const username = claims.usernameExpression
    ? compile(claimsEnv, "spec.claims.usernameExpression", claims.usernameExpression, "string", errors)
    : undefined;
  const groups = claims.groupsExpression
    ? compile(claimsEnv, "spec.claims.groupsExpression", claims.groupsExpression, "stringOrList", errors)
    : undefined;
  const extra: CompiledClaims["extra"] = [];
  (claims.extra ?? []).forEach((mapping, i) => {
    const value = compile(
      claimsEnv,
      `spec.claims.extra[${i}].valueExpression`,
      mapping.valueExpression,
      "stringOrList",
      errors,
    );
    if (value) extra.push({ key: mapping.key, value });
  });
  const claimRules: CompiledClaims["claimRules"] = [];
  (spec.claimValidationRules ?? []).forEach((rule, i) => {
    if (!rule.expression) return;
    const compiled = compile(
      claimsEnv,
      `spec.claimValidationRules[${i}].expression`,
      rule.expression,
      "bool",
      errors,
    );
    if (compiled) claimRules.push({ rule: compiled, message: rule.message });
  });
  const userRules: CompiledClaims["userRules"] = [];
  (spec.userValidationRules ?? []).forEach((rule, i) => {
    const compiled = compile(
      userEnv,
      `spec.userValidationRules[${i}].expression`,
      rule.expression,
      "bool",
      errors,
    );
    if (compiled) userRules.push({ rule: compiled, message: rule.message });
  });
  // Only about an expression that compiled: a syntax error's message stays its own.
  if (username && usesEmailWithoutVerification(spec)) {
    errors.push({
      field: "spec.claims.usernameExpression",
      message:
        "claims.email_verified must be used in claims.usernameExpression or claims.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in claims.usernameExpression",
    });
  }
  return { compiled: { username, groups, extra, claimRules, userRules }, errors };
}

const usesEmail = /\bclaims\s*\.\s*\??\s*email\b(?!_)|\bclaims\s*\[\s*["']email["']\s*\]/;
const usesEmailVerified = /\bclaims\s*\.\s*\??\s*email_verified\b|["']email_verified["']/;

/**
 * Kubernetes refuses a username expression that reads `claims.email` unless some
 * expression also reads `claims.email_verified`: otherwise an unverified address
 * could become a username.
 */
function usesEmailWithoutVerification(spec: ClaimsSpecInput): boolean {
  const username = spec.claims?.usernameExpression;
  if (!username || !usesEmail.test(username)) return false;
  const others = [
    username,
    ...(spec.claims?.extra ?? []).map((e) => e.valueExpression),
    ...(spec.claimValidationRules ?? []).map((r) => r.expression ?? ""),
  ];
  return !others.some((source) => usesEmailVerified.test(source));
}

/**
 * JSON claims as CEL sees them in Kubernetes: integral numbers are CEL ints (so
 * `claims.exp - claims.nbf <= 86400` works), other numbers doubles.
 */
export function celValueFromJSON(value: unknown): unknown {
  if (typeof value === "number") return Number.isSafeInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map(celValueFromJSON);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = celValueFromJSON(v);
    return out;
  }
  return value;
}

/**
 * Value reads (a field of a map, an element of a list) that one token's expressions may make
 * together. Kubernetes bounds each CEL evaluation by a runtime cost; reads are this evaluator's
 * cost unit. This many take 10-20 ms on a busy core (bench:floods measured 25-70 ms for twice
 * as many), within the 50 ms one request may hold the event loop: a quadratic rule over a token
 * with thousands of groups fails the login instead of stalling every other request, and a linear
 * pass over 6,000 groups still fits.
 */
export const defaultEvaluationBudget = 20_000;

export class EvaluationBudgetExceeded extends Error {
  constructor(budget: number) {
    super(`the expressions exceeded their cost budget of ${budget} value reads for one token`);
  }
}

export interface EvaluationBudget {
  readonly limit: number;
  remaining: number;
  /** Reads are charged only while an expression runs, not when its result is looked at. */
  metering: boolean;
}

export function evaluationBudget(limit = defaultEvaluationBudget): EvaluationBudget {
  return { limit, remaining: limit, metering: false };
}

/** Runs `fn` with reads of metered values charged to `budget`. */
export function charged<T>(budget: EvaluationBudget, fn: () => T): T {
  budget.metering = true;
  try {
    return fn();
  } finally {
    budget.metering = false;
  }
}

/**
 * The value as CEL reads it, with every field and element read charged to `budget`. Wrappers are
 * made once per object, so a value read twice is the same wrapper (and costs twice).
 */
export function metered<T>(value: T, budget: EvaluationBudget): T {
  const wrappers = new WeakMap<object, object>();
  const wrap = (v: unknown): unknown => {
    if (v === null || typeof v !== "object") return v;
    let wrapper = wrappers.get(v);
    if (!wrapper) {
      const list = Array.isArray(v);
      wrapper = new Proxy(v, {
        get(target, prop, receiver) {
          const got = Reflect.get(target, prop, receiver);
          if (!budget.metering || typeof prop !== "string" || (list && !/^\d+$/.test(prop))) return got;
          if (--budget.remaining < 0) throw new EvaluationBudgetExceeded(budget.limit);
          return wrap(got);
        },
      });
      wrappers.set(v, wrapper);
    }
    return wrapper;
  };
  return wrap(value) as T;
}
