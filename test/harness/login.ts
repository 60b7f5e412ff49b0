// A user's login as the end-to-end suites make it with kubectl alone: the TokenCredentialRequest
// body, and on the real node the request through kube-apiserver's aggregator with the credential
// written to a kubeconfig that holds nothing else.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import type { NodeCluster } from "../../hack/node/cluster.ts";

/** The authenticator a TokenCredentialRequest names. */
export type AuthenticatorRef = { kind: "WebhookAuthenticator" | "JWTAuthenticator"; name: string };

/** A TokenCredentialRequest for `token`, checked by `authenticator`. */
export function tokenCredentialRequest(
  token: string,
  authenticator: AuthenticatorRef,
  certificateSigningRequest?: string,
) {
  return {
    apiVersion: "login.concierge.pinniped.dev/v1alpha1",
    kind: "TokenCredentialRequest",
    spec: {
      token,
      ...(certificateSigningRequest ? { certificateSigningRequest } : {}),
      authenticator: { apiGroup: "authentication.concierge.pinniped.dev", ...authenticator },
    },
  };
}

/**
 * A TokenCredentialRequest on the node, as its admin; asserts that it got a credential and writes
 * it to `kubeconfigPath` (0600) as the only user, with the node's server and CA. Returns the path.
 */
export async function loginOnNode(
  n: NodeCluster,
  token: string,
  authenticator: AuthenticatorRef,
  kubeconfigPath: string,
): Promise<string> {
  const out = await n.kubectl(
    ["create", "-o", "json", "-f", "-"],
    JSON.stringify(tokenCredentialRequest(token, authenticator)),
  );
  const { status } = JSON.parse(out) as {
    status: { credential?: { clientCertificateData: string; clientKeyData: string }; message?: string };
  };
  assert.ok(status.credential, `no credential: ${status.message}`);
  await writeCredentialKubeconfig(
    kubeconfigPath,
    { server: n.server, caPath: n.caCertPath },
    status.credential,
  );
  return kubeconfigPath;
}

/** Where a kubeconfig's one cluster is, with its CA as a file or as PEM text. */
export type KubeconfigCluster = { server: string } & ({ caPath: string } | { caPEM: string });

/**
 * Writes a kubeconfig (0600) whose only user is `credential`'s client certificate and key: what a
 * user ends up with after a login, without the CLI in between.
 */
export async function writeCredentialKubeconfig(
  path: string,
  cluster: KubeconfigCluster,
  credential: { clientCertificateData: string; clientKeyData: string },
): Promise<void> {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const ca =
    "caPath" in cluster
      ? { "certificate-authority": cluster.caPath }
      : { "certificate-authority-data": b64(cluster.caPEM) };
  await writeFile(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "cluster", cluster: { server: cluster.server, ...ca } }],
      users: [
        {
          name: "user",
          user: {
            "client-certificate-data": b64(credential.clientCertificateData),
            "client-key-data": b64(credential.clientKeyData),
          },
        },
      ],
      contexts: [{ name: "user", context: { cluster: "cluster", user: "user" } }],
      "current-context": "user",
    }),
    { mode: 0o600 },
  );
}
