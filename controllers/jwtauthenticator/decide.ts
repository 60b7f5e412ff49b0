// The JWTAuthenticator reconciler's decisions, pure: from what was observed (the spec, its CA
// bundle, the cache, the answers of the probes so far) to the next probe to run, or to the
// conditions and what to do with the cache. Conditions, reasons and messages are upstream's
// (internal/controller/authenticator/jwtcachefiller/jwtcachefiller.go).
import { createHash } from "node:crypto";
import {
  type JWTAuthenticatorSpec,
  AuthenticatorConditionReason as Reason,
  AuthenticatorConditionType as Type,
  unableToValidateMessage,
} from "../../apis/index.ts";
import { refusedHost } from "../../authenticators/outbound.ts";
import type { TLSResolution } from "../../authenticators/tls/cabundle.ts";
import { aggregateMessage, type FieldError } from "../../kube/fielderror.ts";
import { goQuote } from "../../kube/goquote.ts";
import { isObject } from "../../kube/isobject.ts";
import type { ConditionUpdate } from "../runtime/conditions.ts";
import { decodedPath, discoveryURL, parseURL } from "./urls.ts";

/** The answer of OIDC discovery: the parsed document, or why there is none (worded like go-oidc). */
export type DiscoveryProbe = { ok: true; document: unknown } | { ok: false; error: string };

/**
 * Building the authenticator and fetching its keys: `init` failed when the factory threw,
 * `fetch` when the JWKS could not be fetched.
 */
export type KeysProbe = { ok: true } | { ok: false; stage: "init" | "fetch"; error: string };

export interface Observation {
  spec: JWTAuthenticatorSpec;
  tls: TLSResolution;
  /** `fingerprint(spec, tls.bundle)`. */
  fingerprint: string;
  /** The fingerprint of the authenticator in the cache under this name, if any. */
  cachedFingerprint: string | undefined;
  /** The spec's validation and CEL errors (see `specErrors`). */
  specErrors: readonly FieldError[];
  /** Whether a configured strategy's credential carries extras to kube-apiserver (a JWT); default false. */
  extrasDeliverable?: boolean;
  /** Absent until run. */
  discovery?: DiscoveryProbe;
  keys?: KeysProbe;
}

export type NextProbe = { probe: "discovery"; url: string } | { probe: "keys"; jwksURL: string };

export interface Outcome {
  /** Upstream's order; the merge sorts them by type. */
  conditions: ConditionUpdate[];
  /** Every condition is True: keep (or store) the authenticator; otherwise evict it. */
  valid: boolean;
  /** The cache already holds this very authenticator, so nothing was probed. */
  skipped: boolean;
  /**
   * Set when a probe failed in a way a retry may fix (network, a provider misbehaving): the
   * sync fails with it after writing the status, so it is retried with backoff, as upstream.
   */
  retry: string | undefined;
}

export type Decision = { next: NextProbe } | ({ next: undefined } & Outcome);

const truncateAt = 300;

/**
 * Upstream's TruncateMostLongErr: long errors are cut at 300 characters, except those of
 * go-oidc and x509, which are always whole.
 */
export function truncateLongError(message: string): string {
  if (message.length <= truncateAt || message.includes("oidc:") || message.includes("x509:")) return message;
  return `${message.slice(0, truncateAt)} [truncated ${message.length - truncateAt} chars]`;
}

const success = (type: string, message: string): ConditionUpdate => ({
  type,
  status: "True",
  reason: Reason.Success,
  message,
});
const failure = (type: string, reason: string, message: string): ConditionUpdate => ({
  type,
  status: "False",
  reason,
  message,
});
const unknown = (type: string): ConditionUpdate => ({
  type,
  status: "Unknown",
  reason: Reason.UnableToValidate,
  message: unableToValidateMessage,
});

export function issuerCondition(issuer: string): ConditionUpdate {
  const parsed = parseURL(issuer);
  if (!parsed.ok) {
    return failure(
      Type.IssuerURLValid,
      Reason.InvalidIssuerURL,
      `spec.issuer URL is invalid: ${parsed.error}`,
    );
  }
  if (parsed.scheme !== "https" || !parsed.url) {
    return failure(
      Type.IssuerURLValid,
      Reason.InvalidIssuerURLScheme,
      `spec.issuer ${issuer} has invalid scheme, require 'https'`,
    );
  }
  const refused = refusedHost(parsed.url.hostname);
  if (refused) {
    return failure(Type.IssuerURLValid, Reason.InvalidIssuerURL, `spec.issuer URL host ${refused}`);
  }
  if (decodedPath(parsed.url).endsWith("/.well-known/openid-configuration")) {
    return failure(
      Type.IssuerURLValid,
      Reason.InvalidIssuerURLContainsWellKnownEndpoint,
      `spec.issuer ${issuer} cannot include path '/.well-known/openid-configuration'`,
    );
  }
  if (parsed.url.searchParams.size > 0) {
    return failure(
      Type.IssuerURLValid,
      Reason.InvalidIssuerURLContainsQueryParams,
      `spec.issuer ${issuer} cannot include query params`,
    );
  }
  if (parsed.url.hash !== "") {
    return failure(
      Type.IssuerURLValid,
      Reason.InvalidIssuerURLContainsFragment,
      `spec.issuer ${issuer} cannot include fragment`,
    );
  }
  return success(Type.IssuerURLValid, "issuer is a valid URL");
}

export function jwksURLCondition(jwksURI: string): ConditionUpdate {
  const parsed = parseURL(jwksURI);
  if (!parsed.ok) {
    return failure(
      Type.JWKSURLValid,
      Reason.InvalidProviderJWKSURL,
      `could not parse provider jwks_uri: ${parsed.error}`,
    );
  }
  if (parsed.scheme !== "https") {
    return failure(
      Type.JWKSURLValid,
      Reason.InvalidProviderJWKSURLScheme,
      `jwks_uri ${jwksURI} has invalid scheme, require 'https'`,
    );
  }
  return success(Type.JWKSURLValid, "jwks_uri is a valid URL");
}

/**
 * What go-oidc's NewProvider makes of a discovery document: the jwks_uri, or its error for a
 * document that is not an object of strings or whose issuer is not the one asked for.
 */
export function readDiscoveryDocument(
  issuer: string,
  document: unknown,
): { ok: true; jwksURI: string } | { ok: false; error: string } {
  if (!isObject(document)) {
    return { ok: false, error: "oidc: failed to decode provider discovery object: not a JSON object" };
  }
  const fields = document;
  for (const name of ["issuer", "jwks_uri"]) {
    const value = fields[name];
    if (value !== undefined && value !== null && typeof value !== "string") {
      return {
        ok: false,
        error: `oidc: failed to decode provider discovery object: field ${name} is not a string`,
      };
    }
  }
  const got = typeof fields.issuer === "string" ? fields.issuer : "";
  if (got !== issuer) {
    return {
      ok: false,
      error: `oidc: issuer did not match the issuer returned by provider, expected ${goQuote(issuer)} got ${goQuote(got)}`,
    };
  }
  return { ok: true, jwksURI: typeof fields.jwks_uri === "string" ? fields.jwks_uri : "" };
}

/**
 * Ours, beyond upstream: a client certificate cannot carry extras to kube-apiserver, so unless a
 * configured strategy issues credentials that can (the JWTCredential strategy's tokens), a
 * TokenCredentialRequest refuses every login whose `spec.claims.extra` mappings produce a value
 * (upstream's validateUserInfo). Upstream shows such an authenticator Ready; here it is not, so
 * that `kubectl wait` and GitOps health checks see it. Without extra mappings, or with a strategy
 * that carries them, there is no condition at all, so upstream's condition set is unchanged.
 */
export function extrasCondition(
  spec: JWTAuthenticatorSpec,
  extrasDeliverable = false,
): ConditionUpdate | undefined {
  if ((spec.claims?.extra ?? []).length === 0 || extrasDeliverable) return undefined;
  return failure(
    Type.ClaimsExtraDeliverable,
    Reason.NoStrategyCarriesExtras,
    "spec.claims.extra cannot be delivered: the Concierge's client certificates cannot carry extras " +
      "to kube-apiserver; this authenticator serves no login until spec.claims.extra is removed",
  );
}

/** The JSON of `value` with object keys sorted, so equal values always print the same. */
function canonicalJSON(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJSON).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJSON(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * What a cached authenticator was built from: the whole spec, except that `tls` counts by the
 * CA bundle it resolved to (moving a bundle from inline data into a Secret changes nothing).
 * Every spec field is in, so a field added later can never leave a stale authenticator cached.
 */
export function fingerprint(spec: JWTAuthenticatorSpec, caBundleSHA256: string | undefined): string {
  const { tls: _, ...rest } = spec;
  return createHash("sha256")
    .update(canonicalJSON({ spec: rest, caBundleSHA256: caBundleSHA256 ?? "" }))
    .digest("hex");
}

/**
 * Decides from what has been observed so far. Call it again with the answer of `next` until
 * `next` is undefined. The expensive checks are skipped when the cache already holds an
 * authenticator built from this very spec and CA bundle: upstream prefers keeping a working
 * authenticator through a network flake to re-probing a provider that was already validated.
 */
export function decide(o: Observation): Decision {
  const tlsOk = o.tls.condition.status === "True";
  const issuer = issuerCondition(o.spec.issuer);
  const conditions: ConditionUpdate[] = [o.tls.condition, issuer];
  let retry: string | undefined;
  const skipped = tlsOk && o.cachedFingerprint === o.fingerprint;

  if (skipped) {
    conditions.push(
      success(Type.DiscoveryURLValid, "discovery performed successfully"),
      success(Type.JWKSURLValid, "jwks_uri is a valid URL"),
      success(Type.JWKSFetchValid, "successfully fetched jwks"),
      success(Type.AuthenticatorValid, "authenticator initialized"),
    );
  } else {
    let ok = tlsOk && issuer.status === "True";

    if (!ok) {
      conditions.push(unknown(Type.DiscoveryURLValid));
    } else if (!o.discovery) {
      return { next: { probe: "discovery", url: discoveryURL(o.spec.issuer) } };
    }
    let jwksURI = "";
    if (ok && o.discovery) {
      const read = o.discovery.ok
        ? readDiscoveryDocument(o.spec.issuer, o.discovery.document)
        : { ok: false as const, error: o.discovery.error };
      if (read.ok) {
        jwksURI = read.jwksURI;
        conditions.push(success(Type.DiscoveryURLValid, "discovery performed successfully"));
      } else {
        const prefix = "could not perform oidc discovery on provider issuer";
        conditions.push(
          failure(
            Type.DiscoveryURLValid,
            Reason.InvalidDiscoveryProbe,
            `${prefix}: ${truncateLongError(read.error)}`,
          ),
        );
        retry = `${prefix}: ${read.error}`;
        ok = false;
      }
    }

    if (!ok) {
      conditions.push(unknown(Type.JWKSURLValid));
    } else {
      const jwks = jwksURLCondition(jwksURI);
      conditions.push(jwks);
      if (jwks.status !== "True") {
        retry = jwks.message;
        ok = false;
      }
    }

    let initError: string | undefined;
    if (!ok) {
      conditions.push(unknown(Type.JWKSFetchValid));
    } else if (!o.keys) {
      return { next: { probe: "keys", jwksURL: jwksURI } };
    } else if (o.keys.ok) {
      conditions.push(success(Type.JWKSFetchValid, "successfully fetched jwks"));
    } else if (o.keys.stage === "fetch") {
      const message = `could not fetch keys: ${o.keys.error}`;
      conditions.push(failure(Type.JWKSFetchValid, Reason.InvalidCouldNotFetchJWKS, message));
      retry = message;
      ok = false;
    } else {
      // Without an authenticator there were no keys to fetch; the failure is the authenticator's.
      conditions.push(unknown(Type.JWKSFetchValid));
      initError = o.keys.error;
    }

    const notInitialized = "could not initialize jwt authenticator";
    if (o.specErrors.length > 0 && (ok || initError !== undefined)) {
      conditions.push(
        failure(
          Type.AuthenticatorValid,
          Reason.InvalidAuthenticator,
          `${notInitialized}: ${aggregateMessage(o.specErrors)}`,
        ),
      );
    } else if (initError !== undefined) {
      conditions.push(
        failure(Type.AuthenticatorValid, Reason.InvalidAuthenticator, `${notInitialized}: ${initError}`),
      );
    } else if (!ok) {
      conditions.push(unknown(Type.AuthenticatorValid));
    } else {
      conditions.push(success(Type.AuthenticatorValid, "authenticator initialized"));
    }
  }

  const extras = extrasCondition(o.spec, o.extrasDeliverable);
  if (extras) conditions.push(extras);

  const valid = conditions.every((c) => c.status === "True");
  conditions.push(
    valid
      ? success(Type.Ready, "the JWTAuthenticator is ready")
      : failure(
          Type.Ready,
          Reason.NotReady,
          "the JWTAuthenticator is not ready: see other conditions for details",
        ),
  );
  return { next: undefined, conditions, valid, skipped, retry };
}
