// Rate-limited logging: at most one line per key and interval, the next one saying how many were
// left out, so a flood of bad requests cannot flood the logs. Memory is bounded by `maxKeys`.

export interface LogRateLimiterOptions {
  /** At most one line per key in this many milliseconds. */
  intervalMs: number;
  /** Keys remembered; the oldest is forgotten first (it may then log again at once). */
  maxKeys?: number;
  now?: () => number;
}

export type Take = { log: true; suppressed: number } | { log: false };

export class LogRateLimiter {
  readonly #intervalMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  // Insertion order is age order: a logged key is re-inserted.
  readonly #keys = new Map<string, { loggedAt: number; suppressed: number }>();

  constructor(options: LogRateLimiterOptions) {
    this.#intervalMs = options.intervalMs;
    this.#maxKeys = options.maxKeys ?? 1000;
    this.#now = options.now ?? Date.now;
  }

  /** Whether to log a line for `key` now, and how many lines for it were left out before. */
  take(key: string): Take {
    const now = this.#now();
    const state = this.#keys.get(key);
    if (state && now - state.loggedAt < this.#intervalMs) {
      state.suppressed++;
      return { log: false };
    }
    const suppressed = state?.suppressed ?? 0;
    this.#keys.delete(key);
    this.#keys.set(key, { loggedAt: now, suppressed: 0 });
    while (this.#keys.size > this.#maxKeys) {
      const oldest = this.#keys.keys().next().value;
      if (oldest === undefined) break;
      this.#keys.delete(oldest);
    }
    return { log: true, suppressed };
  }
}
