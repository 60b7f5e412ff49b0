// The impersonation proxy's own credential: a bound token of its ServiceAccount, from the
// TokenRequest API (upstream's internal/tokenclient). That ServiceAccount may impersonate and
// nothing else, so the proxy fails closed if a request ever went upstream without Impersonate-*
// headers. Every replica keeps a token for its lifetime, leader or not, so a replica can serve
// the moment its proxy listener starts.
import { type Clock, realClock, sleep } from "../kube/clock.ts";
import type { RestClient } from "../kube/rest.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";

/** Upstream asks for a day, and renews at four fifths of whatever the API server granted. */
export const requestedExpirationSeconds = 86_400;
const renewAtFraction = 0.8;
const minBackoffMs = 10;
const maxBackoffMs = 10_000;

export interface TokenClientOptions {
  client: RestClient;
  namespace: string;
  serviceAccountName: string;
  log: Logger;
  metrics: Metrics;
  clock?: Clock;
}

interface TokenRequestStatus {
  status?: { token?: string; expirationTimestamp?: string };
}

export class ServiceAccountTokenClient {
  readonly #options: TokenClientOptions;
  readonly #clock: Clock;
  #token: { value: string; expiresAt: number } | undefined;

  constructor(options: TokenClientOptions) {
    this.#options = options;
    this.#clock = options.clock ?? realClock;
  }

  /** The current token, or undefined before the first one arrives or after it expired. */
  token(): string | undefined {
    const t = this.#token;
    return t && t.expiresAt > this.#clock.now() ? t.value : undefined;
  }

  /** Fetches and renews tokens until `signal` aborts. Never throws: failures are retried. */
  async run(signal: AbortSignal): Promise<void> {
    const { log, metrics } = this.#options;
    const fetches = metrics.counter<"outcome">({
      name: "impersonation_proxy_token_requests_total",
      help: "TokenRequests for the impersonation proxy's ServiceAccount, by outcome.",
      labelNames: ["outcome"],
    });
    let backoffMs = minBackoffMs;
    while (!signal.aborted) {
      try {
        const { value, expiresAt } = await this.#fetch(signal);
        this.#token = { value, expiresAt };
        fetches.inc({ outcome: "success" });
        backoffMs = minBackoffMs;
        const lifetimeMs = expiresAt - this.#clock.now();
        log.info("impersonation proxy token fetched", {
          serviceAccount: this.#options.serviceAccountName,
          expiresAt: new Date(expiresAt).toISOString(),
        });
        if (!(await sleep(this.#clock, lifetimeMs * renewAtFraction, signal))) return;
      } catch (err) {
        if (signal.aborted) return;
        fetches.inc({ outcome: "error" });
        log.warn("could not fetch the impersonation proxy's token; retrying", {
          error: (err as Error).message,
          retryInMs: backoffMs,
        });
        if (!(await sleep(this.#clock, backoffMs, signal))) return;
        backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
      }
    }
  }

  async #fetch(signal: AbortSignal): Promise<{ value: string; expiresAt: number }> {
    const { client, namespace, serviceAccountName } = this.#options;
    const answer = await client.request<TokenRequestStatus>({
      method: "POST",
      path: `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccountName}/token`,
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: requestedExpirationSeconds },
      },
      signal,
    });
    const value = answer.status?.token;
    const expiresAt = Date.parse(answer.status?.expirationTimestamp ?? "");
    if (!value || Number.isNaN(expiresAt)) {
      throw new Error("the TokenRequest answer has no token or no expirationTimestamp");
    }
    return { value, expiresAt };
  }
}
