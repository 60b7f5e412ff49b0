// The TokenCredentialRequestAPI frontend that the KubeClusterSigningCertificate strategy
// advertises: the API server URL and CA that kubeadm publishes in kube-public/cluster-info
// (upstream's kubecertagent extractAPIInfo, with its messages).
import { parse } from "yaml";
import { type CredentialIssuerFrontend, FrontendType, StrategyReason } from "../../apis/index.ts";
import type { ConfigMapLike } from "../../authenticators/tls/cabundle.ts";
import { isObject } from "../../kube/isobject.ts";

export const clusterInfoNamespace = "kube-public";
export const clusterInfoName = "cluster-info";
export const clusterInfoKey = "kubeconfig";

export type ClusterInfoResult =
  | { ok: true; frontend: CredentialIssuerFrontend }
  | { ok: false; reason: typeof StrategyReason.CouldNotGetClusterInfo; message: string };

/**
 * The frontend built from the cluster-info ConfigMap (`undefined` when it does not exist), or
 * upstream's CouldNotGetClusterInfo failure. `discoveryURLOverride` (config `discovery.url`)
 * replaces only the server; an empty override counts, as upstream's pointer does.
 */
export function tokenCredentialRequestFrontend(
  clusterInfo: ConfigMapLike | undefined,
  discoveryURLOverride?: string,
): ClusterInfoResult {
  const where = `${clusterInfoNamespace}/${clusterInfoName}`;
  const fail = (message: string): ClusterInfoResult => ({
    ok: false,
    reason: StrategyReason.CouldNotGetClusterInfo,
    message,
  });
  if (!clusterInfo) {
    return fail(`failed to get ${where} configmap: configmap "${clusterInfoName}" not found`);
  }
  const extracted = firstCluster(clusterInfo);
  if (typeof extracted === "string") {
    return fail(`could not extract Kubernetes API endpoint info from ${where} configmap: ${extracted}`);
  }
  return {
    ok: true,
    frontend: {
      type: FrontendType.TokenCredentialRequestAPI,
      tokenCredentialRequestInfo: {
        server: discoveryURLOverride ?? extracted.server,
        certificateAuthorityData: extracted.certificateAuthorityData,
      },
    },
  };
}

interface ClusterEntry {
  server: string;
  certificateAuthorityData: string;
}

/** The first cluster of the kubeconfig in the ConfigMap, or upstream's error message. */
function firstCluster(configMap: ConfigMapLike): ClusterEntry | string {
  const text = configMap.data?.[clusterInfoKey];
  if (text === undefined) return `missing "${clusterInfoKey}" key`;
  // Upstream does not wrap the parse error, because it is very verbose.
  const invalid = `key "${clusterInfoKey}" does not contain a valid kubeconfig`;
  const clusters = parseClusters(text);
  if (clusters === undefined) return invalid;
  // Upstream ranges over a Go map, so with several clusters its pick is random; the first is ours.
  return clusters[0] ?? `kubeconfig in key "${clusterInfoKey}" does not contain any clusters`;
}

/**
 * The clusters of a kubeconfig, or `undefined` where client-go's `clientcmd.Load` fails: text
 * that is not YAML, another apiVersion or kind, fields of the wrong type, CA data that is not
 * base64, or a cluster name used twice.
 */
function parseClusters(text: string): ClusterEntry[] | undefined {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch {
    return undefined;
  }
  if (doc === null || doc === undefined) return [];
  if (!isObject(doc)) return undefined;
  if (!optionalString(doc.apiVersion, "v1") || !optionalString(doc.kind, "Config")) return undefined;
  if (doc.clusters === null || doc.clusters === undefined) return [];
  if (!Array.isArray(doc.clusters)) return undefined;
  const names = new Set<string>();
  const clusters: ClusterEntry[] = [];
  for (const named of doc.clusters) {
    if (!isObject(named)) return undefined;
    const name = named.name ?? "";
    if (typeof name !== "string" || names.has(name)) return undefined;
    names.add(name);
    const cluster = named.cluster ?? {};
    if (!isObject(cluster)) return undefined;
    const server = cluster.server ?? "";
    const ca = cluster["certificate-authority-data"] ?? "";
    if (typeof server !== "string" || typeof ca !== "string") return undefined;
    const caBase64 = canonicalBase64(ca);
    if (caBase64 === undefined) return undefined;
    clusters.push({ server, certificateAuthorityData: caBase64 });
  }
  return clusters;
}

/** Go decodes `[]byte` JSON fields with padded standard base64, skipping line breaks. */
function canonicalBase64(value: string): string | undefined {
  const compact = value.replace(/[\r\n]/g, "");
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact)) return undefined;
  return Buffer.from(compact, "base64").toString("base64");
}

/** Absent, empty (defaulted by the decoder) or exactly `expected`. */
function optionalString(value: unknown, expected: string): boolean {
  return value === undefined || value === null || value === "" || value === expected;
}
