// The kube-cert-agent reconciler (upstream's kubecertagent.go agentController): keeps an agent
// Deployment next to the newest running kube-controller-manager pod, execs `print` in the newest
// running agent pod to read the cluster signing certificate and key, loads them into the
// SignerHolder, and publishes the KubeClusterSigningCertificate strategy. Every replica runs it,
// so every replica's signer is filled; only the leader writes the Deployment.
import { StrategyReason, StrategyStatus, StrategyType } from "../../apis/index.ts";
import { CertificateAuthority } from "../../certs/ca.ts";
import type { SignerHolder } from "../../certs/signer.ts";
import type { Clock } from "../../kube/clock.ts";
import { collectionPath, type KubeObject, objectPath, type ResourceRef } from "../../kube/resource.ts";
import type { RestClient } from "../../kube/rest.ts";
import type { StrategyHolder } from "../credentialissuer/holder.ts";
import type { StrategyUpdate } from "../credentialissuer/merge.ts";
import type { Controller, ControllerOptions, Syncer } from "../runtime/controller.ts";
import { named, singletonKey, when } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import { NotLeaderError } from "../runtime/leaderelection.ts";
import type { Manager } from "../runtime/manager.ts";
import {
  type AgentConfig,
  agentContainerName,
  agentPodLabelKey,
  agentPodLabelSelector,
  agentPodLabelValue,
  controllerManagerLabelSelector,
  controllerManagerNamespace,
  type Deployment,
  deploymentAction,
  deploymentName,
  type Node,
  newAgentDeployment,
  newestRunningPod,
  newestRunningPodOnSchedulableNode,
  noControllerManagerMessage,
  type Pod,
  parsePrintOutput,
  pluralize,
  printCommand,
} from "./agent.ts";
import { clusterInfoFrontend, clusterInfoInformer, onClusterInfo } from "./clusterinfo.ts";
import type { PodCommandExecutor } from "./executor.ts";

/** How long a successful load from one agent pod (by UID) is trusted before exec'ing again. */
export const execCacheTTLMs = 15 * 60_000;
/** Upstream's informer resync: the key is re-checked at least this often. */
export const resyncIntervalMs = 3 * 60_000;
export const controllerName = "kube-cert-agent";

export type ConfigMap = KubeObject & { data?: Record<string, string> };

const deploymentsResource: ResourceRef = { group: "apps", version: "v1", resource: "deployments" };
const podsResource: ResourceRef = { group: "", version: "v1", resource: "pods" };

export interface KubeCertAgentDeps {
  /** The Concierge namespace, where the agent Deployment and its pods live. */
  namespace: string;
  /** The agent Deployment's name (upstream: `<app>-kube-cert-agent`). */
  agentName: string;
  /** Must contain `pinniped-concierge-kube-cert-agent` (`sleep` and `print`). */
  agentImage: string;
  /** Defaults to the Deployment's name, which is what upstream's install names the agent's ServiceAccount. */
  serviceAccountName?: string;
  labels?: Record<string, string>;
  imagePullSecrets?: string[];
  priorityClassName?: string;
  runAsUser?: number;
  runAsGroup?: number;
  /** Config `discovery.url`: replaces the server that cluster-info advertises. */
  discoveryURLOverride?: string;
  strategyHolder: StrategyHolder;
  signerHolder: SignerHolder;
  executor: PodCommandExecutor;
  /** For the exec cache; defaults to the manager's clock. */
  clock?: Clock;
}

/** What the reconciler needs from its surroundings: a Manager's parts, or fakes in tests. */
export interface KubeCertAgentEnv {
  /** kube-system pods (those labelled `component=kube-controller-manager` are used). */
  controllerManagerPods: InformerSource<Pod>;
  agentDeployments: InformerSource<Deployment>;
  /** Pods of the Concierge namespace (those with the agent label are used). */
  agentPods: InformerSource<Pod>;
  /** kube-public ConfigMaps (cluster-info is used). */
  clusterInfo: InformerSource<ConfigMap>;
  /** Writes (leader-only in a Manager) and the live node list. */
  client: RestClient;
  clock: Clock;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

const hasLabel = (key: string, value: string) => (obj: KubeObject) => obj.metadata?.labels?.[key] === value;
const isControllerManager = hasLabel("component", "kube-controller-manager");
const isAgentPod = hasLabel(agentPodLabelKey, agentPodLabelValue);

/** A failure of one sync step: what the strategy reports. */
class StepError extends Error {
  readonly reason: StrategyReason;
  constructor(reason: StrategyReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Builds the reconciler's controller in `env`; `register` is the usual way in. */
export function kubeCertAgentController(env: KubeCertAgentEnv, deps: KubeCertAgentDeps): Controller {
  const name = deploymentName(deps);
  const config: AgentConfig = {
    namespace: deps.namespace,
    agentName: deps.agentName,
    image: deps.agentImage,
    serviceAccountName: deps.serviceAccountName ?? name,
    labels: deps.labels,
    imagePullSecrets: deps.imagePullSecrets,
    priorityClassName: deps.priorityClassName,
    runAsUser: deps.runAsUser,
    runAsGroup: deps.runAsGroup,
  };
  // Agent pod UID → when the successful load from it stops being trusted.
  const execCache = new Map<string, number>();

  const publish = (strategy: Omit<StrategyUpdate, "type">) =>
    deps.strategyHolder.set(StrategyType.KubeClusterSigningCertificate, strategy);

  async function ensureDeployment(controllerManager: Pod, signal: AbortSignal, log: SyncLog): Promise<void> {
    const action = deploymentAction(
      env.agentDeployments.get(name, deps.namespace),
      newAgentDeployment(controllerManager, config),
    );
    if (action.type === "none") return;
    const fields = {
      deployment: { name, namespace: deps.namespace },
      templatePod: {
        name: controllerManager.metadata?.name,
        namespace: controllerManager.metadata?.namespace,
      },
    };
    const create = (deployment: Deployment) =>
      env.client.request({
        method: "POST",
        path: collectionPath(deploymentsResource, deps.namespace),
        body: deployment,
        signal,
      });
    if (action.type === "create") {
      log.info("creating new deployment", fields);
      await create(action.deployment);
    } else if (action.type === "recreate") {
      log.info("deleting deployment to update immutable Selector field", fields);
      await env.client.request({
        method: "DELETE",
        path: objectPath(deploymentsResource, name, deps.namespace),
        body: {
          apiVersion: "v1",
          kind: "DeleteOptions",
          preconditions: {
            uid: action.existing.metadata?.uid,
            resourceVersion: action.existing.metadata?.resourceVersion,
          },
        },
        signal,
      });
      log.info("creating new deployment to update immutable Selector field", fields);
      await create(action.deployment);
    } else {
      log.info("updating existing deployment", fields);
      await env.client.request({
        method: "PUT",
        path: objectPath(deploymentsResource, name, deps.namespace),
        body: action.deployment,
        signal,
      });
    }
  }

  async function loadSigningKey(agentPod: Pod, signal: AbortSignal, log: SyncLog): Promise<void> {
    const now = env.clock.now();
    for (const [uid, until] of execCache) if (until <= now) execCache.delete(uid);
    const uid = agentPod.metadata?.uid ?? "";
    if (execCache.has(uid)) return;

    const podRef = `${agentPod.metadata?.namespace}/${agentPod.metadata?.name}`;
    let stdout: string;
    try {
      ({ stdout } = await deps.executor.exec(
        agentPod.metadata?.namespace ?? "",
        agentPod.metadata?.name ?? "",
        agentContainerName,
        printCommand,
        signal,
      ));
    } catch (error) {
      throw new StepError(
        StrategyReason.CouldNotFetchKey,
        `could not exec into agent pod ${podRef}: ${(error as Error).message}`,
      );
    }
    let ca: CertificateAuthority;
    try {
      const { certPEM, keyPEM } = parsePrintOutput(stdout, podRef);
      try {
        ca = CertificateAuthority.load(certPEM, keyPEM);
      } catch (error) {
        throw new Error(
          `failed to set signing cert/key content from agent pod ${podRef}: ${(error as Error).message}`,
        );
      }
    } catch (error) {
      throw new StepError(StrategyReason.CouldNotFetchKey, (error as Error).message);
    }
    deps.signerHolder.set(ca);
    log.info("successfully loaded signing key from agent pod into cache", { pod: podRef });
    execCache.set(uid, env.clock.now() + execCacheTTLMs);
  }

  const sync: Syncer = async ({ signal, log }) => {
    const fail = (reason: StrategyReason, message: string): never => {
      throw new StepError(reason, message);
    };
    // A failed deployment write is remembered, not fatal: another replica may already have made
    // a compatible Deployment whose pods can be used.
    let deploymentError: string | undefined;
    let notLeader: NotLeaderError | undefined;
    try {
      const controllerManagers = env.controllerManagerPods
        .list(controllerManagerNamespace)
        .filter(isControllerManager);
      let controllerManager: Pod | undefined;
      try {
        controllerManager = await newestControllerManager(controllerManagers, signal);
      } catch (error) {
        return fail(
          StrategyReason.CouldNotFetchKey,
          `error while looking for controller manager pod: ${(error as Error).message}`,
        );
      }
      if (!controllerManager) {
        return fail(StrategyReason.CouldNotFetchKey, noControllerManagerMessage(controllerManagers));
      }

      try {
        await ensureDeployment(controllerManager, signal, log);
      } catch (error) {
        if (error instanceof NotLeaderError) notLeader = error;
        else deploymentError = `could not ensure agent deployment: ${(error as Error).message}`;
      }

      const agentPods = env.agentPods.list(deps.namespace).filter(isAgentPod);
      const agentPod = newestRunningPod(agentPods);
      if (!agentPod) {
        return fail(
          StrategyReason.CouldNotFetchKey,
          deploymentError ?? `could not find a healthy agent pod (${pluralize(agentPods)})`,
        );
      }

      const clusterInfo = clusterInfoFrontend(env.clusterInfo, deps.discoveryURLOverride);
      if (!clusterInfo.ok) return fail(clusterInfo.reason, deploymentError ?? clusterInfo.message);

      try {
        await loadSigningKey(agentPod, signal, log);
      } catch (error) {
        if (deploymentError && error instanceof StepError) return fail(error.reason, deploymentError);
        throw error;
      }
      if (deploymentError) return fail(StrategyReason.CouldNotFetchKey, deploymentError);
      // A follower that would have to change the Deployment leaves the verdict to the leader,
      // and is synced again at once if it becomes the leader.
      if (notLeader) throw notLeader;

      publish({
        status: StrategyStatus.Success,
        reason: StrategyReason.FetchedKey,
        message: "key was fetched successfully",
        frontend: clusterInfo.frontend,
      });
      return { requeueAfterMs: resyncIntervalMs };
    } catch (error) {
      if (error instanceof StepError) {
        if (notLeader) throw notLeader;
        publish({ status: StrategyStatus.Error, reason: error.reason, message: error.message });
      }
      throw error;
    }
  };

  /** Upstream lists nodes live, and only when there is a choice between running pods. */
  async function newestControllerManager(pods: Pod[], signal: AbortSignal): Promise<Pod | undefined> {
    if (pods.filter((p) => p.status?.phase === "Running").length <= 1) return newestRunningPod(pods);
    const nodes = await env.client.request<{ items?: Node[] }>({
      method: "GET",
      path: "/api/v1/nodes",
      signal,
    });
    return newestRunningPodOnSchedulableNode(pods, nodes.items ?? []);
  }

  const key = controllerName;
  return env
    .controller({ name: controllerName, sync })
    .withInformer(env.controllerManagerPods, when(isControllerManager, singletonKey(key)))
    .withInformer(env.agentDeployments, when(named(name, deps.namespace), singletonKey(key)))
    .withInformer(env.agentPods, when(isAgentPod, singletonKey(key)))
    .withInformer(env.clusterInfo, onClusterInfo(key))
    .withInitialEvent(key);
}

type SyncLog = Parameters<Syncer>[0]["log"];

/** Registers the reconciler with `manager`, with informers limited to what it reads. */
export function register(manager: Manager, deps: KubeCertAgentDeps): Controller {
  const informers = manager.informers;
  return kubeCertAgentController(
    {
      controllerManagerPods: informers.informer<Pod>({
        ...podsResource,
        namespace: controllerManagerNamespace,
        labelSelector: controllerManagerLabelSelector,
      }),
      agentDeployments: informers.informer<Deployment>({
        ...deploymentsResource,
        namespace: deps.namespace,
        fieldSelector: `metadata.name=${deploymentName(deps)}`,
      }),
      agentPods: informers.informer<Pod>({
        ...podsResource,
        namespace: deps.namespace,
        labelSelector: agentPodLabelSelector,
      }),
      clusterInfo: clusterInfoInformer(informers),
      client: manager.client,
      clock: deps.clock ?? manager.clock,
      controller: (options) => manager.controller(options),
    },
    deps,
  );
}
