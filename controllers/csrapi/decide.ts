// The CertificateSigningRequestAPI strategy's pure parts: the CSR object it creates, and what a
// CSR's status says about it.
import type { KubeObject } from "../../kube/resource.ts";

export const signerName = "kubernetes.io/kube-apiserver-client";
/** kube-apiserver refuses a shorter `spec.expirationSeconds`, and kube-controller-manager honours no less. */
export const minExpirationSeconds = 600;
/** Marks the CSRs this strategy creates; the shared watch selects on it. */
export const strategyLabel = "concierge.pinniped.dev/strategy";
export const strategyLabelValue = "CertificateSigningRequestAPI";

type Condition = { type?: string; status?: string; reason?: string; message?: string };
export type CSR = KubeObject & {
  spec?: { request?: string; signerName?: string; expirationSeconds?: number; usages?: string[] };
  status?: { certificate?: string; conditions?: Condition[] };
};

/** The certificate lifetime asked for: the configured TTL, but never under the API's minimum. */
export function expirationSecondsFor(ttlSeconds: number): number {
  return Math.max(minExpirationSeconds, ttlSeconds);
}

/** The CSR for `csrPEM`; kube-apiserver picks the name from `generateName`. */
export function newCSR(csrPEM: string, ttlSeconds: number, labels: Record<string, string>): CSR {
  return {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: {
      generateName: "pinniped-concierge-",
      labels: { ...labels, [strategyLabel]: strategyLabelValue },
    },
    spec: {
      request: Buffer.from(csrPEM).toString("base64"),
      signerName,
      expirationSeconds: expirationSecondsFor(ttlSeconds),
      usages: ["client auth"],
    },
  };
}

/** `csr` with the Approved condition, for the approval subresource. */
export function approved(csr: CSR): CSR {
  const { resourceVersion: _rv, ...metadata } = csr.metadata ?? {};
  const condition = {
    type: "Approved",
    status: "True",
    reason: "PinnipedConciergeApproved",
    message: "the Pinniped Concierge authenticated this user with a TokenCredentialRequest",
  };
  return {
    ...csr,
    metadata,
    status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] },
  };
}

export type Outcome = { ok: true; certificatePEM: string } | { ok: false; reason: string };

/** The certificate, or why there will be none; undefined while the signer has not answered. */
export function outcomeOf(csr: CSR): Outcome | undefined {
  const name = csr.metadata?.name ?? "";
  for (const type of ["Denied", "Failed"]) {
    const c = csr.status?.conditions?.find((x) => x.type === type && x.status === "True");
    if (c) {
      const detail = [c.reason, c.message].filter(Boolean).join(": ");
      return {
        ok: false,
        reason: `CertificateSigningRequest ${name} ${type.toLowerCase()}${detail ? `: ${detail}` : ""}`,
      };
    }
  }
  const certificate = csr.status?.certificate;
  if (!certificate) return undefined;
  return { ok: true, certificatePEM: Buffer.from(certificate, "base64").toString("utf8") };
}
