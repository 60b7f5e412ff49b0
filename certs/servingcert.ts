// The serving certificate and key of an HTTPS listener, swapped at runtime by whoever owns them
// (the serving-cert reconciler; a test). Listeners subscribe and apply each new pair to new
// connections, so a rotation never needs a restart.
import { createSecureContext } from "node:tls";
import { Holder } from "../kube/holder.ts";

export interface ServingCert {
  /** The leaf first, then any intermediates. */
  certPEM: string;
  keyPEM: string;
}

export class ServingCertHolder extends Holder<ServingCert | undefined> {
  constructor() {
    super(undefined, {
      // Every pair set is applied: listeners rebuild their context even for the same PEM.
      equal: () => false,
      // A bad pair must not reach a listener and take it down: set throws and keeps the pair it had.
      validate: (cert) => {
        if (cert) createSecureContext({ cert: cert.certPEM, key: cert.keyPEM });
      },
      copy: (cert) => cert && { certPEM: cert.certPEM, keyPEM: cert.keyPEM },
    });
  }

  override set(cert: ServingCert): void {
    super.set(cert);
  }

  /** Calls `listener` with every pair set from now on; returns the unsubscribe function. */
  override onChange(listener: (cert: ServingCert) => void): () => void {
    return super.onChange((cert) => {
      if (cert) listener(cert);
    });
  }
}
