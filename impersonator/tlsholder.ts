// A ProxyTLSSource that holds the current material and tells subscribers when it changes.
import { isDeepStrictEqual } from "node:util";
import type { ProxyTLS, ProxyTLSSource } from "./types.ts";

export class ProxyTLSHolder implements ProxyTLSSource {
  #tls: ProxyTLS | undefined;
  readonly #listeners = new Set<(tls: ProxyTLS | undefined) => void>();

  constructor(tls?: ProxyTLS) {
    this.#tls = tls;
  }

  get(): ProxyTLS | undefined {
    return this.#tls;
  }

  /** Subscribers hear only of real changes: each one rebuilds the listener's TLS context. */
  set(tls: ProxyTLS | undefined): void {
    if (isDeepStrictEqual(tls, this.#tls)) return;
    this.#tls = tls;
    for (const listener of [...this.#listeners]) listener(tls);
  }

  onChange(listener: (tls: ProxyTLS | undefined) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
