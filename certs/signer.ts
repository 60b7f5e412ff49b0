// The CAs that may sign TokenCredentialRequest client certificates, each in a holder that its
// controller fills and empties (the kube-cert-agent for the cluster signing CA; the impersonator
// config controller for the proxy's signer), and issuance that falls back from one to the next
// the way upstream's clientcertissuer.ClientCertIssuers does.
import type { CertificateAuthority } from "./ca.ts";
import type { CertEnv } from "./env.ts";
import {
  type ClientIdentity,
  clientCertificateTTLMs,
  type IssuedCertificate,
  issueClientCertificate,
} from "./issue.ts";

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

/** Every signer was empty or failed; `message` says why for each, in order. */
export class NoSignerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoSignerError";
  }
}

/**
 * Issues from the first holder that has a CA and succeeds, trying them in the order given
 * (upstream: the kube cluster signing CA, then the impersonation-proxy signer).
 */
export async function issueClientCertificateFrom(
  holders: readonly SignerHolder[],
  identity: ClientIdentity,
  ttlMs: number = clientCertificateTTLMs,
  env?: CertEnv,
): Promise<IssuedCertificate> {
  const failures: string[] = [];
  for (const holder of holders) {
    const ca = holder.get();
    if (!ca) {
      failures.push(`${holder.name} failed to issue client cert: no CA is loaded`);
      continue;
    }
    try {
      return await issueClientCertificate(ca, identity, ttlMs, env);
    } catch (error) {
      failures.push(`${holder.name} failed to issue client cert: ${(error as Error).message}`);
    }
  }
  if (failures.length === 0) throw new NoSignerError("failed to issue cert: no signers configured");
  throw new NoSignerError(failures.length === 1 ? failures[0]! : `[${failures.join(", ")}]`);
}
