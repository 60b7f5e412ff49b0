// What the reconciler hands the proxy's TLS layer: the serving chain and key, and the signer CAs
// whose client certificates are accepted. Someone else composes it with the cluster's client CA
// into the proxy's ProxyTLS.
import { isDeepStrictEqual } from "node:util";
import { Holder } from "../kube/holder.ts";

export interface ProxyCredentialsState {
  /** Leaf first, then intermediates (the cross-signed CA during a rotation). Undefined when stopped. */
  serving: { certPEM: string; keyPEM: string } | undefined;
  /** The signer CAs: the current one first, then the previous one during an overlap. */
  signerCAPEMs: string[];
}

/** Listeners hear only of real changes (the reconciler sets it every sync). */
export class ProxyCredentials extends Holder<ProxyCredentialsState> {
  constructor() {
    super(
      { serving: undefined, signerCAPEMs: [] },
      {
        equal: isDeepStrictEqual,
        copy: (state) => Object.freeze({ serving: state.serving, signerCAPEMs: [...state.signerCAPEMs] }),
      },
    );
  }

  /** Keys never reach logs or JSON. */
  toJSON(): { serving: boolean; signerCAs: number } {
    const state = this.get();
    return { serving: state.serving !== undefined, signerCAs: state.signerCAPEMs.length };
  }
}
