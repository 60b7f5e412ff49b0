// Upstream's legacy-pod-cleaner-controller: deletes the kube-cert-agent pods that Pinniped v0.7.0
// and older created directly (label `kube-cert-agent.pinniped.dev=true` plus the Concierge's
// labels). Nothing else owns them, and each is a privileged pod with the cluster's signing key
// mounted, so a cluster upgraded from such a version to this Concierge would otherwise keep them
// forever. Agent pods of today's Deployment carry another label value and are never touched.
import { objectPath, type ResourceRef, splitKey } from "../../kube/resource.ts";
import { isConflict, isNotFound, type RestClient } from "../../kube/rest.ts";
import {
  type Controller,
  type ControllerOptions,
  type Syncer,
  SyntheticRequeue,
} from "../runtime/controller.ts";
import { ownKey, when } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import { agentPodLabelKey, type Pod } from "./agent.ts";

export const legacyAgentPodLabelValue = "true";
export const controllerName = "legacy-pod-cleaner-controller";

const podsResource: ResourceRef = { group: "", version: "v1", resource: "pods" };

export interface LegacyPodCleanerDeps {
  /** The Concierge namespace, where the old agent pods were created. */
  namespace: string;
  /** The Concierge's configured labels, which old versions also put on their agent pods. */
  labels?: Record<string, string>;
}

export interface LegacyPodCleanerEnv {
  /** Pods of the Concierge namespace labelled `kube-cert-agent.pinniped.dev=true`. */
  legacyPods: InformerSource<Pod>;
  /** Deletes (leader-only in a Manager). */
  client: RestClient;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

/** Upstream's legacyAgentLabels: the old agent label and every configured label, all required. */
export function isLegacyAgentPod(pod: Pod, deps: LegacyPodCleanerDeps): boolean {
  if (pod.metadata?.namespace !== deps.namespace) return false;
  const labels = pod.metadata?.labels ?? {};
  if (labels[agentPodLabelKey] !== legacyAgentPodLabelValue) return false;
  return Object.entries(deps.labels ?? {}).every(([k, v]) => labels[k] === v);
}

export function legacyPodCleanerController(env: LegacyPodCleanerEnv, deps: LegacyPodCleanerDeps): Controller {
  const sync: Syncer = async ({ key, signal, log }) => {
    const { name, namespace } = splitKey(key);
    const pod = env.legacyPods.get(name, namespace);
    if (!pod || !isLegacyAgentPod(pod, deps)) return undefined;
    try {
      // Preconditions, as upstream: never delete a pod that changed since the cache saw it; a
      // changed one is looked at again once the cache has caught up.
      await env.client.request({
        method: "DELETE",
        path: objectPath(podsResource, name, namespace),
        body: {
          apiVersion: "v1",
          kind: "DeleteOptions",
          preconditions: { uid: pod.metadata?.uid, resourceVersion: pod.metadata?.resourceVersion },
        },
        signal,
      });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      if (isConflict(err)) throw SyntheticRequeue;
      throw new Error(`could not delete legacy agent pod: ${(err as Error).message}`, { cause: err });
    }
    log.info("deleted legacy kube-cert-agent pod", { pod: { name, namespace } });
    return undefined;
  };
  return env.controller({ name: controllerName, sync }).withInformer(
    env.legacyPods,
    when((pod: Pod) => isLegacyAgentPod(pod, deps), ownKey),
  );
}

/** Registers the cleaner with `manager`, watching only the old agent label in the Concierge namespace. */
export function register(manager: Manager, deps: LegacyPodCleanerDeps): Controller {
  return legacyPodCleanerController(
    {
      legacyPods: manager.informers.informer<Pod>({
        ...podsResource,
        namespace: deps.namespace,
        labelSelector: `${agentPodLabelKey}=${legacyAgentPodLabelValue}`,
      }),
      client: manager.client,
      controller: (options) => manager.controller(options),
    },
    deps,
  );
}
