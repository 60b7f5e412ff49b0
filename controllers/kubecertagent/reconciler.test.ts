import assert from "node:assert/strict";
import { afterEach, before, describe, it } from "node:test";
import { SignerHolder } from "../../certs/signer.ts";
import { generateKey, keyPEM, selfSignedCertificate } from "../../certs/testing.ts";
import { FakeClock, settle } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { StrategyHolder } from "../credentialissuer/holder.ts";
import type { StrategyUpdate } from "../credentialissuer/merge.ts";
import { Controller, type ControllerOptions, type SyncContext } from "../runtime/controller.ts";
import { NotLeaderError } from "../runtime/leaderelection.ts";
import { apiStatusError, eventually, FakeInformer, FakeRestClient } from "../runtime/testing.ts";
import { type Deployment, newAgentDeployment, type Pod } from "./agent.ts";
import type { ExecOutput, PodCommandExecutor } from "./executor.ts";
import {
  type ConfigMap,
  execCacheTTLMs,
  type KubeCertAgentDeps,
  kubeCertAgentController,
} from "./reconciler.ts";

const now = Date.UTC(2021, 3, 13, 9, 57);
const ago = (hours: number) => new Date(now - hours * 3_600_000).toISOString();
const namespace = "concierge";
const deploymentsPath = "/apis/apps/v1/namespaces/concierge/deployments";

const controllerManager: Pod = {
  metadata: {
    namespace: "kube-system",
    name: "kube-controller-manager-1",
    labels: { component: "kube-controller-manager" },
    creationTimestamp: ago(1),
  },
  spec: {
    containers: [
      {
        name: "kube-controller-manager",
        command: [
          "kube-controller-manager",
          "--cluster-signing-cert-file",
          "/path/to/signing.crt",
          "--cluster-signing-key-file=/path/to/signing.key",
        ],
        volumeMounts: [{ name: "test-volume", readOnly: true, mountPath: "/path" }],
      },
    ],
    volumes: [{ name: "test-volume", hostPath: { path: "/host/path" } }],
    nodeName: "schedulable-node-name-1",
    tolerations: [{ key: "some-toleration-key" }],
  },
  status: { phase: "Running" },
};

const agentPod: Pod = {
  metadata: {
    namespace,
    name: "pinniped-concierge-kube-cert-agent-xyz-1234",
    uid: "pinniped-concierge-kube-cert-agent-xyz-1234-test-uid",
    labels: { "kube-cert-agent.pinniped.dev": "v3" },
    creationTimestamp: ago(2),
  },
  spec: {},
  status: { phase: "Running" },
};

const clusterInfo: ConfigMap = {
  metadata: { namespace: "kube-public", name: "cluster-info" },
  data: {
    kubeconfig: [
      "kind: Config",
      "apiVersion: v1",
      "clusters:",
      '- name: ""',
      "  cluster:",
      "    certificate-authority-data: dGVzdC1rdWJlcm5ldGVzLWNh",
      "    server: https://test-kubernetes-endpoint.example.com",
    ].join("\n"),
  },
};

const fetchedKey: Omit<StrategyUpdate, "type"> = {
  status: "Success",
  reason: "FetchedKey",
  message: "key was fetched successfully",
  frontend: {
    type: "TokenCredentialRequestAPI",
    tokenCredentialRequestInfo: {
      server: "https://test-kubernetes-endpoint.example.com",
      certificateAuthorityData: "dGVzdC1rdWJlcm5ldGVzLWNh",
    },
  },
};

const couldNotFetchKey = (message: string): Omit<StrategyUpdate, "type"> => ({
  status: "Error",
  reason: "CouldNotFetchKey",
  message,
});

interface TestCA {
  certPEM: string;
  keyPEM: string;
}
let rsaCA: TestCA;
let ecCA: TestCA;
let notCA: TestCA;
const printOutput = (ca: TestCA) =>
  JSON.stringify({
    "tls.crt": Buffer.from(ca.certPEM).toString("base64"),
    "tls.key": Buffer.from(ca.keyPEM).toString("base64"),
  });

before(async () => {
  const rsa = generateKey("rsa-2048");
  rsaCA = { certPEM: await selfSignedCertificate(rsa), keyPEM: keyPEM(rsa, "pkcs1") };
  const ec = generateKey("ec-p256");
  ecCA = { certPEM: await selfSignedCertificate(ec), keyPEM: keyPEM(ec, "sec1") };
  const leaf = generateKey("ec-p256");
  notCA = { certPEM: await selfSignedCertificate(leaf, { isCA: false }), keyPEM: keyPEM(leaf, "pkcs8") };
});

/** An executor whose answer a test sets; it records every call. */
class FakeExecutor implements PodCommandExecutor {
  readonly calls: { namespace: string; pod: string; container: string; command: readonly string[] }[] = [];
  answer: () => Promise<ExecOutput> = async () => ({ stdout: printOutput(rsaCA), stderr: "" });
  exec(namespace: string, pod: string, container: string, command: readonly string[]): Promise<ExecOutput> {
    this.calls.push({ namespace, pod, container, command });
    return this.answer();
  }
}

const stops: AbortController[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop.abort();
  await settle();
});

function fixture(
  objects: { kube?: Pod[]; deployments?: Deployment[]; agents?: Pod[]; configMaps?: ConfigMap[] } = {},
  extra: Partial<KubeCertAgentDeps> = {},
) {
  const clock = new FakeClock(now);
  const { log, lines } = memoryLogger();
  const kube = new FakeInformer<Pod>({ objects: objects.kube ?? [] });
  const deployments = new FakeInformer<Deployment>({ objects: objects.deployments ?? [] });
  const agents = new FakeInformer<Pod>({ objects: objects.agents ?? [] });
  const configMaps = new FakeInformer<ConfigMap>({ objects: objects.configMaps ?? [clusterInfo] });
  const rest = new FakeRestClient();
  const strategies = new StrategyHolder();
  const signer = new SignerHolder("kube cluster signing CA");
  const executor = new FakeExecutor();
  let options: Omit<ControllerOptions, "clock" | "log" | "metrics"> | undefined;
  const controller = kubeCertAgentController(
    {
      controllerManagerPods: kube,
      agentDeployments: deployments,
      agentPods: agents,
      clusterInfo: configMaps,
      client: rest,
      clock,
      controller: (o) => {
        options = o;
        return new Controller({ ...o, clock, log });
      },
    },
    {
      namespace,
      agentName: "pinniped-concierge-kube-cert-agent",
      agentImage: "pinniped-server-image",
      serviceAccountName: "test-service-account-name",
      labels: { extralabel: "labelvalue", app: "anything" },
      strategyHolder: strategies,
      signerHolder: signer,
      executor,
      ...extra,
    },
  );
  const stop = new AbortController();
  stops.push(stop);
  const queue = { add() {}, addAfter() {} } as unknown as SyncContext["queue"];
  return {
    clock,
    lines,
    kube,
    deployments,
    agents,
    rest,
    strategies,
    signer,
    executor,
    controller,
    stop,
    /** One sync, as upstream's TestSync drives it. */
    sync: async () => options!.sync({ key: "kube-cert-agent", signal: stop.signal, log, queue }),
    strategy: () => {
      const [s, ...rest] = strategies.get();
      assert.equal(rest.length, 0);
      if (!s) return undefined;
      const { type, ...without } = s;
      assert.equal(type, "KubeClusterSigningCertificate");
      return without;
    },
  };
}

/** What the desired Deployment looks like once the API server has it. */
function existingAgentDeployment(): Deployment {
  const d = newAgentDeployment(controllerManager, {
    namespace,
    agentName: "pinniped-concierge-kube-cert-agent",
    image: "pinniped-server-image",
    serviceAccountName: "test-service-account-name",
    labels: { extralabel: "labelvalue", app: "anything" },
  });
  d.metadata = { ...d.metadata, uid: "fake-uid-abc123", resourceVersion: "fake-resource-version-1234" };
  return d;
}

const healthy = () => ({
  kube: [controllerManager],
  deployments: [existingAgentDeployment()],
  agents: [agentPod],
});

describe("kube-cert-agent reconciler", () => {
  it("no kube-controller-manager pods: upstream's 0-candidates failure, nothing written", async () => {
    const kubeProxy: Pod = {
      metadata: { namespace: "kube-system", name: "kube-proxy" },
      status: { phase: "Running" },
    };
    const f = fixture({ kube: [kubeProxy] });
    const message =
      "could not find a healthy kube-controller-manager pod (0 candidates): note that this error is the expected behavior for some cluster types, including most cloud provider clusters (e.g. GKE, AKS, EKS)";
    await assert.rejects(f.sync(), { message });
    assert.deepEqual(f.strategy(), couldNotFetchKey(message));
    assert.deepEqual(f.rest.requests, []);
    assert.equal(f.signer.get(), undefined);
  });

  it("only unhealthy kube-controller-manager pods: counts the candidates", async () => {
    const pending = { ...structuredClone(controllerManager), status: { phase: "Pending" } };
    const unknown = structuredClone(pending);
    unknown.metadata!.name = "kube-controller-manager-2";
    unknown.status = { phase: "Unknown" };
    const f = fixture({ kube: [pending, unknown] });
    await assert.rejects(f.sync());
    assert.deepEqual(
      f.strategy(),
      couldNotFetchKey("could not find a healthy kube-controller-manager pod (2 candidates)"),
    );
  });

  it("failed to create the deployment: reports it", async () => {
    const f = fixture({ kube: [controllerManager] });
    f.rest.react((r) => {
      if (r.method === "POST") throw apiStatusError(500, "InternalError", "some creation error");
      return undefined;
    });
    await assert.rejects(f.sync(), { message: "could not ensure agent deployment: some creation error" });
    assert.deepEqual(
      f.strategy(),
      couldNotFetchKey("could not ensure agent deployment: some creation error"),
    );
  });

  it("creates the deployment from the newest KCM on a schedulable node; no agent pod running yet", async () => {
    const newer = structuredClone(controllerManager);
    newer.metadata = { ...newer.metadata, name: "kube-controller-manager-new", creationTimestamp: ago(0.5) };
    newer.spec!.nodeName = "cordoned-node";
    const pendingAgent = { ...structuredClone(agentPod), status: { phase: "Pending" } };
    const f = fixture({ kube: [newer, controllerManager], agents: [pendingAgent] });
    f.rest.react((r) =>
      r.path === "/api/v1/nodes"
        ? {
            items: [
              { metadata: { name: "schedulable-node-name-1" }, spec: {} },
              { metadata: { name: "cordoned-node" }, spec: { unschedulable: true } },
            ],
          }
        : undefined,
    );
    await assert.rejects(f.sync(), { message: "could not find a healthy agent pod (1 candidate)" });
    assert.deepEqual(f.strategy(), couldNotFetchKey("could not find a healthy agent pod (1 candidate)"));
    const [list, create] = f.rest.requests;
    assert.equal(list?.method, "GET");
    assert.equal(create?.method, "POST");
    assert.equal(create?.path, deploymentsPath);
    const { uid: _u, resourceVersion: _r, ...metadata } = existingAgentDeployment().metadata!;
    assert.deepEqual(create?.json, { ...existingAgentDeployment(), metadata });
    assert.equal(
      f.lines.some((l) => l.message === "creating new deployment"),
      true,
    );
  });

  it("a node list failure is upstream's lookup error", async () => {
    const second = structuredClone(controllerManager);
    second.metadata!.name = "kube-controller-manager-2";
    const f = fixture({ kube: [controllerManager, second] });
    f.rest.react(() => {
      throw apiStatusError(403, "Forbidden", "nodes is forbidden");
    });
    await assert.rejects(f.sync());
    assert.deepEqual(
      f.strategy(),
      couldNotFetchKey("error while looking for controller manager pod: nodes is forbidden"),
    );
  });

  it("success with an RSA CA: loads the signer and publishes FetchedKey with cluster-info's frontend", async () => {
    const f = fixture(healthy());
    const result = await f.sync();
    assert.deepEqual(result, { requeueAfterMs: 180_000 });
    assert.deepEqual(f.rest.requests, [], "the existing Deployment is left alone");
    assert.deepEqual(f.executor.calls, [
      {
        namespace,
        pod: "pinniped-concierge-kube-cert-agent-xyz-1234",
        container: "sleeper",
        command: ["pinniped-concierge-kube-cert-agent", "print"],
      },
    ]);
    assert.equal(f.signer.get()?.certPEM.trim(), rsaCA.certPEM.trim());
    assert.deepEqual(f.strategy(), fetchedKey);
  });

  it("success with an EC CA", async () => {
    const f = fixture(healthy());
    f.executor.answer = async () => ({ stdout: printOutput(ecCA), stderr: "" });
    await f.sync();
    assert.equal(f.signer.get()?.certificate.publicKey.asymmetricKeyType, "ec");
    assert.deepEqual(f.strategy(), fetchedKey);
  });

  it("discovery URL override replaces only the server", async () => {
    const f = fixture(healthy(), { discoveryURLOverride: "https://overridden.example.com" });
    await f.sync();
    assert.deepEqual(f.strategy()?.frontend, {
      type: "TokenCredentialRequestAPI",
      tokenCredentialRequestInfo: {
        server: "https://overridden.example.com",
        certificateAuthorityData: "dGVzdC1rdWJlcm5ldGVzLWNh",
      },
    });
  });

  it("missing cluster-info: CouldNotGetClusterInfo, and no exec", async () => {
    const f = fixture({ ...healthy(), configMaps: [] });
    await assert.rejects(f.sync());
    assert.deepEqual(f.strategy(), {
      status: "Error",
      reason: "CouldNotGetClusterInfo",
      message: 'failed to get kube-public/cluster-info configmap: configmap "cluster-info" not found',
    });
    assert.equal(f.executor.calls.length, 0);
  });

  it("exec failure: upstream's message", async () => {
    const f = fixture(healthy());
    f.executor.answer = async () => {
      throw new Error("some exec error");
    };
    await assert.rejects(f.sync());
    assert.deepEqual(
      f.strategy(),
      couldNotFetchKey(
        "could not exec into agent pod concierge/pinniped-concierge-kube-cert-agent-xyz-1234: some exec error",
      ),
    );
  });

  const badOutputs: [string, string, string][] = [
    [
      "invalid JSON",
      "bogus",
      "failed to decode signing cert/key JSON from agent pod concierge/pinniped-concierge-kube-cert-agent-xyz-1234: invalid JSON",
    ],
    [
      "bad cert base64",
      '{"tls.crt": "%%%", "tls.key": ""}',
      "failed to decode signing cert base64 from agent pod concierge/pinniped-concierge-kube-cert-agent-xyz-1234",
    ],
    [
      "bad key base64",
      '{"tls.crt": "", "tls.key": "%%%"}',
      "failed to decode signing key base64 from agent pod concierge/pinniped-concierge-kube-cert-agent-xyz-1234",
    ],
    [
      "not a cert",
      '{"tls.crt": "dGVzdC1jZXJ0", "tls.key": "dGVzdC1rZXk="}',
      "failed to set signing cert/key content from agent pod concierge/pinniped-concierge-kube-cert-agent-xyz-1234: could not load CA: tls: failed to find any PEM data in certificate input",
    ],
  ];
  for (const [name, stdout, message] of badOutputs) {
    it(`bad print output (${name}): CouldNotFetchKey`, async () => {
      const f = fixture(healthy());
      f.executor.answer = async () => ({ stdout, stderr: "" });
      await assert.rejects(f.sync(), { message });
      assert.deepEqual(f.strategy(), couldNotFetchKey(message));
      assert.equal(f.signer.get(), undefined);
    });
  }

  it("a pair that is not a CA is refused", async () => {
    const f = fixture(healthy());
    f.executor.answer = async () => ({ stdout: printOutput(notCA), stderr: "" });
    await assert.rejects(f.sync());
    assert.deepEqual(
      f.strategy(),
      couldNotFetchKey(
        "failed to set signing cert/key content from agent pod concierge/pinniped-concierge-kube-cert-agent-xyz-1234: invalid CA certificate: passed in key pair is not a CA",
      ),
    );
  });

  it("memoises the exec per agent pod UID for 15 minutes", async () => {
    const f = fixture(healthy());
    await f.sync();
    await f.sync();
    assert.equal(f.executor.calls.length, 1, "cached");
    f.clock.step(execCacheTTLMs - 1);
    await f.sync();
    assert.equal(f.executor.calls.length, 1, "still cached just before 15 minutes");
    f.clock.step(1);
    await f.sync();
    assert.equal(f.executor.calls.length, 2, "expired");
    // A newer agent pod (another UID) is read at once.
    f.agents.upsert({
      ...structuredClone(agentPod),
      metadata: { ...agentPod.metadata, name: "newer", uid: "newer-uid", creationTimestamp: ago(0) },
    });
    await f.sync();
    assert.equal(f.executor.calls.at(-1)?.pod, "newer");
  });

  it("keeps serving the loaded key when a later exec fails, and does not cache failures", async () => {
    const f = fixture(healthy());
    await f.sync();
    const loaded = f.signer.get();
    f.clock.step(execCacheTTLMs);
    f.executor.answer = async () => {
      throw new Error("boom");
    };
    await assert.rejects(f.sync());
    assert.equal(f.signer.get(), loaded);
    assert.equal(f.strategy()?.status, "Error");
    await assert.rejects(f.sync());
    assert.equal(f.executor.calls.length, 3);
  });

  it("a deployment error still loads the key, then reports the deployment error", async () => {
    const stale = existingAgentDeployment();
    stale.spec!.template!.spec!.containers![0]!.image = "old-image";
    const f = fixture({ ...healthy(), deployments: [stale] });
    f.rest.react((r) => {
      if (r.method === "PUT") throw apiStatusError(409, "Conflict", "some update error");
      return undefined;
    });
    await assert.rejects(f.sync(), { message: "could not ensure agent deployment: some update error" });
    assert.ok(f.signer.get());
    assert.deepEqual(f.strategy(), couldNotFetchKey("could not ensure agent deployment: some update error"));
    assert.equal(f.rest.requests[0]?.path, `${deploymentsPath}/pinniped-concierge-kube-cert-agent`);
    assert.equal(
      (f.rest.requests[0]!.json as Deployment).metadata?.resourceVersion,
      "fake-resource-version-1234",
    );
  });

  it("recreates a deployment with an old selector: delete with UID and resourceVersion preconditions, then create", async () => {
    const oldStyle = { app: "concierge", extralabel: "labelvalue", "kube-cert-agent.pinniped.dev": "v2" };
    const old = existingAgentDeployment();
    old.spec!.selector = { matchLabels: oldStyle };
    old.spec!.template!.metadata!.labels = oldStyle;
    const f = fixture({ ...healthy(), deployments: [old] });
    await f.sync();
    assert.deepEqual(
      f.rest.requests.map((r) => [r.method, r.path]),
      [
        ["DELETE", `${deploymentsPath}/pinniped-concierge-kube-cert-agent`],
        ["POST", deploymentsPath],
      ],
    );
    assert.deepEqual((f.rest.requests[0]!.json as { preconditions: unknown }).preconditions, {
      uid: "fake-uid-abc123",
      resourceVersion: "fake-resource-version-1234",
    });
  });

  it("on a follower that would have to write: loads the key, publishes nothing, and is retried as not-leader", async () => {
    const f = fixture({ kube: [controllerManager], agents: [agentPod] });
    f.rest.react((r) => {
      if (r.method !== "GET") throw new NotLeaderError();
      return undefined;
    });
    await assert.rejects(f.sync(), NotLeaderError);
    assert.ok(f.signer.get());
    assert.equal(f.strategy(), undefined);
  });

  it("never logs the private key", async () => {
    const f = fixture(healthy());
    await f.sync();
    const logged = JSON.stringify(f.lines);
    assert.equal(logged.includes("PRIVATE KEY"), false);
    assert.equal(logged.includes(Buffer.from(rsaCA.keyPEM).toString("base64").slice(0, 40)), false);
  });

  it("runs on start and again when a watched object changes", async () => {
    const f = fixture({ kube: [controllerManager], deployments: [existingAgentDeployment()] });
    const running = f.controller.run(f.stop.signal);
    await eventually(() => f.strategy()?.message === "could not find a healthy agent pod (0 candidates)");
    f.agents.upsert(agentPod);
    await eventually(() => f.strategy()?.reason === "FetchedKey");
    f.stop.abort();
    await running;
  });
});
