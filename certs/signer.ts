// A CA that may sign TokenCredentialRequest client certificates, in a holder that its controller
// fills and empties (the kube-cert-agent for the cluster signing CA; the impersonator config
// controller for the proxy's signer). issuers/localca.ts issues from it.
import type { CertificateAuthority } from "./ca.ts";

export class SignerHolder {
  readonly name: string;
  #current: CertificateAuthority | undefined;
  readonly #listeners = new Set<(ca: CertificateAuthority | undefined) => void>();

  /** `name` identifies the signer in errors, e.g. "kube cluster signing CA". */
  constructor(name: string) {
    this.name = name;
  }

  get(): CertificateAuthority | undefined {
    return this.#current;
  }

  /** Loads a CA, or with undefined unloads it (the signer then refuses to issue). */
  set(ca: CertificateAuthority | undefined): void {
    if (ca === this.#current) return;
    this.#current = ca;
    for (const listener of this.#listeners) listener(ca);
  }

  /** Calls `listener` with every change from now on; returns the unsubscribe function. */
  onChange(listener: (ca: CertificateAuthority | undefined) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
