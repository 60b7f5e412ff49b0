// The decisions of upstream's apicerts controllers (internal/controller/apicerts), as pure
// functions of what the reconcilers observed: which names the serving certificate carries, the
// Secret certs-manager writes, when certs-expirer rotates, and the patches that copy the CA into
// the APIServices and the admission webhook configuration.
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import type { KubeObject } from "../../kube/resource.ts";

/** Upstream's Secret keys (certs_manager.go), kept so an upstream install's Secret reads the same. */
export const caCertificateKey = "caCertificate";
export const caCertificatePrivateKeyKey = "caCertificatePrivateKey";
export const tlsCertificateChainKey = "tlsCertificateChain";
export const tlsPrivateKeyKey = "tlsPrivateKey";

/** Upstream's generatedCACommonName for the aggregated API's serving CA. */
export const servingCACommonName = "Pinniped Aggregation CA";

/**
 * The longest certs-expirer waits before looking again. A far rotation (upstream's default is 9
 * months) does not fit a Node timer, which fires at once beyond 2^31-1 ms, and a bounded wait
 * also catches up after a suspended host or a wall-clock jump.
 */
export const maxExpiryWaitMs = 60 * 60_000;

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export type SecretObject = KubeObject & { type?: string; data?: Record<string, string> };

export interface ServiceReference {
  namespace?: string;
  name?: string;
  port?: number;
}

export type APIServiceObject = KubeObject & {
  spec?: { caBundle?: string; service?: ServiceReference | null; [field: string]: unknown };
};

export interface WebhookClientConfig {
  caBundle?: string;
  service?: ServiceReference & { path?: string };
  url?: string;
}

export type WebhookConfigurationObject = KubeObject & {
  webhooks?: { name?: string; clientConfig?: WebhookClientConfig; [field: string]: unknown }[];
};

export interface ServingNames {
  dnsNames: string[];
  ips: string[];
}

/**
 * `<service>.<namespace>.svc` and its `.cluster.local` form (upstream's two), then the extra
 * names, IP addresses apart as the certificate needs them. Duplicates are dropped.
 */
export function servingNames(
  serviceName: string,
  namespace: string,
  extraSANs: readonly string[],
): ServingNames {
  const endpoint = `${serviceName}.${namespace}.svc`;
  const dnsNames = [endpoint, `${endpoint}.cluster.local`];
  const ips: string[] = [];
  for (const san of extraSANs) {
    const list = isIP(san) ? ips : dnsNames;
    if (!list.includes(san)) list.push(san);
  }
  return { dnsNames, ips };
}

/** What certs-manager generates: a fresh CA and a serving certificate it signed, all PEM. */
export interface ServingMaterial {
  caCertPEM: string;
  caKeyPEM: string;
  certPEM: string;
  keyPEM: string;
}

export interface SecretIdentity {
  name: string;
  namespace: string;
  labels: Readonly<Record<string, string>>;
  ownerReference?: OwnerReference | undefined;
}

/** The Secret certs-manager creates: upstream's four keys, the configured labels, type Opaque. */
export function newServingSecret(id: SecretIdentity, material: ServingMaterial): SecretObject {
  const b64 = (pem: string) => Buffer.from(pem).toString("base64");
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: id.name,
      namespace: id.namespace,
      ...(Object.keys(id.labels).length > 0 ? { labels: { ...id.labels } } : {}),
      ...(id.ownerReference ? { ownerReferences: [{ ...id.ownerReference }] } : {}),
    },
    type: "Opaque",
    data: {
      [caCertificateKey]: b64(material.caCertPEM),
      [caCertificatePrivateKeyKey]: b64(material.caKeyPEM),
      [tlsCertificateChainKey]: b64(material.certPEM),
      [tlsPrivateKeyKey]: b64(material.keyPEM),
    },
  };
}

/** A key of the Secret's data, decoded; undefined when absent. */
export function secretValue(secret: SecretObject, key: string): Buffer | undefined {
  const value = secret.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, "base64");
}

export interface CertBounds {
  notBeforeMs: number;
  notAfterMs: number;
}

/**
 * NotBefore and NotAfter of the first certificate in `tlsCertificateChain`, or upstream's
 * getCertBounds message saying why there is none.
 */
export function certBounds(secret: SecretObject): CertBounds | { error: string } {
  const chain = secretValue(secret, tlsCertificateChainKey);
  if (chain === undefined) return { error: "failed to find certificate" };
  if (!chain.includes("-----BEGIN ")) return { error: "failed to decode certificate PEM" };
  try {
    const cert = new X509Certificate(chain);
    return { notBeforeMs: cert.validFromDate.getTime(), notAfterMs: cert.validToDate.getTime() };
  } catch (error) {
    return { error: `failed to parse certificate: ${(error as Error).message}` };
  }
}

export type ExpiryDecision =
  | { rotate: true; why: "aged" | "expired" }
  | { rotate: false; ageMs: number; recheckAfterMs: number };

/**
 * Upstream's certs-expirer rule: rotate once the certificate's age (from NotBefore, which issuance
 * back-dates by 5 minutes) reaches `renewBeforeMs`, or once it has expired. Otherwise the wait
 * until the earlier of the two moments, at most maxExpiryWaitMs.
 */
export function decideExpiry(bounds: CertBounds, nowMs: number, renewBeforeMs: number): ExpiryDecision {
  const ageMs = nowMs - bounds.notBeforeMs;
  if (ageMs >= renewBeforeMs) return { rotate: true, why: "aged" };
  if (nowMs > bounds.notAfterMs) return { rotate: true, why: "expired" };
  const untilAged = bounds.notBeforeMs + renewBeforeMs - nowMs;
  const untilExpired = bounds.notAfterMs + 1 - nowMs;
  return { rotate: false, ageMs, recheckAfterMs: Math.min(untilAged, untilExpired, maxExpiryWaitMs) };
}

/** Whether a base64 caBundle (as the API serves `[]byte` fields) holds exactly `ca`. */
function sameBundle(caBundle: string | undefined, ca: Buffer): boolean {
  return Buffer.from(caBundle ?? "", "base64").equals(ca);
}

/** A Service reference in another namespace means another install owns the object (upstream's rule). */
function foreign(service: ServiceReference | null | undefined, namespace: string): boolean {
  return service != null && service.namespace !== namespace;
}

export type APIServiceDecision =
  | { action: "skip"; why: "not ours" | "up to date" }
  | { action: "patch"; patch: { spec: { caBundle: string } } };

/**
 * Upstream's UpdateAPIService: leave an APIService whose Service is in another namespace alone,
 * do nothing when caBundle already holds the CA, else set caBundle. The merge patch names
 * caBundle only, so fields other writers own are never rewritten from a stale copy.
 */
export function decideAPIService(
  apiService: APIServiceObject,
  namespace: string,
  ca: Buffer,
): APIServiceDecision {
  if (foreign(apiService.spec?.service, namespace)) return { action: "skip", why: "not ours" };
  if (sameBundle(apiService.spec?.caBundle, ca)) return { action: "skip", why: "up to date" };
  return { action: "patch", patch: { spec: { caBundle: ca.toString("base64") } } };
}

export type JSONPatchOperation =
  | { op: "test"; path: string; value: unknown }
  | { op: "add"; path: string; value: unknown };

/**
 * The same rule for each webhook of a webhook configuration (beyond upstream, which has no
 * webhook), as a JSON patch: per webhook to change, a test that the entry at that index is still
 * the one named (so a concurrent reorder fails the patch instead of writing the wrong entry) and
 * an add of its caBundle. Empty when nothing needs to change.
 */
export function webhookCABundlePatch(
  config: WebhookConfigurationObject,
  namespace: string,
  ca: Buffer,
): JSONPatchOperation[] {
  const ops: JSONPatchOperation[] = [];
  for (const [i, webhook] of (config.webhooks ?? []).entries()) {
    const clientConfig = webhook.clientConfig;
    if (!clientConfig || foreign(clientConfig.service, namespace)) continue;
    if (sameBundle(clientConfig.caBundle, ca)) continue;
    ops.push(
      { op: "test", path: `/webhooks/${i}/name`, value: webhook.name },
      { op: "add", path: `/webhooks/${i}/clientConfig/caBundle`, value: ca.toString("base64") },
    );
  }
  return ops;
}
