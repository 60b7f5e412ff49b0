// The JWTAuthenticator's token check: Kubernetes' OIDC token authenticator as Pinniped configures it
// (RS256/ES256, exact issuer, audience, expiry, username and groups claims without prefixes), plus
// Kubernetes' structured-authentication CEL mappings and rules, plus our systemPrefixPolicy.
//
// Cheap checks come first, as in go-oidc: the size, the shape, the algorithm, then the issuer,
// audience and times of the still-unverified claims, so that foreign, expired or garbage tokens cost
// no signature check and can never trigger a JWKS fetch. Only then the signature, then the claims.
import { compactVerify, errors, type LocalJWKSet } from "jose";
import { type Clock, realClock } from "../../kube/clock.ts";
import { isObject } from "../../kube/isobject.ts";
import { turns } from "../../kube/turns.ts";
import { discardLogger, type Logger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import type { CompiledClaims } from "../cel/claims.ts";
import type { AuthenticationResult, TokenAuthenticator, UserInfo } from "../types.ts";
import { claimValue, type FailureKind, type Outcome, userFromClaims } from "./identity.ts";
import {
  defaultMinRefetchIntervalMs,
  defaultRefreshIntervalMs,
  type FetchOutcome,
  RemoteKeySet,
} from "./jwks.ts";
import { type JWTMetrics, jwtMetrics } from "./metrics.ts";

/** Upstream Pinniped's list. Both are asymmetric: an HMAC or unsigned token never gets this far. */
export const supportedAlgorithms = ["RS256", "ES256"] as const;
/**
 * Tokens above this are refused before parsing. ID tokens with a few hundred groups stay well under it;
 * anything larger is not worth hashing and parsing.
 */
export const maxTokenBytes = 64 * 1024;
/**
 * Clock skew allowed for `nbf`: go-oidc's five minutes, so that a provider whose clock runs ahead
 * works here as it does with upstream. `exp` gets none, as in go-oidc: a leeway there would only
 * lengthen every token's life. `iat` must be a number but is not compared with the clock, as
 * neither go-oidc nor Kubernetes does.
 */
export const notBeforeLeewayMs = 5 * 60_000;

export interface JWTAuthenticatorConfig {
  /** JWTAuthenticator name: metrics label, logs. */
  name: string;
  /** Exact expected `iss`. */
  issuer: string;
  /** `[spec.audience, ...(spec.audiences ?? [])]`. */
  audiences: string[];
  /** The only policy (and the behaviour whatever is passed): `aud` must contain one of `audiences`. */
  audienceMatchPolicy?: "MatchAny";
  /** spec.claims.username, default "username" (ignored when compiled.username is set). */
  usernameClaim?: string;
  /** spec.claims.groups, default "groups" (ignored when compiled.groups is set). */
  groupsClaim?: string;
  /** From compileClaims(spec), compiled once per spec change by the reconciler. */
  compiled: CompiledClaims;
  /** The non-CEL rules of spec.claimValidationRules. */
  claimValidationRules: { claim?: string; requiredValue?: string }[];
  systemPrefixPolicy: "Reject" | "Allow";
  jwksURL: string;
  /** undefined = system roots. */
  caPEM: string | undefined;
  /** Injected clock (ms) for token times, the refetch rate limit and metrics; defaults to `clock.now`. */
  now?: () => number;
  /** Timers for the periodic JWKS refresh; tests pass a FakeClock. */
  clock?: Clock;
  /** Periodic JWKS refresh; default 5 minutes. */
  refreshIntervalMs?: number;
  /** At most one token-triggered JWKS fetch per this interval; default 5 seconds. */
  minRefetchIntervalMs?: number;
  metrics?: Metrics;
  log?: Logger;
}

export interface JWTTokenAuthenticator extends TokenAuthenticator {
  /** Fetches the JWKS now (used by the reconciler for the JWKSFetchValid condition); rejects with a clear Error on failure. */
  fetchKeys(signal?: AbortSignal): Promise<void>;
}

/** Throws only on a config the reconciler should never build (no audience, a non-https JWKS URL). */
export function newJWTAuthenticator(config: JWTAuthenticatorConfig): JWTTokenAuthenticator {
  return new JWTAuthenticator(config);
}

const base64url = /^[A-Za-z0-9_-]+$/;
const signaturePart = /^[A-Za-z0-9_-]*$/;
const verifyOptions = { algorithms: [...supportedAlgorithms] };

// The gauges of a name are removed when its authenticator closes, unless a newer one of the same
// name (the cache stores the replacement before closing the old one) has taken them over.
const gaugeOwners = new WeakMap<Metrics, Map<string, JWTAuthenticator>>();

class JWTAuthenticator implements JWTTokenAuthenticator {
  readonly #name: string;
  readonly #issuer: string;
  readonly #audiences: Set<string>;
  readonly #config: JWTAuthenticatorConfig;
  readonly #now: () => number;
  readonly #keySet: RemoteKeySet;
  readonly #metricsRegistry: Metrics;
  readonly #metrics: JWTMetrics;
  readonly #log: Logger;

  constructor(config: JWTAuthenticatorConfig) {
    if (config.issuer === "") throw new Error("a JWT authenticator needs an issuer");
    if (config.audiences.length === 0 || config.audiences.includes("")) {
      throw new Error("a JWT authenticator needs at least one audience, and no empty one");
    }
    if (new URL(config.jwksURL).protocol !== "https:") {
      throw new Error(`the JWKS URL ${config.jwksURL} is not https`);
    }
    const clock = config.clock ?? realClock;
    this.#config = config;
    this.#name = config.name;
    this.#issuer = config.issuer;
    this.#audiences = new Set(config.audiences);
    this.#now = config.now ?? (() => clock.now());
    this.#log = (config.log ?? discardLogger()).child({
      component: "jwt-authenticator",
      authenticator: config.name,
    });
    this.#metricsRegistry = config.metrics ?? new Metrics();
    this.#metrics = jwtMetrics(this.#metricsRegistry);
    const owners = gaugeOwners.get(this.#metricsRegistry) ?? new Map<string, JWTAuthenticator>();
    gaugeOwners.set(this.#metricsRegistry, owners);
    owners.set(config.name, this);
    this.#keySet = new RemoteKeySet({
      url: config.jwksURL,
      caPEM: config.caPEM,
      clock,
      now: this.#now,
      refreshIntervalMs: config.refreshIntervalMs ?? defaultRefreshIntervalMs,
      minRefetchIntervalMs: config.minRefetchIntervalMs ?? defaultMinRefetchIntervalMs,
      onFetch: (outcome) => this.#recordFetch(outcome),
    });
  }

  fetchKeys(signal?: AbortSignal): Promise<void> {
    return abortable(this.#keySet.fetch(), signal);
  }

  async authenticateToken(token: string, signal?: AbortSignal): Promise<AuthenticationResult> {
    const started = performance.now();
    let outcome: Outcome<UserInfo>;
    try {
      outcome = await this.#authenticate(token, signal);
    } catch (err) {
      // Nothing above should throw; if something does, the login fails rather than the request.
      outcome = fail("internal", `unexpected error: ${err instanceof Error ? err.message : String(err)}`);
    }
    const result = outcome.ok ? "success" : "failure";
    const labels = { authenticator: this.#name, result };
    this.#metrics.latency.observe(labels, (performance.now() - started) / 1000);
    this.#metrics.verifications.inc({ ...labels, reason: outcome.ok ? "" : outcome.kind });
    if (outcome.ok) return { authenticated: true, user: outcome.value };
    this.#log.debug("token rejected", { reason: outcome.reason });
    return {
      authenticated: false,
      reason: outcome.reason,
      code: outcome.kind,
      ...(outcome.safeReason ? { safeReason: outcome.safeReason } : {}),
    };
  }

  close(): void {
    this.#keySet.close();
    const owners = gaugeOwners.get(this.#metricsRegistry);
    if (owners?.get(this.#name) !== this) return;
    owners.delete(this.#name);
    for (const result of ["success", "failure"]) {
      this.#metrics.jwksFetchLastTimestamp.remove({ authenticator: this.#name, result });
    }
  }

  async #authenticate(token: string, signal: AbortSignal | undefined): Promise<Outcome<UserInfo>> {
    if (signal?.aborted) return fail("aborted", "the request was aborted");
    if (typeof token !== "string" || token === "") return fail("malformed", "empty token");
    if (token.length > maxTokenBytes) return fail("oversized", `token is longer than ${maxTokenBytes} bytes`);
    const parts = token.split(".");
    // An empty signature passes this check so that an unsigned (alg "none") token is named as such.
    if (
      parts.length !== 3 ||
      !base64url.test(parts[0]!) ||
      !base64url.test(parts[1]!) ||
      !signaturePart.test(parts[2]!)
    ) {
      return fail("malformed", "token is not a JWS in compact serialization");
    }
    const header = decodeJSONObject(parts[0]!);
    if (!header) return fail("malformed", "token header is not a JSON object");
    const alg = header.alg;
    if (alg === "none") return fail("unsupported_alg", 'unsigned token (alg "none")');
    if (!supportedAlgorithms.some((a) => a === alg)) {
      return fail(
        "unsupported_alg",
        `unsupported alg ${quote(alg)}, want one of ${supportedAlgorithms.join(", ")}`,
      );
    }
    if (header.crit !== undefined) return fail("malformed", "token header has crit, which is not supported");
    const kid = header.kid;
    if (kid !== undefined && typeof kid !== "string")
      return fail("malformed", "token header kid is not a string");
    const claims = decodeJSONObject(parts[1]!);
    if (!claims) return fail("malformed", "token payload is not a JSON object");

    const checked = this.#checkUnverifiedClaims(claims);
    if (!checked.ok) return checked;
    const verified = await this.#verifySignature(token, kid, signal);
    if (!verified.ok) return verified;
    // Logins whose signatures check out together would otherwise evaluate their claims together.
    await turns.take();
    return userFromClaims(claims, {
      usernameClaim: this.#config.usernameClaim || "username",
      groupsClaim: this.#config.groupsClaim || "groups",
      compiled: this.#config.compiled,
      claimValidationRules: this.#config.claimValidationRules,
      systemPrefixPolicy: this.#config.systemPrefixPolicy,
    });
  }

  /** go-oidc's checks (issuer, audience, exp, nbf), on claims whose signature is checked next. */
  #checkUnverifiedClaims(claims: Record<string, unknown>): Outcome<true> {
    const iss = claimValue(claims, "iss");
    if (iss !== this.#issuer) {
      return {
        ...fail("issuer", `issuer mismatch: token iss is ${quote(iss)}`),
        safeReason: "issuer mismatch",
      };
    }

    const aud = claimValue(claims, "aud");
    if (aud === undefined) return fail("audience", "token has no aud claim");
    const audiences = typeof aud === "string" ? [aud] : aud;
    if (!Array.isArray(audiences) || !audiences.every((a) => typeof a === "string")) {
      return fail("malformed", "aud claim is not a string or an array of strings");
    }
    if (!audiences.some((a) => this.#audiences.has(a))) {
      return {
        ...fail("audience", `audience mismatch: token aud is ${quote(aud)}`),
        safeReason: "audience mismatch",
      };
    }

    const now = this.#now();
    const exp = claimValue(claims, "exp");
    if (exp === undefined) return fail("malformed", "token has no exp claim");
    if (!isNumericDate(exp)) return fail("malformed", "exp claim is not a number");
    if (exp * 1000 < now) return fail("expired", "token expired");
    for (const name of ["nbf", "iat"] as const) {
      const value = claimValue(claims, name);
      if (value !== undefined && !isNumericDate(value))
        return fail("malformed", `${name} claim is not a number`);
    }
    const nbf = claimValue(claims, "nbf");
    if (typeof nbf === "number" && nbf * 1000 > now + notBeforeLeewayMs) {
      return fail("not_yet_valid", "token is not valid yet (nbf)");
    }
    return { ok: true, value: true };
  }

  /**
   * Against the cached keys; a token whose key we do not have (an unknown kid, or no kid and no key
   * that verifies, as go-oidc retries) triggers one rate-limited refetch and a second try.
   */
  async #verifySignature(
    token: string,
    kid: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Outcome<true>> {
    let keys = this.#keySet.keys;
    let refetched = false;
    if (keys === undefined) {
      const fetched = await this.#fetchForToken(signal);
      if (!fetched.ok) return fetched.kind === "aborted" ? fetched : fail("jwks_unavailable", fetched.reason);
      keys = fetched.value;
      refetched = true;
    }
    let result = await tryVerify(token, keys);
    if (!refetched && (result === "no-key" || (result === "bad-signature" && kid === undefined))) {
      const fetched = await this.#fetchForToken(signal);
      if (!fetched.ok) {
        if (fetched.kind === "aborted") return fetched;
        return fail(
          result === "no-key" ? "unknown_kid" : "signature",
          `${noKeyReason(result, kid)} (${fetched.reason})`,
        );
      }
      result = await tryVerify(token, fetched.value);
    }
    if (result === "ok") return { ok: true, value: true };
    if (result === "no-key") return fail("unknown_kid", noKeyReason(result, kid));
    if (result === "bad-signature") return fail("signature", noKeyReason(result, kid));
    return fail("signature", `signature could not be checked: ${result.error}`);
  }

  async #fetchForToken(signal: AbortSignal | undefined): Promise<Outcome<LocalJWKSet>> {
    const fetching = this.#keySet.fetchIfAllowed();
    if (!fetching) {
      const last = this.#keySet.lastError;
      return fail(
        "jwks_unavailable",
        last
          ? `JWKS refetch rate-limited; the last fetch failed: ${last.message}`
          : "JWKS refetch rate-limited",
      );
    }
    try {
      await abortable(fetching, signal);
    } catch (err) {
      if (signal?.aborted) return fail("aborted", "the request was aborted while fetching the JWKS");
      return fail(
        "jwks_unavailable",
        `JWKS fetch failed: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const keys = this.#keySet.keys;
    return keys ? { ok: true, value: keys } : fail("jwks_unavailable", "no JWKS");
  }

  #recordFetch(outcome: FetchOutcome): void {
    const result = outcome.ok ? "success" : "failure";
    const labels = { authenticator: this.#name, result };
    this.#metrics.jwksFetches.inc(labels);
    this.#metrics.jwksFetchLastTimestamp.set(labels, this.#now() / 1000);
    const url = this.#config.jwksURL;
    if (!outcome.ok) {
      this.#log.warn("could not fetch the JWKS", { url, error: outcome.error.message });
    } else if (outcome.changed) {
      this.#log.info("fetched a new JWKS", { url, kids: outcome.kids, keyCount: outcome.keyCount });
    } else {
      this.#log.debug("fetched the JWKS, unchanged", { url });
    }
  }
}

type VerifyResult = "ok" | "no-key" | "bad-signature" | { error: string };

async function tryVerify(token: string, keys: LocalJWKSet): Promise<VerifyResult> {
  try {
    await compactVerify(token, keys, verifyOptions);
    return "ok";
  } catch (err) {
    if (err instanceof errors.JWKSNoMatchingKey) return "no-key";
    if (err instanceof errors.JWSSignatureVerificationFailed) return "bad-signature";
    // No kid and several keys of the token's type: go-oidc tries each, and so do we.
    if (err instanceof errors.JWKSMultipleMatchingKeys) {
      for await (const key of err) {
        if (
          await compactVerify(token, key, verifyOptions).then(
            () => true,
            () => false,
          )
        )
          return "ok";
      }
      return "bad-signature";
    }
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

function noKeyReason(result: "no-key" | "bad-signature", kid: string | undefined): string {
  if (result === "bad-signature") return "signature invalid";
  return kid === undefined ? "no key in the JWKS fits the token" : `no key in the JWKS has kid ${quote(kid)}`;
}

function fail(kind: FailureKind, reason: string): { ok: false; kind: FailureKind; reason: string } {
  return { ok: false, kind, reason };
}

function decodeJSONObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/**
 * A value from the token for a reason: strings JSON-quoted and bounded, anything else by its type
 * only, since the token is attacker-controlled (and may nest deeper than JSON.stringify recurses).
 */
function quote(value: unknown): string {
  if (value === undefined) return "absent";
  const strings =
    typeof value === "string" || (Array.isArray(value) && value.every((v) => typeof v === "string"));
  if (!strings) return `a JSON ${value === null ? "null" : Array.isArray(value) ? "array" : typeof value}`;
  const text = JSON.stringify(value);
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

/** Waits for `promise` unless `signal` aborts first; the promise itself goes on (it is shared). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new Error("aborted"));
    if (signal.aborted) {
      onAbort();
      promise.catch(() => undefined);
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
