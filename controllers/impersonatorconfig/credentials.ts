// What the reconciler hands the proxy's TLS layer: the serving chain and key, and the signer CAs
// whose client certificates are accepted. Someone else composes it with the cluster's client CA
// into the proxy's ProxyTLS.
import { isDeepStrictEqual } from "node:util";

export interface ProxyCredentialsState {
  /** Leaf first, then intermediates (the cross-signed CA during a rotation). Undefined when stopped. */
  serving: { certPEM: string; keyPEM: string } | undefined;
  /** The signer CAs: the current one first, then the previous one during an overlap. */
  signerCAPEMs: string[];
}

export class ProxyCredentials {
  #state: ProxyCredentialsState = { serving: undefined, signerCAPEMs: [] };
  readonly #listeners = new Set<(state: ProxyCredentialsState) => void>();

  get(): ProxyCredentialsState {
    return this.#state;
  }

  /** Replaces the state; listeners hear only of real changes (the reconciler sets it every sync). */
  set(state: ProxyCredentialsState): void {
    if (isDeepStrictEqual(this.#state, state)) return;
    this.#state = Object.freeze({ serving: state.serving, signerCAPEMs: [...state.signerCAPEMs] });
    for (const listener of this.#listeners) listener(this.#state);
  }

  /** Calls `listener` after each change; returns the unsubscribe function. */
  onChange(listener: (state: ProxyCredentialsState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Keys never reach logs or JSON. */
  toJSON(): { serving: boolean; signerCAs: number } {
    return { serving: this.#state.serving !== undefined, signerCAs: this.#state.signerCAPEMs.length };
  }
}
