// An issuer that signs client certificates with a CA held in memory: kube-cert-agent's borrowed
// cluster signing key and the impersonation proxy's signer today, a CA loaded from a Secret next.
import { signingRequestPublicKey } from "../certs/csr.ts";
import { issueClientCertificate, issueClientCertificateForKey } from "../certs/issue.ts";
import type { SignerHolder } from "../certs/signer.ts";
import type { IssueRequest, IssueResult, Issuer, IssuerHealth } from "./issuer.ts";

export class LocalCAIssuer implements Issuer {
  readonly #holder: SignerHolder;

  constructor(holder: SignerHolder) {
    this.#holder = holder;
  }

  get name(): string {
    return this.#holder.name;
  }

  health(): IssuerHealth {
    if (this.#holder.get()) return { ok: true };
    return { ok: false, reason: `${this.name} failed to issue client cert: no CA is loaded` };
  }

  async issue(request: IssueRequest): Promise<IssueResult> {
    const ca = this.#holder.get();
    if (!ca) return { ok: false, reason: `${this.name} failed to issue client cert: no CA is loaded` };
    try {
      if (request.certificateSigningRequestPEM !== undefined) {
        // The client holds the key: only its public key is taken from the request, the subject is the user.
        const spki = signingRequestPublicKey(request.certificateSigningRequestPEM);
        const issued = await issueClientCertificateForKey(ca, request.user, spki, request.ttlSeconds * 1000);
        return {
          ok: true,
          credential: {
            type: "certificate",
            certificatePEM: issued.certPEM,
            notBefore: issued.notBefore,
            notAfter: issued.notAfter,
          },
        };
      }
      const issued = await issueClientCertificate(ca, request.user, request.ttlSeconds * 1000);
      return {
        ok: true,
        credential: {
          type: "certificate",
          certificatePEM: issued.certPEM,
          keyPEM: issued.keyPEM,
          notBefore: issued.notBefore,
          notAfter: issued.notAfter,
        },
      };
    } catch (error) {
      return { ok: false, reason: `${this.name} failed to issue client cert: ${(error as Error).message}` };
    }
  }
}
