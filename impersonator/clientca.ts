// The cluster's client CA, which kube-apiserver publishes for aggregated API servers in
// kube-system/extension-apiserver-authentication. The impersonation proxy trusts client
// certificates it signed, as well as its own signer's, so certificates from either
// TokenCredentialRequest strategy work against it.
import { X509Certificate } from "node:crypto";

export const authenticationConfigMapNamespace = "kube-system";
export const authenticationConfigMapName = "extension-apiserver-authentication";
export const clientCAKey = "client-ca-file";

export class ClientCAError extends Error {
  override readonly name = "ClientCAError";
}

/**
 * The PEM bundle under `client-ca-file`. Throws ClientCAError when the key is missing or empty
 * or holds no parsable certificate, so a broken ConfigMap is reported rather than trusted.
 */
export function clientCAFromConfigMap(configMap: { data?: Record<string, string> | null }): string {
  const pem = configMap.data?.[clientCAKey];
  const where = `${authenticationConfigMapNamespace}/${authenticationConfigMapName}`;
  if (pem === undefined || pem.trim() === "") {
    throw new ClientCAError(`ConfigMap ${where} has no ${clientCAKey}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0)
    throw new ClientCAError(`${clientCAKey} in ConfigMap ${where} holds no certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new ClientCAError(
        `${clientCAKey} in ConfigMap ${where} holds an invalid certificate: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  return pem;
}
