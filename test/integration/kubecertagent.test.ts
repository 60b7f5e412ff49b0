// The kube-cert-agent reconciler in-process against the real API server. There is no real kubelet:
// the test plays the node. It creates kube-controller-manager Pod objects in kube-system and marks
// them Running, and marks the agent pods that kube-controller-manager's Deployment and ReplicaSet
// controllers really create Running. The reconciler's exec of `print` is real: client-node's
// websocket exec goes to kube-apiserver, which calls the node's kubelet over SPDY with its kubelet
// client certificate; the node is registered with the address of a stand-in kubelet
// (test/harness/kubelet-standin.ts) that answers the way the agent binary would: by reading the
// files that the pod's CERT_PATH and KEY_PATH name (the test cluster's real signing CA, then an
// EC CA made for the test).
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SignerHolder } from "../../certs/signer.ts";
import { StrategyHolder } from "../../controllers/credentialissuer/holder.ts";
import type { StrategyUpdate } from "../../controllers/credentialissuer/merge.ts";
import type { Deployment, Pod } from "../../controllers/kubecertagent/agent.ts";
import {
  type PodCommandExecutor,
  websocketPodCommandExecutor,
} from "../../controllers/kubecertagent/executor.ts";
import {
  clusterInfoName,
  clusterInfoNamespace,
  tokenCredentialRequestFrontend,
} from "../../controllers/kubecertagent/frontend.ts";
import { type ConfigMap, register } from "../../controllers/kubecertagent/reconciler.ts";
import { type Manager, managerFromKubeConfig } from "../../controllers/runtime/manager.ts";
import { selectedVersion } from "../../hack/k8s/releases.ts";
import { newCA } from "../../hack/pki.ts";
import { isNotFound, KubeRestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import {
  type ExecRequest,
  type ExecResult,
  type KubeletStandIn,
  registerNode,
  startKubeletStandIn,
} from "../harness/kubelet-standin.ts";

const agentName = "pinniped-concierge-kube-cert-agent";
const testLabel = "concierge.test/kubecertagent";

// How long and how often this file waited before eventually was shared: its tests keep that timing.
const polling = { intervalMs: 50 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pem = (text: string) => text.trim();

describe("kube-cert-agent reconciler against the real API server (the test plays the node and its kubelet)", () => {
  let c: TestCluster;
  let admin: KubeRestClient;
  let namespace: string;
  let nodeName: string;
  let manager: Manager;
  let running: Promise<void>;
  let ecDir: string;
  let clusterCA: { cert: string; key: string };
  let ecCA: { cert: string; key: string };
  let kubelet: KubeletStandIn;
  const controllerManagers: string[] = [];
  const strategies = new StrategyHolder();
  const signer = new SignerHolder("kube cluster signing CA");
  const stop = new AbortController();
  const { log, lines } = memoryLogger("debug");
  /** How long each exec took, through kube-apiserver to the stand-in kubelet and back. */
  const execMillis: number[] = [];

  const podsPath = (ns: string) => `/api/v1/namespaces/${ns}/pods`;
  const deploymentPath = () => `/apis/apps/v1/namespaces/${namespace}/deployments/${agentName}`;

  /** The agent binary's `print` in a Running pod: the files its container's env names. */
  async function agentPrint({ namespace: ns, pod, container, command }: ExecRequest): Promise<ExecResult> {
    const p = await admin.request<Pod>({ method: "GET", path: `${podsPath(ns)}/${pod}` });
    if (p.status?.phase !== "Running") throw new Error(`pod ${ns}/${pod} is not running`);
    const c = p.spec?.containers?.find((x) => x.name === container);
    if (!c) throw new Error(`container ${container} not found in pod ${ns}/${pod}`);
    assert.deepEqual(command, ["pinniped-concierge-kube-cert-agent", "print"]);
    const env = new Map((c.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    const read = async (name: string) => (await readFile(env.get(name) ?? "")).toString("base64");
    return {
      stdout: JSON.stringify({ "tls.crt": await read("CERT_PATH"), "tls.key": await read("KEY_PATH") }),
    };
  }

  /** The production executor, timed. */
  function timed(executor: PodCommandExecutor): PodCommandExecutor {
    return {
      async exec(...args) {
        const began = performance.now();
        try {
          return await executor.exec(...args);
        } finally {
          execMillis.push(performance.now() - began);
        }
      },
    };
  }

  async function createControllerManager(name: string, ca: { cert: string; key: string }): Promise<void> {
    controllerManagers.push(name);
    await admin.request({
      method: "POST",
      path: podsPath("kube-system"),
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, labels: { component: "kube-controller-manager", [testLabel]: "true" } },
        spec: {
          // Like a kubeadm static pod's mirror: no ServiceAccount token volume to copy.
          automountServiceAccountToken: false,
          nodeName,
          tolerations: [
            { key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" },
          ],
          containers: [
            {
              name: "kube-controller-manager",
              // kubeadm's image for the release the control plane runs.
              image: `registry.k8s.io/kube-controller-manager:v${await selectedVersion()}`,
              command: [
                "kube-controller-manager",
                "--leader-elect=true",
                "--cluster-signing-cert-file",
                ca.cert,
              ],
              args: [`--cluster-signing-key-file=${ca.key}`, "--v=2"],
              volumeMounts: [{ name: "k8s-certs", mountPath: dirname(ca.cert), readOnly: true }],
            },
          ],
          volumes: [{ name: "k8s-certs", hostPath: { path: dirname(ca.cert), type: "DirectoryOrCreate" } }],
        },
      },
    });
    await markRunning("kube-system", name);
  }

  /** What a kubelet would report once the pod's containers started. */
  async function markRunning(ns: string, name: string): Promise<void> {
    await admin.request({
      method: "PATCH",
      path: `${podsPath(ns)}/${name}/status`,
      contentType: "application/merge-patch+json",
      body: { status: { phase: "Running" } },
    });
  }

  async function agentPods(): Promise<Pod[]> {
    const list = await admin.request<{ items: Pod[] }>({
      method: "GET",
      path: podsPath(namespace),
      query: { labelSelector: "kube-cert-agent.pinniped.dev=v3" },
    });
    return list.items;
  }

  const kca = (): Omit<StrategyUpdate, "type"> | undefined => {
    const found = strategies.get().find((s) => s.type === "KubeClusterSigningCertificate");
    if (!found) return undefined;
    const { type: _, ...rest } = found;
    return rest;
  };

  before(async () => {
    c = await testCluster();
    admin = new KubeRestClient(c.kubeConfig());
    namespace = await c.newNamespace("kube-cert-agent");
    nodeName = c.uniqueName("kca-node");
    const pkiDir = join(dirname(c.kubeconfigPath), "pki");
    clusterCA = { cert: join(pkiDir, "ca.crt"), key: join(pkiDir, "ca.key") };
    ecDir = await mkdtemp(join(tmpdir(), "kca-ec-"));
    ecCA = await newCA(ecDir, "ec-signer", "kube-cert-agent EC test CA", "ec");
    // Pods bound to a node that does not exist are deleted by kube-controller-manager's pod GC.
    await admin.request({
      method: "POST",
      path: "/api/v1/nodes",
      body: { apiVersion: "v1", kind: "Node", metadata: { name: nodeName, labels: { [testLabel]: "true" } } },
    });
    kubelet = await startKubeletStandIn({
      clientCAPEM: await readFile(clusterCA.cert, "utf8"),
      exec: agentPrint,
    });
    await registerNode(admin, nodeName, kubelet.port);
    // The ServiceAccount admission plugin refuses pods whose ServiceAccount does not exist.
    await admin.request({
      method: "POST",
      path: `/api/v1/namespaces/${namespace}/serviceaccounts`,
      body: { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: agentName } },
    });
    manager = managerFromKubeConfig(c.kubeConfig(), {
      identity: "kca-test",
      leaseNamespace: namespace,
      leaseName: "kube-cert-agent-test",
      log,
    });
    register(manager, {
      namespace,
      agentName,
      agentImage: "example.invalid/pinniped-concierge:test",
      labels: { app: "concierge", extra: "label" },
      strategyHolder: strategies,
      signerHolder: signer,
      executor: timed(websocketPodCommandExecutor(c.kubeConfig(), 20_000)),
    });
    running = manager.run(stop.signal);
  });

  after(async () => {
    stop.abort();
    await running;
    const ignoreMissing = (err: unknown) => {
      if (!isNotFound(err)) throw err;
    };
    const force = { gracePeriodSeconds: 0 };
    await admin.request({ method: "DELETE", path: deploymentPath() }).catch(ignoreMissing);
    await admin.request({ method: "DELETE", path: podsPath(namespace), query: force });
    for (const name of controllerManagers) {
      await admin
        .request({ method: "DELETE", path: `${podsPath("kube-system")}/${name}`, query: force })
        .catch(ignoreMissing);
    }
    await admin.request({ method: "DELETE", path: `/api/v1/namespaces/${namespace}` });
    await admin.request({ method: "DELETE", path: `/api/v1/nodes/${nodeName}` }).catch(ignoreMissing);
    await kubelet?.close();
    await rm(ecDir, { recursive: true, force: true });
  });

  it("with no kube-controller-manager pod, reports upstream's 0-candidates failure", async () => {
    const strategy = await eventually("the first strategy", kca, polling);
    assert.deepEqual(strategy, {
      status: "Error",
      reason: "CouldNotFetchKey",
      message:
        "could not find a healthy kube-controller-manager pod (0 candidates): note that this error is the expected behavior for some cluster types, including most cloud provider clusters (e.g. GKE, AKS, EKS)",
    });
  });

  it("creates the agent Deployment on the (test-played) KCM pod's node, with its tolerations and volumes", async () => {
    const kcmName = c.uniqueName("kube-controller-manager-1");
    await createControllerManager(kcmName, clusterCA);
    const kcm = await admin.request<Pod>({ method: "GET", path: `${podsPath("kube-system")}/${kcmName}` });
    const deployment = await eventually(
      "the agent Deployment",
      async () => {
        try {
          return await admin.request<Deployment>({ method: "GET", path: deploymentPath() });
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw err;
        }
      },
      polling,
    );
    assert.deepEqual(deployment.metadata?.labels, { app: "concierge", extra: "label" });
    assert.deepEqual(deployment.spec?.selector, { matchLabels: { "kube-cert-agent.pinniped.dev": "v3" } });
    assert.deepEqual(deployment.spec?.template?.metadata?.labels, {
      "kube-cert-agent.pinniped.dev": "v3",
      extra: "label",
    });
    const spec = deployment.spec?.template?.spec;
    assert.equal(spec?.nodeName, nodeName);
    // Copied as the API server stored them, with the not-ready/unreachable ones its admission added.
    assert.deepEqual(spec?.tolerations, kcm.spec?.tolerations);
    assert.deepEqual(spec?.tolerations?.[0], {
      key: "node-role.kubernetes.io/control-plane",
      operator: "Exists",
      effect: "NoSchedule",
    });
    assert.deepEqual(spec?.volumes, [
      { name: "k8s-certs", hostPath: { path: dirname(clusterCA.cert), type: "DirectoryOrCreate" } },
    ]);
    assert.equal(spec?.serviceAccountName, agentName);
    assert.equal(spec?.automountServiceAccountToken, false);
    const container = spec?.containers?.[0];
    assert.equal(container?.name, "sleeper");
    assert.equal(container?.image, "example.invalid/pinniped-concierge:test");
    assert.deepEqual(container?.command, ["pinniped-concierge-kube-cert-agent", "sleep"]);
    assert.deepEqual(container?.env, [
      { name: "CERT_PATH", value: clusterCA.cert },
      { name: "KEY_PATH", value: clusterCA.key },
    ]);
    assert.deepEqual(container?.volumeMounts, [
      { name: "k8s-certs", mountPath: dirname(clusterCA.cert), readOnly: true },
    ]);
    assert.deepEqual(container?.resources, {
      limits: { cpu: "20m", memory: "32Mi" },
      requests: { cpu: "0", memory: "32Mi" },
    });
  });

  it("until the (test-played) node runs the agent pod, reports no healthy agent pod", async () => {
    const strategy = await eventually(
      "the agent pod wait",
      () => {
        const s = kca();
        return s?.message.startsWith("could not find a healthy agent pod") ? s : undefined;
      },
      polling,
    );
    assert.equal(strategy.reason, "CouldNotFetchKey");
  });

  it("once the node marks the agent pod Running: execs print via kube-apiserver to the (test-played) kubelet, loads the cluster CA, reports FetchedKey", async (t) => {
    const [pod] = await eventually(
      "the agent pod from the ReplicaSet",
      async () => {
        const pods = await agentPods();
        return pods.length > 0 ? pods : undefined;
      },
      polling,
    );
    assert.equal(pod?.spec?.nodeName, nodeName);
    await markRunning(namespace, pod!.metadata!.name!);

    const clusterInfo = await admin.request<ConfigMap>({
      method: "GET",
      path: `/api/v1/namespaces/${clusterInfoNamespace}/configmaps/${clusterInfoName}`,
    });
    const frontend = tokenCredentialRequestFrontend(clusterInfo);
    assert.ok(frontend.ok);
    const strategy = await eventually(
      "FetchedKey",
      () => (kca()?.reason === "FetchedKey" ? kca() : undefined),
      polling,
    );
    assert.deepEqual(strategy, {
      status: "Success",
      reason: "FetchedKey",
      message: "key was fetched successfully",
      frontend: frontend.frontend,
    });
    assert.equal(pem(signer.get()?.certPEM ?? ""), pem(await readFile(clusterCA.cert, "utf8")));
    assert.deepEqual(kubelet.execs.at(-1), {
      namespace,
      pod: pod!.metadata!.name,
      container: "sleeper",
      command: ["pinniped-concierge-kube-cert-agent", "print"],
    });
    assert.deepEqual(kubelet.rejected, []);
    t.diagnostic(
      `exec through kube-apiserver to the stand-in kubelet: ${execMillis.map(Math.round).join(", ")} ms`,
    );
  });

  it("follows a newer (test-played) KCM pod to an EC signing CA: updates the Deployment, loads the EC key via the (test-played) kubelet", async (t) => {
    // creationTimestamp has a resolution of one second; the newer pod must be newer.
    await sleep(1100);
    const before = new Set((await agentPods()).map((p) => p.metadata?.name));
    await createControllerManager(c.uniqueName("kube-controller-manager-2"), ecCA);
    const updated = await eventually(
      "the Deployment to follow the new KCM pod",
      async () => {
        const d = await admin.request<Deployment>({ method: "GET", path: deploymentPath() });
        const env = d.spec?.template?.spec?.containers?.[0]?.env as { value: string }[] | undefined;
        return env?.[0]?.value === ecCA.cert ? d : undefined;
      },
      polling,
    );
    assert.deepEqual(updated.spec?.template?.spec?.volumes, [
      { name: "k8s-certs", hostPath: { path: dirname(ecCA.cert), type: "DirectoryOrCreate" } },
    ]);
    const fresh = await eventually(
      "the rolled-out agent pod",
      async () => (await agentPods()).find((p) => !before.has(p.metadata?.name)),
      polling,
    );
    await markRunning(namespace, fresh.metadata!.name!);
    await eventually(
      "the EC CA in the signer",
      async () =>
        pem(signer.get()?.certPEM ?? "") === pem(await readFile(ecCA.cert, "utf8")) ? true : undefined,
      polling,
    );
    assert.equal(signer.get()?.certificate.publicKey.asymmetricKeyType, "ec");
    assert.equal(kca()?.reason, "FetchedKey");
    assert.deepEqual(kubelet.execs.at(-1), {
      namespace,
      pod: fresh.metadata!.name,
      container: "sleeper",
      command: ["pinniped-concierge-kube-cert-agent", "print"],
    });
    assert.deepEqual(kubelet.rejected, []);
    t.diagnostic(`execs through kube-apiserver so far: ${execMillis.map(Math.round).join(", ")} ms`);
  });

  it("wrote the Deployment once per real change: the API server's defaults cause no updates", async () => {
    // Several syncs ran since (agent pod and KCM pod events); give any stray one time to land.
    await sleep(500);
    // Count writes that landed, not attempts: a sync that ran on a cache not yet showing our own
    // update sends the cached resourceVersion and is refused with a conflict, which is harmless.
    // The generation moves once per spec change: created (1), then the EC update (2); a
    // recreation would have started again at 1.
    const d = await admin.request<Deployment>({ method: "GET", path: deploymentPath() });
    assert.equal(d.metadata?.generation, 2);
  });

  it("with the (test-played) KCM pods gone, reports upstream's failure and keeps serving the loaded key", async () => {
    const loaded = signer.get();
    for (const name of controllerManagers) {
      await admin.request({
        method: "DELETE",
        path: `${podsPath("kube-system")}/${name}`,
        query: { gracePeriodSeconds: 0 },
      });
    }
    const strategy = await eventually(
      "the 0-candidates failure",
      () => {
        const s = kca();
        return s?.message.includes("(0 candidates)") ? s : undefined;
      },
      polling,
    );
    assert.equal(strategy.reason, "CouldNotFetchKey");
    assert.equal(signer.get(), loaded);
  });

  it("never logs a private key", async () => {
    const logged = JSON.stringify(lines);
    assert.equal(logged.includes("PRIVATE KEY"), false);
    for (const file of [clusterCA.key, ecCA.key]) {
      const key = (await readFile(file)).toString("base64");
      assert.equal(logged.includes(key.slice(0, 64)), false);
    }
  });
});
