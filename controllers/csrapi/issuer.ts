// The CertificateSigningRequestAPI strategy's issuer: for each TokenCredentialRequest it creates
// a CertificateSigningRequest for kube-controller-manager's kubernetes.io/kube-apiserver-client
// signer, approves it through the approval subresource, waits for the certificate on one watch
// that every request shares, and deletes the CSR. The Concierge makes the key and the request:
// the signer copies a request's subject into the certificate, so a client's own request (whose
// subject the client chose) is left to the strategies that sign only its key.
// Any failure marks the issuer unhealthy at once (the next strategy serves the next request);
// the probe (reconciler.ts) makes it healthy again.
import { X509Certificate } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { createSigningRequest } from "../../certs/csr.ts";
import type { IssueRequest, IssueResult, Issuer, IssuerHealth } from "../../issuers/issuer.ts";
import { Holder } from "../../kube/holder.ts";
import { collectionPath, objectPath, type ResourceRef } from "../../kube/resource.ts";
import type { RestClient } from "../../kube/rest.ts";
import type { InformerSource } from "../runtime/informer.ts";
import { approved, type CSR, newCSR, type Outcome, outcomeOf } from "./decide.ts";

export const csrResource: ResourceRef = {
  group: "certificates.k8s.io",
  version: "v1",
  resource: "certificatesigningrequests",
};
/**
 * How long a request waits for the signer. Short, so that a signer that went away costs one
 * request a few seconds and the next strategy serves the rest within the 5 s failover budget.
 */
export const defaultWaitTimeoutMs = 4_000;

export interface CSRAPIIssuerOptions {
  /** Creates, approves and deletes CSRs: an unguarded client, since every replica serves requests. */
  client: RestClient;
  /** The shared watch on this strategy's CSRs (selected by its label). */
  csrs: InformerSource<CSR>;
  labels?: Record<string, string>;
  waitTimeoutMs?: number;
}

export class CSRAPIIssuer implements Issuer {
  readonly name = "CertificateSigningRequest API";
  /** Healthy once a probe succeeded; a failed request or probe says why not. */
  readonly state = new Holder<IssuerHealth>(
    { ok: false, reason: "CertificateSigningRequest API: not probed yet" },
    { equal: isDeepStrictEqual },
  );
  readonly #options: CSRAPIIssuerOptions;
  /** CSR name → the request waiting for it. */
  readonly #waiting = new Map<string, (outcome: Outcome) => void>();

  constructor(options: CSRAPIIssuerOptions) {
    this.#options = options;
    const deliver = (csr: CSR) => {
      const name = csr.metadata?.name;
      const waiter = name === undefined ? undefined : this.#waiting.get(name);
      const outcome = waiter && outcomeOf(csr);
      if (waiter && outcome) waiter(outcome);
    };
    options.csrs.addHandler({ add: deliver, update: (_old, csr) => deliver(csr) });
  }

  health(): IssuerHealth {
    return this.state.get();
  }

  async issue(request: IssueRequest): Promise<IssueResult> {
    const result = await this.request(request);
    // A client's own CSR is a refusal, not a sign of trouble.
    const unhealthy =
      !result.ok && !request.signal?.aborted && request.certificateSigningRequestPEM === undefined;
    if (unhealthy) this.state.set({ ok: false, reason: result.reason });
    return result;
  }

  /** One round trip through the CSR API, without touching health: what issue() and the probe share. */
  async request(request: IssueRequest): Promise<IssueResult> {
    const { client } = this.#options;
    if (request.certificateSigningRequestPEM !== undefined) {
      return this.#failed(
        "cannot sign a client's certificate signing request: the signer would copy the subject the client chose",
      );
    }
    const { csrPEM, keyPEM } = await createSigningRequest(request.user);
    let created: CSR;
    try {
      created = await client.request<CSR>({
        method: "POST",
        path: collectionPath(csrResource),
        body: newCSR(csrPEM, request.ttlSeconds, this.#options.labels ?? {}),
        ...(request.signal ? { signal: request.signal } : {}),
      });
    } catch (error) {
      return this.#failed(`could not create a CertificateSigningRequest: ${(error as Error).message}`);
    }
    const name = created.metadata?.name ?? "";
    const stop = new AbortController();
    const outcome = new Promise<Outcome>((resolve) => {
      this.#waiting.set(name, resolve);
      const timer = setTimeout(
        () =>
          resolve({
            ok: false,
            reason:
              `no certificate for CertificateSigningRequest ${name} within ${(this.#options.waitTimeoutMs ?? defaultWaitTimeoutMs) / 1000}s: ` +
              "is kube-controller-manager's kubernetes.io/kube-apiserver-client signer running?",
          }),
        this.#options.waitTimeoutMs ?? defaultWaitTimeoutMs,
      );
      stop.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
      request.signal?.addEventListener(
        "abort",
        () => resolve({ ok: false, reason: "the client went away" }),
        {
          once: true,
        },
      );
    });
    try {
      try {
        await client.request({
          method: "PUT",
          path: `${objectPath(csrResource, name)}/approval`,
          body: approved(created),
          ...(request.signal ? { signal: request.signal } : {}),
        });
      } catch (error) {
        return this.#failed(
          `could not approve CertificateSigningRequest ${name}: ${(error as Error).message}`,
        );
      }
      // The watch may have delivered the certificate before this request was waiting.
      const cached = this.#options.csrs.get(name);
      const settled = (cached && outcomeOf(cached)) || (await outcome);
      if (!settled.ok) return this.#failed(settled.reason);
      const certificate = new X509Certificate(settled.certificatePEM);
      return {
        ok: true,
        credential: {
          type: "certificate",
          certificatePEM: settled.certificatePEM,
          keyPEM,
          notBefore: new Date(certificate.validFrom),
          notAfter: new Date(certificate.validTo),
        },
      };
    } finally {
      stop.abort();
      this.#waiting.delete(name);
      // The CSR has served its purpose; kube-controller-manager would delete it after an hour anyway.
      client.request({ method: "DELETE", path: objectPath(csrResource, name) }).catch(() => {});
    }
  }

  #failed(reason: string): IssueResult {
    return { ok: false, reason: `${this.name}: ${reason}` };
  }
}
