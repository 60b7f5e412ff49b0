// Plays the control plane's node for kube-cert-agent. hack/controlplane.ts runs kube-apiserver
// and kube-controller-manager as processes, with no kubelet and no Pod objects for them, so
// whoever wants the Concierge to borrow the signing key for real there (concierge-process.test.ts;
// everything end to end runs on the real node) stands in for:
// - the node and its kubelet: a Node object (kube-controller-manager's pod GC deletes pods bound
//   to a missing node) whose kubelet endpoint is test/harness/kubelet-standin.ts, which
//   kube-apiserver dials with its kubelet client certificate and which answers the agent's
//   `print` exec as the agent binary would;
// - kube-controller-manager's static pod, as its mirror Pod would be, with signing flags naming
//   the control plane's real CA files (<dir of the admin kubeconfig>/pki/ca.{crt,key});
// - the kubelet's status updates: pods on the node are marked Running, including every agent pod
//   the Concierge's Deployment makes later (it may replace them), until stop().
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import type { Pod } from "../../controllers/kubecertagent/agent.ts";
import { selectedVersion } from "../../hack/k8s/releases.ts";
import { KubeRestClient } from "../../kube/rest.ts";
import {
  type ExecRequest,
  type ExecResult,
  type KubeletStandIn,
  registerNode,
  startKubeletStandIn,
} from "./kubelet-standin.ts";

/** The label kube-cert-agent puts on its pods. */
export const agentSelector = "kube-cert-agent.pinniped.dev=v3";
const agentCommand = "pinniped-concierge-kube-cert-agent print";

export interface PlayNodeOptions {
  /** The control plane's admin kubeconfig; its directory holds pki/ca.{crt,key}. */
  kubeconfigPath: string;
  /** The Concierge's namespace, where kube-cert-agent's pods appear. */
  namespace: string;
  nodeName: string;
  /** How often to look for agent pods to mark Running; default 250 ms. */
  pollMs?: number;
}

export interface PlayedNode {
  /** The files kube-controller-manager's pod names as its signing key pair. */
  clusterCA: { cert: string; key: string };
  /** For assertions on the execs kube-apiserver forwarded (and requests turned away). */
  kubelet: KubeletStandIn;
  stop(): Promise<void>;
}

export async function playControlPlaneNode(options: PlayNodeOptions): Promise<PlayedNode> {
  const kc = new KubeConfig();
  kc.loadFromFile(options.kubeconfigPath);
  const admin = new KubeRestClient(kc);
  const { namespace, nodeName } = options;
  const pkiDir = join(dirname(options.kubeconfigPath), "pki");
  const clusterCA = { cert: join(pkiDir, "ca.crt"), key: join(pkiDir, "ca.key") };
  const podsPath = (ns: string) => `/api/v1/namespaces/${ns}/pods`;
  /** What a kubelet reports once a pod's containers started. */
  const markRunning = (ns: string, name: string) =>
    admin.request({
      method: "PATCH",
      path: `${podsPath(ns)}/${name}/status`,
      contentType: "application/merge-patch+json",
      body: { status: { phase: "Running" } },
    });
  /** The agent binary's `print` in a Running pod: the files its container's env names. */
  const agentPrint = async ({ namespace: ns, pod, container, command }: ExecRequest): Promise<ExecResult> => {
    const p = await admin.request<Pod>({ method: "GET", path: `${podsPath(ns)}/${pod}` });
    if (p.status?.phase !== "Running") throw new Error(`pod ${ns}/${pod} is not running`);
    const c = p.spec?.containers?.find((x) => x.name === container);
    if (!c) throw new Error(`container ${container} not found in pod ${ns}/${pod}`);
    if (command.join(" ") !== agentCommand) throw new Error(`the agent runs no ${command.join(" ")}`);
    const env = new Map(((c.env ?? []) as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    const read = async (name: string) => (await readFile(env.get(name) ?? "")).toString("base64");
    return {
      stdout: JSON.stringify({ "tls.crt": await read("CERT_PATH"), "tls.key": await read("KEY_PATH") }),
    };
  };

  const kubelet = await startKubeletStandIn({
    clientCAPEM: await readFile(clusterCA.cert, "utf8"),
    exec: agentPrint,
  });
  let stopped = false;
  let wake: (() => void) | undefined;
  let loop: Promise<void> = Promise.resolve();
  const stop = async () => {
    stopped = true;
    wake?.();
    await loop;
    await kubelet.close();
    admin.close();
  };
  try {
    // kubeadm's label: the impersonator-config reconciler's auto mode looks for it.
    await registerNode(admin, nodeName, kubelet.port, { "node-role.kubernetes.io/control-plane": "" });
    const kcmName = `kube-controller-manager-${nodeName}`;
    await admin.request({
      method: "POST",
      path: podsPath("kube-system"),
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: kcmName, labels: { component: "kube-controller-manager", tier: "control-plane" } },
        spec: {
          automountServiceAccountToken: false,
          nodeName,
          tolerations: [{ operator: "Exists", effect: "NoExecute" }],
          containers: [
            {
              name: "kube-controller-manager",
              // kubeadm's image for the release the control plane runs.
              image: `registry.k8s.io/kube-controller-manager:v${await selectedVersion()}`,
              command: [
                "kube-controller-manager",
                `--cluster-signing-cert-file=${clusterCA.cert}`,
                `--cluster-signing-key-file=${clusterCA.key}`,
              ],
              volumeMounts: [{ name: "k8s-certs", mountPath: pkiDir, readOnly: true }],
            },
          ],
          volumes: [{ name: "k8s-certs", hostPath: { path: pkiDir, type: "DirectoryOrCreate" } }],
        },
      },
    });
    await markRunning("kube-system", kcmName);
  } catch (err) {
    await stop();
    throw err;
  }

  const markAgentPodsRunning = async () => {
    const pods = await admin.request<{ items: Pod[] }>({
      method: "GET",
      path: podsPath(namespace),
      query: { labelSelector: agentSelector },
    });
    for (const pod of pods.items) {
      if (pod.status?.phase !== "Running" && !pod.metadata?.deletionTimestamp) {
        await markRunning(namespace, pod.metadata!.name!);
      }
    }
  };
  loop = (async () => {
    while (!stopped) {
      // A pod deleted between the list and the patch fails the round; the next round catches up.
      await markAgentPodsRunning().catch(() => undefined);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.pollMs ?? 250);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();
  return { clusterCA, kubelet, stop };
}
