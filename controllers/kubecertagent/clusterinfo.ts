// kube-public/cluster-info as the signing strategies' reconcilers watch it (kube-cert-agent, the
// Secret signer, the CSR API): an informer on that one object, its events as the reconciler's
// single key, and the frontend each strategy advertises read from the informer's copy.
import type { ConfigMapLike } from "../../authenticators/tls/cabundle.ts";
import type { KubeObject } from "../../kube/resource.ts";
import type { Filter } from "../runtime/controller.ts";
import { named, singletonKey, when } from "../runtime/filters.ts";
import type { Lister } from "../runtime/informer.ts";
import type { InformerFactory } from "../runtime/informer-factory.ts";
import {
  type ClusterInfoResult,
  clusterInfoName,
  clusterInfoNamespace,
  tokenCredentialRequestFrontend,
} from "./frontend.ts";

export type ClusterInfo = KubeObject & ConfigMapLike;

/** An informer on cluster-info alone (by name: it caches one object, and RBAC may name it). */
export function clusterInfoInformer(informers: InformerFactory) {
  return informers.informer<ClusterInfo>({
    group: "",
    version: "v1",
    resource: "configmaps",
    namespace: clusterInfoNamespace,
    fieldSelector: `metadata.name=${clusterInfoName}`,
  });
}

/** Any change of cluster-info enqueues the reconciler's one `key`. */
export function onClusterInfo(key: string): Filter<ClusterInfo> {
  return when(named(clusterInfoName, clusterInfoNamespace), singletonKey(key));
}

/** The frontend from the informer's cluster-info, or upstream's CouldNotGetClusterInfo failure. */
export function clusterInfoFrontend(
  clusterInfo: Lister<ClusterInfo>,
  discoveryURLOverride?: string,
): ClusterInfoResult {
  return tokenCredentialRequestFrontend(
    clusterInfo.get(clusterInfoName, clusterInfoNamespace),
    discoveryURLOverride,
  );
}
