// Ordered failover between issuers, the way upstream's clientcertissuer.ClientCertIssuers falls
// back from the kube cluster signing CA to the impersonation-proxy signer: the first issuer that
// gives a credential serves, and when none does the reason names each one's failure in order.
import type { IssueRequest, IssueResult, Issuer, IssuerHealth } from "./issuer.ts";

export class OrderedIssuers implements Issuer {
  readonly name = "credential issuers";
  readonly #issuers: readonly Issuer[];

  /** `issuers` in priority order: the first healthy one is asked first. */
  constructor(issuers: readonly Issuer[]) {
    this.#issuers = [...issuers];
  }

  /** Whether the issuer that would serve the next request carries a uid and extras. */
  get carriesExtras(): boolean {
    return this.active()?.carriesExtras === true;
  }

  /** The issuer that would serve the next request, if any is healthy. */
  active(): Issuer | undefined {
    return this.#issuers.find((issuer) => issuer.health().ok);
  }

  health(): IssuerHealth {
    if (this.active()) return { ok: true };
    return { ok: false, reason: this.#unavailable(this.#issuers.map((issuer) => unhealthy(issuer))) };
  }

  async issue(request: IssueRequest): Promise<IssueResult> {
    const failures: string[] = [];
    const { uid, extra } = request.user;
    const needsExtras = uid !== undefined || Object.keys(extra ?? {}).length > 0;
    for (const issuer of this.#issuers) {
      const health = issuer.health();
      if (!health.ok) {
        failures.push(health.reason);
        continue;
      }
      // The handler let a uid or extras through for the issuer that was active then; one that
      // cannot carry them must not issue a credential that silently drops them.
      if (needsExtras && !issuer.carriesExtras) {
        failures.push(`${issuer.name} cannot carry a uid or extras`);
        continue;
      }
      let result: IssueResult;
      try {
        result = await issuer.issue(request);
      } catch (error) {
        result = { ok: false, reason: `${issuer.name} failed: ${(error as Error).message}` };
      }
      if (result.ok) return result;
      failures.push(result.reason);
      if (request.signal?.aborted) break;
    }
    if (request.certificateSigningRequestPEM !== undefined && !request.signal?.aborted) {
      // No strategy that serves can sign the client's own key (the CSR API's signer would copy the
      // client's subject; a token has no key): answer as upstream does, with a key made here,
      // which the client uses since the answer holds it. A login must not fail for asking.
      const { certificateSigningRequestPEM: _, ...withoutRequest } = request;
      const fallback = await this.issue(withoutRequest);
      if (fallback.ok) return fallback;
    }
    return { ok: false, reason: this.#unavailable(failures) };
  }

  #unavailable(failures: readonly string[]): string {
    if (failures.length === 0) return "failed to issue cert: no signers configured";
    return failures.length === 1 ? failures[0]! : `[${failures.join(", ")}]`;
  }
}

function unhealthy(issuer: Issuer): string {
  const health = issuer.health();
  return health.ok ? `${issuer.name} is healthy` : health.reason;
}
