// Delegated bearer-token authentication: a TokenReview against kube-apiserver with no audiences,
// so only tokens kube-apiserver itself accepts (service-account tokens, its own webhook or OIDC
// authenticators) authenticate here. Successful reviews are cached briefly, like the generic
// apiserver's delegating authenticator, because every request through the proxy carries the token.
import { createHash } from "node:crypto";
import type { Clock } from "../kube/clock.ts";
import type { RestClient } from "../kube/rest.ts";
import type { UserInfo } from "../kube/userinfo.ts";
import type { Metrics } from "../observability/metrics.ts";
import { callWithDeadline } from "./authn.ts";

export const defaultTokenReviewCacheTTLMs = 10_000;
export const defaultTokenReviewCacheSize = 4096;
export const defaultReviewTimeoutMs = 10_000;

export interface TokenReviewerOptions {
  client: RestClient;
  clock: Clock;
  metrics: Metrics;
  /** How long a successful review is reused; 0 disables the cache. */
  cacheTTLMs?: number;
  /** The most tokens remembered at once; the oldest entry goes first. */
  cacheSize?: number;
  timeoutMs?: number;
}

/** The user the token belongs to, or undefined when kube-apiserver does not accept it. Throws when the review fails. */
export type TokenReviewer = (token: string, signal: AbortSignal) => Promise<UserInfo | undefined>;

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

export function createTokenReviewer(options: TokenReviewerOptions): TokenReviewer {
  const ttlMs = options.cacheTTLMs ?? defaultTokenReviewCacheTTLMs;
  const maxEntries = options.cacheSize ?? defaultTokenReviewCacheSize;
  const timeoutMs = options.timeoutMs ?? defaultReviewTimeoutMs;
  const { client, clock } = options;
  // Keyed by the token's SHA-256 so that the cache never holds a usable credential.
  const cache = new Map<string, { user: UserInfo; expiresAt: number }>();
  const lookups = options.metrics.counter({
    name: "impersonation_proxy_token_review_cache_total",
    help: "Bearer-token authentications by the impersonation proxy, by whether a cached review answered.",
    labelNames: ["result"] as const,
  });
  const duration = options.metrics.histogram({
    name: "impersonation_proxy_token_review_duration_seconds",
    help: "TokenReviews sent by the impersonation proxy, by result.",
    labelNames: ["result"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });

  return async (token, signal) => {
    const key = createHash("sha256").update(token).digest("base64");
    const cached = cache.get(key);
    if (cached && cached.expiresAt > clock.now()) {
      lookups.inc({ result: "hit" });
      return structuredClone(cached.user);
    }
    if (cached) cache.delete(key);
    lookups.inc({ result: "miss" });

    const started = performance.now();
    let result = "error";
    try {
      const review = await callWithDeadline(signal, timeoutMs, (deadline) =>
        client.request<{ status?: TokenReviewStatus }>({
          method: "POST",
          path: "/apis/authentication.k8s.io/v1/tokenreviews",
          body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
          signal: deadline,
          timeoutMs,
        }),
      );
      const status = review?.status;
      if (!status?.authenticated || !status.user) {
        result = "unauthenticated";
        return undefined;
      }
      result = "authenticated";
      const user: UserInfo = {
        username: status.user.username ?? "",
        ...(status.user.uid ? { uid: status.user.uid } : {}),
        groups: [...(status.user.groups ?? [])],
        extra: structuredClone(status.user.extra ?? {}),
      };
      if (ttlMs > 0) {
        if (cache.size >= maxEntries) {
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
        cache.set(key, { user: structuredClone(user), expiresAt: clock.now() + ttlMs });
      }
      return user;
    } finally {
      duration.observe({ result }, (performance.now() - started) / 1000);
    }
  };
}
