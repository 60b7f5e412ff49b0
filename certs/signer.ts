// A CA that may sign TokenCredentialRequest client certificates, in a holder that its controller
// fills and empties (the kube-cert-agent for the cluster signing CA; the impersonator config
// controller for the proxy's signer). issuers/localca.ts issues from it.
import { Holder, sameValue } from "../kube/holder.ts";
import type { CertificateAuthority } from "./ca.ts";

/** Holds a CA, or undefined while none is loaded (the signer then refuses to issue). */
export class SignerHolder extends Holder<CertificateAuthority | undefined> {
  readonly name: string;

  /** `name` identifies the signer in errors, e.g. "kube cluster signing CA". */
  constructor(name: string) {
    super(undefined, { equal: sameValue });
    this.name = name;
  }
}
