// The JWT authenticators' metrics, named after kube-apiserver's (apiserver_authentication_jwt_authenticator_*)
// with our prefix, and labelled by JWTAuthenticator name rather than by an issuer hash.
import type { Counter, Gauge, Histogram } from "prom-client";
import { type Metrics, removeSeries } from "../../observability/metrics.ts";

export interface JWTMetrics {
  /** result: success | failure; reason: a FailureKind, "" on success. */
  verifications: Counter<"authenticator" | "result" | "reason">;
  latency: Histogram<"authenticator" | "result">;
  jwksFetches: Counter<"authenticator" | "result">;
  /** Age of the keys in use: time() - this{result="success"}. */
  jwksFetchLastTimestamp: Gauge<"authenticator" | "result">;
}

export function jwtMetrics(metrics: Metrics): JWTMetrics {
  return {
    verifications: metrics.counter({
      name: "jwt_authenticator_verifications_total",
      help: "JWT verifications by JWTAuthenticator, result (success or failure) and failure reason.",
      labelNames: ["authenticator", "result", "reason"],
    }),
    latency: metrics.histogram({
      name: "jwt_authenticator_latency_seconds",
      help: "Latency of JWT verifications in seconds, including any JWKS fetch a token waited for.",
      labelNames: ["authenticator", "result"],
      // kube-apiserver's buckets start at 1 ms; a warm verification here takes well under that.
      buckets: [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
      ],
    }),
    jwksFetches: metrics.counter({
      name: "jwt_authenticator_jwks_fetches_total",
      help: "JWKS fetches by JWTAuthenticator and result (success or failure).",
      labelNames: ["authenticator", "result"],
    }),
    jwksFetchLastTimestamp: metrics.gauge({
      name: "jwt_authenticator_jwks_fetch_last_timestamp_seconds",
      help: "Unix time of the last successful or failed JWKS fetch, by JWTAuthenticator and result.",
      labelNames: ["authenticator", "result"],
    }),
  };
}

/** Removes the metric series of a deleted JWTAuthenticator. */
export async function removeJWTAuthenticatorSeries(metrics: Metrics, name: string): Promise<void> {
  await Promise.all(Object.values(jwtMetrics(metrics)).map((m) => removeSeries(m, { authenticator: name })));
}
