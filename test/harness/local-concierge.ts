// What the suites that run the Concierge as a local process on a control plane of their own
// (hack/run-local.ts) share: the start with short Lease timings, a TokenCredentialRequest through the aggregator, and `kubectl auth whoami` with the
// credential it returned.
import { readFile } from "node:fs/promises";
import type { ControlPlane } from "../../hack/controlplane.ts";
import { type LocalConcierge, runLocal } from "../../hack/run-local.ts";
import type { Logger } from "../../observability/logger.ts";
import type { DedicatedKubectl } from "./cluster.ts";
import { type AuthenticatorRef, tokenCredentialRequest, writeCredentialKubeconfig } from "./login.ts";

/** hack/run-local.ts with a Lease short enough that a restarted Concierge leads again quickly. */
export function startLocalConcierge(
  cp: ControlPlane,
  options: { log: Logger; identity: string; configOverrides?: Record<string, unknown> },
): Promise<LocalConcierge> {
  return runLocal({
    kubeconfigPath: cp.kubeconfigPath,
    binDir: cp.binDir,
    leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
    ...options,
  });
}

/** Where the suites keep the Secret strategy's CA. */
export const signerSecretRef = { namespace: "signers", name: "csr-signer" } as const;
const conciergeServiceAccount = {
  kind: "ServiceAccount",
  name: "pinniped-concierge",
  namespace: "pinniped-concierge",
};

/** The README's RBAC for the Secret strategy: the named Secret only, for the Concierge's ServiceAccount. */
export function secretStrategyRBAC(): object[] {
  const metadata = { namespace: signerSecretRef.namespace, name: "pinniped-concierge-signer-secret" };
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata,
      rules: [
        {
          apiGroups: [""],
          resources: ["secrets"],
          resourceNames: [signerSecretRef.name],
          verbs: ["get", "list", "watch"],
        },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: metadata.name },
      subjects: [conciergeServiceAccount],
    },
  ];
}

/** The Secret strategy's Secret, holding a CA certificate and its key. */
export function signerSecretWith(certPEM: string, privateKeyPEM: string): object {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { ...signerSecretRef },
    type: "kubernetes.io/tls",
    data: {
      "tls.crt": Buffer.from(certPEM).toString("base64"),
      "tls.key": Buffer.from(privateKeyPEM).toString("base64"),
    },
  };
}

export type Credential = {
  clientCertificateData: string;
  clientKeyData: string;
  expirationTimestamp: string;
};
export type TCRStatus = { credential?: Credential; message?: string };

/** A TokenCredentialRequest with `kubectl create`; its status, or kubectl's error as the message. */
export async function requestCredential(
  k: DedicatedKubectl,
  token: string,
  authenticator: AuthenticatorRef,
  certificateSigningRequest?: string,
): Promise<TCRStatus> {
  const tcr = tokenCredentialRequest(token, authenticator, certificateSigningRequest);
  const res = await k.kubectl(["create", "-f", "-", "-o", "json"], { input: JSON.stringify(tcr) });
  if (res.code !== 0) return { message: `kubectl failed: ${res.stderr}` };
  return (JSON.parse(res.stdout) as { status: TCRStatus }).status;
}

/**
 * `kubectl auth whoami` with a kubeconfig (written to `kubeconfigPath`, 0600) holding only the
 * credential; the user's name and groups (kube-apiserver adds the certificate's fingerprint as an
 * extra, left out).
 */
export async function whoamiWith(
  k: DedicatedKubectl,
  cp: ControlPlane,
  kubeconfigPath: string,
  credential: Pick<Credential, "clientCertificateData" | "clientKeyData">,
): Promise<{ username: string; groups: string[] }> {
  const caPEM = await readFile(cp.pki.ca.cert, "utf8");
  await writeCredentialKubeconfig(kubeconfigPath, { server: cp.server, caPEM }, credential);
  const who = JSON.parse(await k.ok(["auth", "whoami", "-o", "json"], { kubeconfig: kubeconfigPath })) as {
    status: { userInfo: { username: string; groups: string[] } };
  };
  const { username, groups } = who.status.userInfo;
  return { username, groups };
}

export type Strategy = { type: string; status: string; reason: string; message: string };

/** The CredentialIssuer's strategies, as the Concierge last wrote them. */
export async function issuerStrategies(k: DedicatedKubectl): Promise<Strategy[]> {
  const out = await k.ok(["get", "credentialissuer", "pinniped-concierge-config", "-o", "json"]);
  return (JSON.parse(out) as { status?: { strategies?: Strategy[] } }).status?.strategies ?? [];
}
