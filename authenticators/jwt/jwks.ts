// An issuer's signing keys (its JWKS), fetched over HTTPS with the authenticator's CA bundle and kept
// in memory. Refreshed on a timer, and on demand when a token names a key we do not have, with the
// on-demand fetches rate-limited so that tokens with made-up key IDs cannot make us hammer the issuer.
import { createLocalJWKSet, type JSONWebKeySet, type LocalJWKSet } from "jose";
import type { Clock, Timer } from "../../kube/clock.ts";
import { HTTPSError, httpsGetJSON } from "../https.ts";

/** A JWKS is a few kilobytes; anything near this is not a key set. */
export const maxJWKSBytes = 1024 * 1024;
/** Periodic refresh, so that keys the issuer removed stop being trusted. */
export const defaultRefreshIntervalMs = 5 * 60_000;
/** After a failed fetch the timer retries sooner than the periodic refresh. */
export const failedRefreshRetryMs = 30_000;
/** At most one token-triggered fetch per this interval. */
export const defaultMinRefetchIntervalMs = 5_000;

export type FetchOutcome =
  | { ok: true; kids: string[]; changed: boolean; keyCount: number }
  | { ok: false; error: Error };

export interface KeySetOptions {
  url: string;
  caPEM: string | undefined;
  clock: Clock;
  now: () => number;
  refreshIntervalMs: number;
  minRefetchIntervalMs: number;
  /** Called after every fetch, before the promise of that fetch settles. */
  onFetch: (outcome: FetchOutcome) => void;
}

export class RemoteKeySet {
  readonly #options: KeySetOptions;
  readonly #abort = new AbortController();
  #keys: LocalJWKSet | undefined;
  #fingerprint: string | undefined;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #lastError: Error | undefined;
  #inflight: Promise<void> | undefined;
  #timer: Timer | undefined;
  #closed = false;

  constructor(options: KeySetOptions) {
    this.#options = options;
  }

  /** The last key set fetched successfully; undefined until one was. */
  get keys(): LocalJWKSet | undefined {
    return this.#keys;
  }

  /** Why the last fetch failed, if it did. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /** Fetches now, or joins the fetch in flight. Rejects with a message that names the URL. */
  fetch(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("the JWT authenticator is closed"));
    this.#inflight ??= this.#load().finally(() => {
      this.#inflight = undefined;
      this.#schedule();
    });
    return this.#inflight;
  }

  /**
   * A fetch on behalf of a token: joins the one in flight, starts one if none started within the
   * rate limit, and otherwise returns undefined.
   */
  fetchIfAllowed(): Promise<void> | undefined {
    if (this.#inflight) return this.#inflight;
    if (this.#options.now() - this.#lastAttemptAt < this.#options.minRefetchIntervalMs) return undefined;
    return this.fetch();
  }

  /** Stops the refresh timer and aborts a fetch in flight. */
  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#abort.abort();
  }

  async #load(): Promise<void> {
    const { url, caPEM } = this.#options;
    this.#lastAttemptAt = this.#options.now();
    let outcome: FetchOutcome;
    try {
      const body = await httpsGetJSON(url, { caPEM, maxBytes: maxJWKSBytes, signal: this.#abort.signal });
      const keys = createLocalJWKSet(body as JSONWebKeySet);
      const list = keys.jwks().keys;
      const fingerprint = JSON.stringify(list);
      const changed = fingerprint !== this.#fingerprint;
      this.#keys = keys;
      this.#fingerprint = fingerprint;
      this.#lastError = undefined;
      const kids = list.map((k) => k.kid).filter((kid): kid is string => typeof kid === "string");
      outcome = { ok: true, kids, changed, keyCount: list.length };
    } catch (err) {
      outcome = { ok: false, error: fetchError(url, err) };
      this.#lastError = outcome.error;
    }
    if (!this.#closed) this.#options.onFetch(outcome);
    if (!outcome.ok) throw outcome.error;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer?.cancel();
    const { refreshIntervalMs } = this.#options;
    const delay = this.#lastError ? Math.min(refreshIntervalMs, failedRefreshRetryMs) : refreshIntervalMs;
    // Failures are reported through onFetch; the timer has nobody to hand the rejection to.
    this.#timer = this.#options.clock.setTimeout(() => this.fetch().catch(() => undefined), delay);
  }
}

function fetchError(url: string, err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof HTTPSError) {
    return new Error(message.includes(url) ? message : `${url}: ${message}`, { cause: err });
  }
  return new Error(`${url} did not answer a JSON Web Key Set: ${message}`, { cause: err });
}
