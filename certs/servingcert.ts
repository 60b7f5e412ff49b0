// The serving certificate and key of an HTTPS listener, swapped at runtime by whoever owns them
// (the serving-cert reconciler; a test). Listeners subscribe and apply each new pair to new
// connections, so a rotation never needs a restart.
import { createSecureContext } from "node:tls";

export interface ServingCert {
  /** The leaf first, then any intermediates. */
  certPEM: string;
  keyPEM: string;
}

export class ServingCertHolder {
  #current: ServingCert | undefined;
  readonly #listeners = new Set<(cert: ServingCert) => void>();

  get(): ServingCert | undefined {
    return this.#current;
  }

  /**
   * Throws, keeping the pair it had, when the key does not match the certificate or either does
   * not parse: a bad pair must not reach a listener and take it down.
   */
  set(cert: ServingCert): void {
    createSecureContext({ cert: cert.certPEM, key: cert.keyPEM });
    this.#current = { certPEM: cert.certPEM, keyPEM: cert.keyPEM };
    for (const listener of this.#listeners) listener(this.#current);
  }

  /** Calls `listener` with every pair set from now on; returns the unsubscribe function. */
  onChange(listener: (cert: ServingCert) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
