// The SecretSigningCertificate strategy's decision, pure: which of the configured Secrets holds a
// CA that may sign client certificates, or why none does. A CA is used only when kube-apiserver
// trusts it for client certificates (its `client-ca-file`, which kube-apiserver publishes in
// kube-system/extension-apiserver-authentication): a certificate it would refuse is an error
// here, never a credential that fails later at kubectl.
import type { X509Certificate } from "node:crypto";
import type { ConfigMapLike, SecretLike } from "../../authenticators/tls/cabundle.ts";
import { parsePEMCertificates } from "../../authenticators/tls/cabundle.ts";
import { CertificateAuthority } from "../../certs/ca.ts";

/** One configured Secret: where it is and which data keys hold the certificate and the key. */
export interface SecretSource {
  namespace: string;
  name: string;
  certificateKey: string;
  privateKeyKey: string;
}

export const clientCAFileKey = "client-ca-file";

export type SecretSignerResult =
  | { ok: true; ca: CertificateAuthority; source: SecretSource }
  | { ok: false; message: string };

/** `namespace/name`, as messages name a Secret. */
export function secretRef(source: Pick<SecretSource, "namespace" | "name">): string {
  return `${source.namespace}/${source.name}`;
}

/**
 * The first source whose Secret holds a CA that kube-apiserver trusts, or every source's
 * failure in order. `secrets` looks a Secret up (undefined when it does not exist);
 * `authentication` is kube-system/extension-apiserver-authentication.
 */
export function decideSecretSigner(
  sources: readonly SecretSource[],
  secrets: (source: SecretSource) => SecretLike | undefined,
  authentication: ConfigMapLike | undefined,
): SecretSignerResult {
  if (sources.length === 0) return { ok: false, message: "no Secrets are configured" };
  const trusted = trustedClientCAs(authentication);
  const failures: string[] = [];
  for (const source of sources) {
    const loaded = loadFrom(source, secrets(source), trusted);
    if (loaded.ok) return loaded;
    failures.push(loaded.message);
  }
  return { ok: false, message: failures.join("; ") };
}

type Trusted = { ok: true; certificates: X509Certificate[] } | { ok: false; message: string };

function trustedClientCAs(authentication: ConfigMapLike | undefined): Trusted {
  const where = "kube-system/extension-apiserver-authentication";
  if (!authentication) {
    return {
      ok: false,
      message: `cannot tell whether kube-apiserver trusts it: ConfigMap ${where} not found`,
    };
  }
  const pem = authentication.data?.[clientCAFileKey];
  const certificates = pem ? parsePEMCertificates(Buffer.from(pem)) : [];
  if (certificates.length === 0) {
    return {
      ok: false,
      message: `cannot tell whether kube-apiserver trusts it: ConfigMap ${where} has no ${clientCAFileKey}`,
    };
  }
  return { ok: true, certificates };
}

function loadFrom(
  source: SecretSource,
  secret: SecretLike | undefined,
  trusted: Trusted,
): SecretSignerResult {
  const where = `Secret ${secretRef(source)}`;
  if (!secret) return { ok: false, message: `${where} not found` };
  const read = (key: string) => {
    const value = secret.data?.[key];
    return value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8");
  };
  const certPEM = read(source.certificateKey);
  const keyPEM = read(source.privateKeyKey);
  const missing = [source.certificateKey, source.privateKeyKey].filter(
    (_, i) => [certPEM, keyPEM][i] === undefined,
  );
  if (missing.length > 0) {
    return { ok: false, message: `${where} has no ${missing.map((k) => `"${k}"`).join(" or ")} key` };
  }
  let ca: CertificateAuthority;
  try {
    ca = CertificateAuthority.load(certPEM!, keyPEM!);
  } catch (error) {
    // CertificateAuthority.load's messages never carry key material.
    return { ok: false, message: `${where}: ${(error as Error).message}` };
  }
  if (!trusted.ok) return { ok: false, message: `${where}: ${trusted.message}` };
  if (!trusted.certificates.some((c) => c.raw.equals(ca.certificate.raw))) {
    return {
      ok: false,
      message:
        `${where}: kube-apiserver does not trust its CA (subject "${ca.certificate.subject.replaceAll("\n", ", ")}") ` +
        `for client certificates: it is not in the ${clientCAFileKey} of kube-system/extension-apiserver-authentication`,
    };
  }
  return { ok: true, ca, source };
}
