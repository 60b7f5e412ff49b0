// A short-lived memory of successful token reviews, so that a burst of logins with one token
// costs the webhook one request. Only positive answers are kept: a token the webhook refused
// (or could not judge) is asked about again every time.
import { createHash } from "node:crypto";
import type { Clock } from "../../kube/clock.ts";
import type { UserInfo } from "../types.ts";

/** The key a token is remembered by: never the token itself. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

interface Entry {
  user: UserInfo;
  expiresAt: number;
}

/**
 * Entries expire `ttlMs` after they were stored and are checked lazily, so there is no timer
 * to release. Every entry has the same TTL, so the Map's insertion order is also expiry order:
 * expired entries are dropped from the front on every store, and the oldest entry makes room
 * when `maxEntries` is reached.
 */
export class SuccessCache {
  readonly #entries = new Map<string, Entry>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #clock: Clock;

  constructor(options: { ttlMs: number; maxEntries: number; clock: Clock }) {
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries;
    this.#clock = options.clock;
  }

  /** A copy of the remembered user, so callers cannot change what later callers get. */
  get(hash: string): UserInfo | undefined {
    const entry = this.#entries.get(hash);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.#clock.now()) {
      this.#entries.delete(hash);
      return undefined;
    }
    return structuredClone(entry.user);
  }

  set(hash: string, user: UserInfo): void {
    if (this.#ttlMs <= 0 || this.#maxEntries <= 0) return;
    const now = this.#clock.now();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt > now) break;
      this.#entries.delete(key);
    }
    // Re-inserting moves the key to the back, keeping insertion order equal to expiry order.
    this.#entries.delete(hash);
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    this.#entries.set(hash, { user: structuredClone(user), expiresAt: now + this.#ttlMs });
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }
}
