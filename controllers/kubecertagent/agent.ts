// The pure decisions of the kube-cert-agent reconciler (upstream's kubecertagent.go helpers):
// which kube-controller-manager pod to copy, where its signing files are, the agent Deployment
// built from it, whether an existing Deployment must change, and reading the agent's `print`.
import { isDeepStrictEqual } from "node:util";
import { isObject } from "../../kube/isobject.ts";
import type { KubeObject, ObjectMeta } from "../../kube/resource.ts";

/** Where upstream assumes the kube-controller-manager pods live. */
export const controllerManagerNamespace = "kube-system";
export const controllerManagerLabelSelector = "component=kube-controller-manager";

/**
 * Changing the value means "the old agent pods are incompatible": upstream bumps it so that a new
 * release never reads from an agent pod that an old Deployment made.
 */
export const agentPodLabelKey = "kube-cert-agent.pinniped.dev";
export const agentPodLabelValue = "v3";
export const agentPodLabelSelector = `${agentPodLabelKey}=${agentPodLabelValue}`;
export const agentContainerName = "sleeper";
export const agentCommand = "pinniped-concierge-kube-cert-agent";
export const printCommand: readonly string[] = [agentCommand, "print"];

/** The label every Concierge resource carries; the agent pods must never match the Concierge's own selector. */
const conciergeAppLabelKey = "app";

export interface Container {
  name?: string;
  command?: string[];
  args?: string[];
  volumeMounts?: unknown[];
  [field: string]: unknown;
}

export interface PodSpec {
  containers?: Container[];
  volumes?: unknown[];
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  hostNetwork?: boolean;
  priorityClassName?: string;
  [field: string]: unknown;
}

export type Pod = KubeObject & {
  metadata?: ObjectMeta & { creationTimestamp?: string };
  spec?: PodSpec;
  status?: { phase?: string; [field: string]: unknown };
};

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}

export type Deployment = KubeObject & {
  metadata?: ObjectMeta;
  spec?: {
    replicas?: number;
    selector?: LabelSelector;
    template?: { metadata?: { labels?: Record<string, string> }; spec?: PodSpec };
    minReadySeconds?: number;
    [field: string]: unknown;
  };
};

export type Node = KubeObject & { spec?: { unschedulable?: boolean } };

/** What shapes the agent Deployment besides the kube-controller-manager pod (upstream's AgentConfig). */
export interface AgentConfig {
  namespace: string;
  /** The Deployment's name; a trailing `-` is dropped, as upstream trims its name prefix. */
  agentName: string;
  image: string;
  serviceAccountName: string;
  /** The Concierge's labels: on the Deployment, and (all but `app`) on its pods. */
  labels?: Record<string, string>;
  imagePullSecrets?: string[];
  priorityClassName?: string;
  /** Root by default, since the cluster's key file is usually readable by root only. */
  runAsUser?: number;
  runAsGroup?: number;
}

export function deploymentName(config: Pick<AgentConfig, "agentName">): string {
  return config.agentName.endsWith("-") ? config.agentName.slice(0, -1) : config.agentName;
}

/**
 * Running pods, newest `creationTimestamp` first, ties by name ascending (upstream's
 * sortPodsByAgeNewestFirstAndFilterRunningOnly).
 */
export function runningPodsNewestFirst<P extends Pod>(pods: readonly P[]): P[] {
  const created = (p: Pod) => Date.parse(p.metadata?.creationTimestamp ?? "") || 0;
  return pods
    .filter((p) => p.status?.phase === "Running")
    .sort((a, b) => {
      const diff = created(b) - created(a);
      if (diff !== 0) return diff;
      const an = a.metadata?.name ?? "";
      const bn = b.metadata?.name ?? "";
      return an < bn ? -1 : an > bn ? 1 : 0;
    });
}

/** The newest running pod, or undefined when none runs. */
export function newestRunningPod<P extends Pod>(pods: readonly P[]): P | undefined {
  return runningPodsNewestFirst(pods)[0];
}

/**
 * Among the running pods (newest first), the newest on a node that is not cordoned or drained;
 * the newest of all when none is. `nodes` are consulted only when there is a choice to make.
 */
export function newestRunningPodOnSchedulableNode<P extends Pod>(
  pods: readonly P[],
  nodes: readonly Node[],
): P | undefined {
  const running = runningPodsNewestFirst(pods);
  if (running.length <= 1) return running[0];
  const byName = new Map(nodes.map((n) => [n.metadata?.name ?? "", n]));
  const onSchedulable = running.find((p) => {
    const node = byName.get(p.spec?.nodeName ?? "");
    return node !== undefined && node.spec?.unschedulable !== true;
  });
  return onSchedulable ?? running[0];
}

/** "1 candidate", "N candidates": upstream's wording in the strategy messages. */
export function pluralize(pods: readonly unknown[]): string {
  return pods.length === 1 ? "1 candidate" : `${pods.length} candidates`;
}

/** Upstream's failure when no kube-controller-manager pod is Running. */
export function noControllerManagerMessage(candidates: readonly unknown[]): string {
  const message = `could not find a healthy kube-controller-manager pod (${pluralize(candidates)})`;
  return candidates.length === 0
    ? `${message}: note that this error is the expected behavior for some cluster types, including most cloud provider clusters (e.g. GKE, AKS, EKS)`
    : message;
}

/**
 * The value of the first of `flagNames` that is set to something non-empty in a container's
 * `command` + `args`, trying containers in order; `fallback` otherwise (upstream's
 * getContainerArgByName).
 */
export function containerArgByName(pod: Pod, flagNames: readonly string[], fallback: string): string {
  for (const container of pod.spec?.containers ?? []) {
    const values = parseStringFlags([...(container.command ?? []), ...(container.args ?? [])], flagNames);
    for (const name of flagNames) {
      const value = values.get(name);
      if (value) return value;
    }
  }
  return fallback;
}

/** CERT_PATH of the agent: kube-controller-manager's signing certificate file. */
export function signingCertPath(pod: Pod): string {
  return containerArgByName(
    pod,
    ["cluster-signing-cert-file", "cluster-signing-kube-apiserver-client-cert-file"],
    "/etc/kubernetes/ca/ca.pem",
  );
}

/** KEY_PATH of the agent: kube-controller-manager's signing key file. */
export function signingKeyPath(pod: Pod): string {
  return containerArgByName(
    pod,
    ["cluster-signing-key-file", "cluster-signing-kube-apiserver-client-key-file"],
    "/etc/kubernetes/ca/ca.key",
  );
}

/**
 * spf13/pflag's parse of `args` with only the string flags `names` defined and unknown flags
 * allowed, so that the same command lines give the same answer as upstream: `--f=v` and `--f v`
 * (taking the next argument whatever it looks like), the last occurrence wins, an unknown
 * `--x` swallows a following argument that does not start with `-`, `--` ends the flags, and
 * `--help`/`-h` or a flag missing its value stop the parse where it is.
 */
export function parseStringFlags(args: readonly string[], names: readonly string[]): Map<string, string> {
  const known = new Set(names);
  const values = new Map<string, string>();
  // Go's stripUnknownFlagValue.
  const strip = (rest: string[]) => (rest.length > 0 && !rest[0]!.startsWith("-") ? rest.slice(1) : rest);
  let rest = [...args];
  while (rest.length > 0) {
    const arg = rest.shift()!;
    if (arg.length < 2 || !arg.startsWith("-")) continue;
    if (arg === "--") break;
    if (arg.startsWith("--")) {
      const body = arg.slice(2);
      if (body.startsWith("-") || body.startsWith("=")) break; // "bad flag syntax"
      const eq = body.indexOf("=");
      const name = eq === -1 ? body : body.slice(0, eq);
      if (!known.has(name)) {
        if (name === "help") break;
        if (eq === -1) rest = strip(rest);
        continue;
      }
      if (eq !== -1) values.set(name, body.slice(eq + 1));
      else if (rest.length > 0) values.set(name, rest.shift()!);
      else break; // "flag needs an argument"
      continue;
    }
    // Shorthands: none of ours has one, so each letter is unknown; the last letter decides
    // whether the next argument is swallowed, as pflag re-strips from the same argument list.
    const shorthands = arg.slice(1);
    let next = rest;
    let stop = false;
    for (let i = 0; i < shorthands.length; i++) {
      if (shorthands[i] === "h") {
        stop = true;
        break;
      }
      if (shorthands.length - i > 2 && shorthands[i + 1] === "=") {
        next = rest;
        break;
      }
      next = strip(rest);
    }
    if (stop) break;
    rest = next;
  }
  return values;
}

/** Upstream's agentPodLabels: the selector label plus the configured labels but `app`. */
export function agentPodLabels(config: Pick<AgentConfig, "labels">): Record<string, string> {
  const labels: Record<string, string> = { [agentPodLabelKey]: agentPodLabelValue };
  for (const [k, v] of Object.entries(config.labels ?? {})) {
    if (k !== conciergeAppLabelKey) labels[k] = v;
  }
  return labels;
}

/** Upstream's newAgentDeployment: a root `sleep` pod on the kube-controller-manager's node with its volumes. */
export function newAgentDeployment(controllerManager: Pod, config: AgentConfig): Deployment {
  const spec = controllerManager.spec ?? {};
  const runAsUser = config.runAsUser ?? 0;
  const securityContext: Record<string, unknown> = { runAsUser, runAsGroup: config.runAsGroup ?? 0 };
  if (runAsUser !== 0) securityContext.runAsNonRoot = true;
  const podSpec: PodSpec = {
    terminationGracePeriodSeconds: 0,
    imagePullSecrets: config.imagePullSecrets?.length
      ? config.imagePullSecrets.map((name) => ({ name }))
      : undefined,
    containers: [
      {
        name: agentContainerName,
        image: config.image,
        imagePullPolicy: "IfNotPresent",
        command: [agentCommand, "sleep"],
        volumeMounts: spec.containers?.[0]?.volumeMounts,
        env: [
          { name: "CERT_PATH", value: signingCertPath(controllerManager) },
          { name: "KEY_PATH", value: signingKeyPath(controllerManager) },
        ],
        resources: {
          limits: { memory: "32Mi", cpu: "20m" },
          // Explicitly zero, not unset: upstream issue #1507 (an unset request takes the limit).
          requests: { memory: "32Mi", cpu: "0" },
        },
      },
    ],
    volumes: spec.volumes,
    restartPolicy: "Always",
    nodeSelector: spec.nodeSelector,
    automountServiceAccountToken: false,
    serviceAccountName: config.serviceAccountName,
    nodeName: spec.nodeName,
    tolerations: spec.tolerations,
    securityContext,
    // Go omits false and "" from the JSON; so do we.
    hostNetwork: spec.hostNetwork || undefined,
    priorityClassName: config.priorityClassName || undefined,
  };
  return withoutUndefined({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: deploymentName(config), namespace: config.namespace, labels: config.labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: { [agentPodLabelKey]: agentPodLabelValue } },
      template: { metadata: { labels: agentPodLabels(config) }, spec: podSpec },
      // Keeps the Deployment controller from churning agent pods too quickly.
      minReadySeconds: 10,
    },
  });
}

/** Adds `desired`'s labels and annotations to `existing`'s, never removing any. */
export function mergeLabelsAndAnnotations(existing: ObjectMeta, desired: ObjectMeta): ObjectMeta {
  const merged: ObjectMeta = structuredClone(existing);
  if (desired.labels && Object.keys(desired.labels).length > 0) {
    merged.labels = { ...existing.labels, ...desired.labels };
  }
  if (desired.annotations && Object.keys(desired.annotations).length > 0) {
    merged.annotations = { ...existing.annotations, ...desired.annotations };
  }
  return merged;
}

export type DeploymentAction =
  | { type: "create"; deployment: Deployment }
  | { type: "update"; deployment: Deployment }
  /** The selector is immutable: delete `existing` (with UID and resourceVersion preconditions), then create. */
  | { type: "recreate"; existing: Deployment; deployment: Deployment }
  | { type: "none" };

/**
 * What to do to make the agent Deployment `desired` (upstream's createOrUpdateDeployment): the
 * update carries the existing object with the desired spec and merged labels and annotations,
 * and is skipped when the existing one already has everything desired (fields the API server
 * defaulted do not count), unless the selector, the pod labels or the priority class differ.
 */
export function deploymentAction(existing: Deployment | undefined, desired: Deployment): DeploymentAction {
  if (!existing) return { type: "create", deployment: desired };
  const updated: Deployment = {
    ...structuredClone(existing),
    metadata: mergeLabelsAndAnnotations(existing.metadata ?? {}, desired.metadata ?? {}),
    spec: structuredClone(desired.spec),
  };
  const selectorChanged = !isDeepStrictEqual(
    normalizedSelector(updated.spec?.selector),
    normalizedSelector(existing.spec?.selector),
  );
  const templateLabelsChanged = !isDeepStrictEqual(
    emptyToUndefined(updated.spec?.template?.metadata?.labels),
    emptyToUndefined(existing.spec?.template?.metadata?.labels),
  );
  // Setting it back to "" would look derivative, yet the user wants it cleared.
  const priorityClassChanged =
    (updated.spec?.template?.spec?.priorityClassName ?? "") !==
    (existing.spec?.template?.spec?.priorityClassName ?? "");
  if (
    deepDerivative(updated, existing) &&
    !selectorChanged &&
    !templateLabelsChanged &&
    !priorityClassChanged
  ) {
    return { type: "none" };
  }
  if (selectorChanged) return { type: "recreate", existing, deployment: desired };
  return { type: "update", deployment: updated };
}

/**
 * apimachinery's Semantic.DeepDerivative on JSON: whether `existing` has everything `desired`
 * sets. Unset (absent, null, "", empty map or list) in `desired` matches anything; maps need
 * each desired key; lists compare element-wise over the desired ones; numbers and booleans must
 * be equal, where an absent value in `existing` is Go's zero value.
 */
export function deepDerivative(desired: unknown, existing: unknown): boolean {
  if (desired === undefined || desired === null || desired === "") return true;
  if (Array.isArray(desired)) {
    if (desired.length === 0) return true;
    if (!Array.isArray(existing) || desired.length > existing.length) return false;
    return desired.every((d, i) => deepDerivative(d, existing[i]));
  }
  if (typeof desired === "object") {
    const entries = Object.entries(desired as Record<string, unknown>);
    if (entries.length === 0) return true;
    if (!isObject(existing)) return false;
    return entries.every(([k, v]) => deepDerivative(v, existing[k]));
  }
  if (existing === undefined || existing === null) return desired === 0 || desired === false;
  return desired === existing;
}

function normalizedSelector(selector: LabelSelector | undefined): LabelSelector {
  return {
    matchLabels: emptyToUndefined(selector?.matchLabels),
    matchExpressions: selector?.matchExpressions?.length ? selector.matchExpressions : undefined,
  };
}

function emptyToUndefined(map: Record<string, string> | undefined): Record<string, string> | undefined {
  return map && Object.keys(map).length > 0 ? map : undefined;
}

/** A JSON copy: drops the fields left undefined, as Go's omitempty would. */
function withoutUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** The decoded output of the agent's `print`: PEM text of the cluster signing certificate and key. */
export interface SigningPair {
  certPEM: string;
  keyPEM: string;
}

/**
 * Decodes `{"tls.crt": base64, "tls.key": base64}` as upstream's loadSigningKey does. Errors name
 * the pod and never quote the output, which holds the private key.
 */
export function parsePrintOutput(stdout: string, podRef: string): SigningPair {
  let output: unknown;
  try {
    output = JSON.parse(stdout);
  } catch (error) {
    throw new Error(
      `failed to decode signing cert/key JSON from agent pod ${podRef}: ${jsonErrorKind(error)}`,
    );
  }
  const fields = isObject(output) ? output : undefined;
  const cert = fields?.["tls.crt"] ?? "";
  const key = fields?.["tls.key"] ?? "";
  if (output !== null && (fields === undefined || typeof cert !== "string" || typeof key !== "string")) {
    throw new Error(
      `failed to decode signing cert/key JSON from agent pod ${podRef}: expected an object of two strings`,
    );
  }
  const certPEM = decodeStdBase64(cert as string);
  if (certPEM === undefined) throw new Error(`failed to decode signing cert base64 from agent pod ${podRef}`);
  const keyPEM = decodeStdBase64(key as string);
  if (keyPEM === undefined) throw new Error(`failed to decode signing key base64 from agent pod ${podRef}`);
  return { certPEM, keyPEM };
}

/** The JSON error without the input text that V8 quotes in its message. */
function jsonErrorKind(error: unknown): string {
  return error instanceof SyntaxError ? "invalid JSON" : String(error);
}

/** Go's base64.StdEncoding.DecodeString: padded standard alphabet, line breaks skipped. */
function decodeStdBase64(value: string): string | undefined {
  const compact = value.replace(/[\r\n]/g, "");
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact)) return undefined;
  return Buffer.from(compact, "base64").toString("utf8");
}
