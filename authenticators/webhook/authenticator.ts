// The WebhookAuthenticator's token authenticator: asks a remote webhook, with a TokenReview,
// who a token belongs to (Kubernetes' webhook token authenticator, as upstream embeds it).
import { performance } from "node:perf_hooks";
import { type Clock, realClock, sleep } from "../../kube/clock.ts";
import { deadline } from "../../kube/deadline.ts";
import { discardLogger, type Logger } from "../../observability/logger.ts";
import { Metrics, removeSeries } from "../../observability/metrics.ts";
import { httpsRequest } from "../https.ts";
import type { AuthenticationResult, TokenAuthenticator } from "../types.ts";
import { SuccessCache, tokenHash } from "./successcache.ts";
import {
  MalformedTokenReviewError,
  parseTokenReview,
  type TokenReviewVersion,
  tokenReviewRequest,
} from "./tokenreview.ts";

/** Upstream's `webhook.DefaultRetryBackoff()`: 500 ms × 1.5 per step, +0–20 % jitter, 5 tries. */
export interface RetryPolicy {
  initialMs: number;
  factor: number;
  /** Each delay is lengthened by up to this fraction at random (k8s `wait.Jitter`). */
  jitter: number;
  /** Attempts in all, the first included. */
  steps: number;
}

export const defaultRetryPolicy: RetryPolicy = { initialMs: 500, factor: 1.5, jitter: 0.2, steps: 5 };
/** Per attempt, as upstream's rest.Config Timeout. */
export const defaultTimeoutMs = 30_000;
export const defaultSuccessCacheTTLMs = 10_000;
export const defaultSuccessCacheMaxEntries = 1_000;
export const defaultMaxResponseBytes = 1024 * 1024;

export interface WebhookTokenAuthenticatorOptions {
  /** The WebhookAuthenticator's name: a metric label and log field. */
  name: string;
  /** The full URL the TokenReview is POSTed to. */
  endpoint: string;
  /** PEM bundle to trust; the system roots when absent. */
  caPEM?: string | undefined;
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** How long a successful review is remembered; 0 turns the success cache off. */
  successCacheTTLMs?: number;
  successCacheMaxEntries?: number;
  maxResponseBytes?: number;
  /** The version asked in first; default v1beta1, as upstream. */
  version?: TokenReviewVersion;
  /** Reject fails identities with the reserved "system:" prefix; default Allow, as upstream. */
  systemPrefixPolicy?: "Reject" | "Allow";
  clock?: Clock;
  random?: () => number;
  metrics?: Metrics;
  log?: Logger;
}

// A webhook that does not speak the version we sent typically answers one of these.
const VERSION_REJECTED = new Set([400, 404, 415]);

// Failures to reach the webhook at all, or connections it dropped (keep-alive sockets it
// closed between requests among them): worth another try.
const RETRYABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

const MAX_REASON_LENGTH = 300;

type Outcome = "authenticated" | "rejected" | "error" | "aborted";

interface Review {
  result: AuthenticationResult;
  outcome: Outcome;
}

type Attempt =
  | { kind: "answer"; answer: ReturnType<typeof parseTokenReview> }
  | { kind: "status"; status: number }
  | { kind: "failed"; retryable: boolean; reason: string };

function webhookMetrics(metrics: Metrics) {
  return {
    latency: metrics.histogram({
      name: "webhook_authenticator_request_duration_seconds",
      help: "Duration of one TokenReview request to a webhook, by HTTP status code (or error).",
      labelNames: ["authenticator", "code"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    results: metrics.counter({
      name: "webhook_authenticator_results_total",
      help: "Token authentications by outcome: authenticated, rejected, error, aborted.",
      labelNames: ["authenticator", "outcome"] as const,
    }),
    retries: metrics.counter({
      name: "webhook_authenticator_retries_total",
      help: "TokenReview requests repeated after a connection failure, 429 or 5xx.",
      labelNames: ["authenticator"] as const,
    }),
    cacheHits: metrics.counter({
      name: "webhook_authenticator_cache_hits_total",
      help: "Authentications answered without a request of their own: from the success cache, or by joining an identical review in flight.",
      labelNames: ["authenticator", "source"] as const,
    }),
  };
}

/** Removes the metric series of a deleted WebhookAuthenticator. */
export async function removeWebhookAuthenticatorSeries(metrics: Metrics, name: string): Promise<void> {
  await Promise.all(
    Object.values(webhookMetrics(metrics)).map((m) => removeSeries(m, { authenticator: name })),
  );
}

/** Removes the token from text that may echo it (a webhook's error message). */
function redact(text: string, token: string): string {
  const clean = token === "" ? text : text.split(token).join("[redacted]");
  return clean.length > MAX_REASON_LENGTH ? `${clean.slice(0, MAX_REASON_LENGTH)}...` : clean;
}

const otherVersion = (v: TokenReviewVersion): TokenReviewVersion => (v === "v1beta1" ? "v1" : "v1beta1");

/**
 * Version policy: the first request is v1beta1 (what upstream sends, so every webhook written
 * for Pinniped works unchanged). A webhook that refuses it with 400, 404 or 415 is asked again at
 * once in v1, and the version of the last TokenReview the webhook answered (its stated
 * `apiVersion`, else the version asked) is the one used from then on, for this authenticator.
 */
const systemPrefix = "system:";

/** Why a user the webhook authenticated has a reserved name, as the JWT authenticator words it. */
function reservedName(user: { username: string; groups: readonly string[] }): string | undefined {
  if (user.username.startsWith(systemPrefix)) {
    return `username ${JSON.stringify(user.username)} has the reserved "system:" prefix`;
  }
  const group = user.groups.find((g) => g.startsWith(systemPrefix));
  return group === undefined ? undefined : `group ${JSON.stringify(group)} has the reserved "system:" prefix`;
}

export class WebhookTokenAuthenticator implements TokenAuthenticator {
  readonly #systemPrefixPolicy: "Reject" | "Allow";
  readonly #name: string;
  readonly #endpoint: string;
  readonly #caPEM: string | undefined;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #maxResponseBytes: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #log: Logger;
  readonly #metrics: ReturnType<typeof webhookMetrics>;
  readonly #successes: SuccessCache;
  readonly #inflight = new Map<string, Promise<Review>>();
  readonly #closing = new AbortController();
  #version: TokenReviewVersion;

  /** Throws when `endpoint` is not an https URL that a request can be sent to. */
  constructor(options: WebhookTokenAuthenticatorOptions) {
    const url = new URL(options.endpoint);
    if (url.protocol !== "https:") throw new Error(`endpoint scheme ${url.protocol} is not https`);
    this.#name = options.name;
    this.#endpoint = options.endpoint;
    this.#caPEM = options.caPEM;
    this.#timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    this.#retry = { ...defaultRetryPolicy, ...options.retry };
    this.#maxResponseBytes = options.maxResponseBytes ?? defaultMaxResponseBytes;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
    this.#log = (options.log ?? discardLogger()).child({ authenticator: options.name });
    this.#metrics = webhookMetrics(options.metrics ?? new Metrics());
    this.#version = options.version ?? "v1beta1";
    this.#systemPrefixPolicy = options.systemPrefixPolicy ?? "Allow";
    this.#successes = new SuccessCache({
      ttlMs: options.successCacheTTLMs ?? defaultSuccessCacheTTLMs,
      maxEntries: options.successCacheMaxEntries ?? defaultSuccessCacheMaxEntries,
      clock: this.#clock,
    });
  }

  /** The version the next review is sent in. */
  get version(): TokenReviewVersion {
    return this.#version;
  }

  async authenticateToken(token: string, signal?: AbortSignal): Promise<AuthenticationResult> {
    let review: Review;
    try {
      review = await this.#authenticate(token, signal);
    } catch (err) {
      // Not expected; the contract is still that this never throws.
      review = {
        outcome: "error",
        result: {
          authenticated: false,
          reason: redact(`unexpected error: ${(err as Error).message}`, token),
        },
      };
    }
    this.#metrics.results.inc({ authenticator: this.#name, outcome: review.outcome });
    return review.result;
  }

  /** Aborts reviews in flight (they fail) and their backoff timers, and forgets cached users. */
  close(): void {
    this.#closing.abort();
    this.#successes.clear();
    this.#inflight.clear();
  }

  async #authenticate(token: string, signal: AbortSignal | undefined): Promise<Review> {
    if (this.#closing.signal.aborted) return failed("error", "the authenticator was closed");
    if (token === "") return failed("rejected", "empty token");
    const hash = tokenHash(token);
    const remembered = this.#successes.get(hash);
    if (remembered) {
      this.#metrics.cacheHits.inc({ authenticator: this.#name, source: "cache" });
      return { outcome: "authenticated", result: { authenticated: true, user: remembered } };
    }
    let review = this.#inflight.get(hash);
    if (review) {
      this.#metrics.cacheHits.inc({ authenticator: this.#name, source: "inflight" });
    } else {
      // Shared by every caller with this token until it settles; a caller that gives up
      // (its signal aborts) does not cut the others off, the per-attempt timeout bounds it.
      const started = this.#review(token, hash);
      review = started;
      this.#inflight.set(hash, started);
      const forget = () => {
        if (this.#inflight.get(hash) === started) this.#inflight.delete(hash);
      };
      started.then(forget, forget);
    }
    const settled = await untilAborted(review, signal);
    if (!settled) return failed("aborted", "the caller gave up");
    // Each caller gets its own copy of the user.
    return settled.result.authenticated
      ? { ...settled, result: { ...settled.result, user: structuredClone(settled.result.user) } }
      : settled;
  }

  async #review(token: string, hash: string): Promise<Review> {
    let version = this.#version;
    let switched = false;
    for (let attempt = 1; ; ) {
      const outcome = await this.#attempt(version, token);
      if (outcome.kind === "answer") {
        const spoken = outcome.answer.version ?? version;
        if (spoken !== this.#version) {
          this.#log.info("webhook answers TokenReviews in another version; using it from now on", {
            from: this.#version,
            to: spoken,
          });
          this.#version = spoken;
        }
        return this.#judge(outcome.answer, token, hash);
      }
      if (outcome.kind === "status" && VERSION_REJECTED.has(outcome.status) && !switched) {
        switched = true;
        version = otherVersion(version);
        continue;
      }
      const retryable =
        outcome.kind === "failed" ? outcome.retryable : outcome.status === 429 || outcome.status >= 500;
      const reason =
        outcome.kind === "failed"
          ? outcome.reason
          : `webhook answered HTTP ${outcome.status} to a ${version} TokenReview`;
      if (!retryable || attempt >= this.#retry.steps) {
        const why = attempt > 1 ? `${reason} (after ${attempt} attempts)` : reason;
        this.#log.warn("webhook token review failed", { reason: redact(why, token) });
        return failed("error", redact(why, token));
      }
      const { initialMs, factor, jitter } = this.#retry;
      const delay = initialMs * factor ** (attempt - 1) * (1 + jitter * this.#random());
      attempt++;
      this.#metrics.retries.inc({ authenticator: this.#name });
      this.#log.debug("retrying webhook token review", { reason: redact(reason, token), delayMs: delay });
      if (!(await sleep(this.#clock, delay, this.#closing.signal))) {
        return failed("error", "the authenticator was closed");
      }
    }
  }

  #judge(answer: ReturnType<typeof parseTokenReview>, token: string, hash: string): Review {
    if (!answer.authenticated) {
      const reason = answer.error
        ? `webhook did not authenticate the token: ${answer.error}`
        : "webhook did not authenticate the token";
      this.#log.debug("webhook rejected a token", { reason: redact(reason, token) });
      return failed("rejected", redact(reason, token));
    }
    const reserved = this.#systemPrefixPolicy === "Reject" ? reservedName(answer.user) : undefined;
    if (reserved) {
      this.#log.debug("webhook authenticated a reserved identity", { reason: reserved });
      return failed("rejected", reserved);
    }
    if (!this.#closing.signal.aborted) this.#successes.set(hash, answer.user);
    return { outcome: "authenticated", result: { authenticated: true, user: answer.user } };
  }

  async #attempt(version: TokenReviewVersion, token: string): Promise<Attempt> {
    const attempt = deadline(this.#timeoutMs, this.#closing.signal);
    const started = performance.now();
    const observe = (code: string) =>
      this.#metrics.latency.observe(
        { authenticator: this.#name, code },
        (performance.now() - started) / 1000,
      );
    let status: number;
    let body: Buffer;
    try {
      ({ status, body } = await httpsRequest(this.#endpoint, {
        method: "POST",
        caPEM: this.#caPEM,
        timeoutMs: this.#timeoutMs,
        signal: attempt.signal,
        maxBytes: this.#maxResponseBytes,
        headers: {
          "content-type": "application/json",
          accept: "application/json, */*",
          "user-agent": "concierge",
        },
        body: tokenReviewRequest(version, token),
      }));
    } catch (err) {
      observe("error");
      return this.#classify(err, attempt.signal);
    } finally {
      attempt.clear();
    }
    observe(String(status));
    if (status < 200 || status > 299) return { kind: "status", status };
    try {
      return { kind: "answer", answer: parseTokenReview(body) };
    } catch (err) {
      if (!(err instanceof MalformedTokenReviewError)) throw err;
      return {
        kind: "failed",
        retryable: false,
        reason: `webhook answered HTTP ${status} without a usable TokenReview: ${err.message}`,
      };
    }
  }

  // Reasons are built from the error's code and Node's own message, never from the URL
  // (which may carry user info) or the request body (which carries the token).
  #classify(err: unknown, attempt: AbortSignal): Attempt {
    if (this.#closing.signal.aborted) {
      return { kind: "failed", retryable: false, reason: "the authenticator was closed" };
    }
    const message = err instanceof Error ? err.message : String(err);
    // Not closed, so an aborted attempt is one that timed out.
    if (attempt.aborted || /timed out after/.test(message)) {
      return {
        kind: "failed",
        retryable: false,
        reason: `webhook did not answer within ${this.#timeoutMs} ms`,
      };
    }
    if (/larger than \d+ bytes/.test(message)) {
      return {
        kind: "failed",
        retryable: false,
        reason: `webhook answer is larger than ${this.#maxResponseBytes} bytes`,
      };
    }
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
    const code = (cause as { code?: unknown } | undefined)?.code;
    const detail = cause?.message ?? message;
    if (typeof code === "string" && RETRYABLE_CODES.has(code)) {
      return { kind: "failed", retryable: true, reason: `cannot reach webhook: ${detail}` };
    }
    return { kind: "failed", retryable: false, reason: `webhook request failed: ${detail}` };
  }
}

function failed(outcome: Exclude<Outcome, "authenticated">, reason: string): Review {
  return { outcome, result: { authenticated: false, reason } };
}

/** `promise`'s value, or `undefined` as soon as `signal` aborts. */
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
  if (!signal) return promise;
  if (signal.aborted) return undefined;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}
