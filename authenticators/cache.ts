// The authenticator holder: reconcilers store ready authenticators here, handlers read them.
import type { TokenAuthenticator } from "./types.ts";

/** Authenticators are keyed by upstream's unsuffixed group, whatever the install's group suffix. */
export const authenticationGroup = "authentication.concierge.pinniped.dev";

export type AuthenticatorKind = "JWTAuthenticator" | "WebhookAuthenticator";

export interface AuthenticatorKey {
  apiGroup: string;
  kind: string;
  name: string;
}

export interface CacheEntry {
  authenticator: TokenAuthenticator;
  /**
   * What the authenticator was built from (spec and CA bundle hash), so a reconciler can
   * skip network re-validation when nothing relevant changed.
   */
  fingerprint: string;
}

export type CacheListener = (key: AuthenticatorKey, entry: CacheEntry | undefined) => void;

function cacheKey(key: AuthenticatorKey): string {
  return `${key.apiGroup}\u0000${key.kind}\u0000${key.name}`;
}

/**
 * A plain Map: JavaScript runs one handler at a time, so a lookup on the hot path
 * needs no lock and always sees either the old or the new authenticator, never half of one.
 */
export class AuthenticatorCache {
  readonly #entries = new Map<string, { key: AuthenticatorKey; entry: CacheEntry }>();
  readonly #listeners = new Set<CacheListener>();

  get(key: AuthenticatorKey): CacheEntry | undefined {
    return this.#entries.get(cacheKey(key))?.entry;
  }

  /** Swaps in the new authenticator, then closes the one it replaced. */
  store(key: AuthenticatorKey, entry: CacheEntry): void {
    const k = cacheKey(key);
    const previous = this.#entries.get(k)?.entry;
    this.#entries.set(k, { key: { ...key }, entry });
    if (previous && previous.authenticator !== entry.authenticator) previous.authenticator.close();
    this.#notify(key, entry);
  }

  /** Removes and closes; a no-op for an absent key. */
  delete(key: AuthenticatorKey): void {
    const k = cacheKey(key);
    const previous = this.#entries.get(k);
    if (!previous) return;
    this.#entries.delete(k);
    previous.entry.authenticator.close();
    this.#notify(key, undefined);
  }

  keys(): AuthenticatorKey[] {
    return [...this.#entries.values()].map(({ key }) => ({ ...key }));
  }

  get size(): number {
    return this.#entries.size;
  }

  onChange(listener: CacheListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(key: AuthenticatorKey, entry: CacheEntry | undefined): void {
    for (const listener of this.#listeners) listener({ ...key }, entry);
  }
}
