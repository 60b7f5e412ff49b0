// The impersonator-config reconciler in-process against a real kube-apiserver, with a fake
// ProxyRunner that records starts and stops. Nodes are cluster-scoped and this test creates and
// deletes them, so it runs its own control plane instead of the shared one.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SignerHolder } from "../../certs/signer.ts";
import { StrategyHolder } from "../../controllers/credentialissuer/holder.ts";
import { register } from "../../controllers/impersonatorconfig/reconciler.ts";
import { rotateAnnotation } from "../../controllers/impersonatorconfig/rotation.ts";
import type { Manager } from "../../controllers/runtime/manager.ts";
import { managerFromKubeConfig } from "../../controllers/runtime/manager.ts";
import type { ControlPlane } from "../../hack/controlplane.ts";
import { ProxyCredentials } from "../../impersonator/credentials.ts";
import type { ProxyRunner } from "../../impersonator/types.ts";
import { isNotFound, KubeRestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { runKubectl, startTestControlPlane } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";

const ciPath = "/apis/config.concierge.pinniped.dev/v1alpha1/credentialissuers";
const ciName = "pinniped-concierge-config";
const names = {
  loadBalancerService: "pinniped-concierge-impersonation-proxy-load-balancer",
  clusterIPService: "pinniped-concierge-impersonation-proxy-cluster-ip",
  tlsSecret: "pinniped-concierge-impersonation-proxy-tls-serving-certificate",
  caSecret: "pinniped-concierge-impersonation-proxy-ca-certificate",
  signerSecret: "pinniped-concierge-impersonation-proxy-signer-ca-certificate",
};

// How long and how often this file waited before eventually was shared: its tests keep that timing.
const polling = { timeoutMs: 15_000, intervalMs: 20 };

class FakeRunner implements ProxyRunner {
  running = false;
  readonly events: string[] = [];
  async start() {
    if (!this.running) this.events.push("start");
    this.running = true;
  }
  async stop() {
    if (this.running) this.events.push("stop");
    this.running = false;
  }
}

type Obj = {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown> & { clusterIP?: string };
  data?: Record<string, string>;
};

describe("impersonator-config reconciler against the real API server", () => {
  let cp: ControlPlane;
  let admin: KubeRestClient;
  const namespace = "concierge";
  const runner = new FakeRunner();
  const strategies = new StrategyHolder();
  const signer = new SignerHolder("impersonation proxy signer");
  const credentials = new ProxyCredentials();
  let manager: Manager;
  let running: Promise<void>;
  let stop: AbortController;
  const { log } = memoryLogger("debug");

  const get = (path: string) => admin.request<Obj>({ method: "GET", path });
  const svc = (name: string) => get(`/api/v1/namespaces/${namespace}/services/${name}`);
  const secret = (name: string) => get(`/api/v1/namespaces/${namespace}/secrets/${name}`);
  const gone = async (read: () => Promise<unknown>) => {
    try {
      await read();
      return false;
    } catch (err) {
      return isNotFound(err);
    }
  };
  const kubectl = (args: string[]) => runKubectl(cp.binDir, cp.kubeconfigPath, args);
  const strategy = () => strategies.get().find((s) => s.type === "ImpersonationProxy");
  const patchSpec = (impersonationProxy: Record<string, unknown>) =>
    admin.request({
      method: "PATCH",
      path: `${ciPath}/${ciName}`,
      contentType: "application/merge-patch+json",
      body: { spec: { impersonationProxy } },
    });
  const node = (name: string, labels: Record<string, string> = {}) =>
    admin.request({
      method: "POST",
      path: "/api/v1/nodes",
      body: { apiVersion: "v1", kind: "Node", metadata: { name, labels } },
    });

  function start() {
    stop = new AbortController();
    manager = managerFromKubeConfig(cp.kubeConfig(), {
      identity: "impersonatorconfig-test",
      leaseNamespace: namespace,
      leaseName: "impersonatorconfig",
      leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 500 },
      log,
    });
    register(manager, {
      namespace,
      credentialIssuerName: ciName,
      names,
      labels: { app: "pinniped-concierge" },
      appLabel: "pinniped-concierge",
      proxyPort: 8444,
      runner,
      strategyHolder: strategies,
      signerHolder: signer,
      credentials,
    });
    running = manager.run(stop.signal);
  }

  before(async () => {
    cp = await startTestControlPlane("impersonatorconfig");
    admin = new KubeRestClient(cp.kubeConfig());
    await admin.request({
      method: "POST",
      path: "/api/v1/namespaces",
      body: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } },
    });
    await admin.request({
      method: "POST",
      path: ciPath,
      body: {
        apiVersion: "config.concierge.pinniped.dev/v1alpha1",
        kind: "CredentialIssuer",
        metadata: { name: ciName },
        spec: {
          impersonationProxy: { mode: "auto", service: { type: "LoadBalancer", annotations: { a: "1" } } },
        },
      },
    });
    await node("worker-1");
    start();
  });

  after(async () => {
    stop?.abort();
    await running;
    await cp?.stop();
  });

  let caCrt: string;

  it("runs in auto mode without control-plane nodes, and waits for the load balancer", async () => {
    await eventually("the proxy started", () => runner.running, polling);
    const lb = await eventually("the LB Service", () => svc(names.loadBalancerService), polling);
    assert.equal(lb.metadata.annotations?.a, "1");
    assert.equal(lb.metadata.labels?.app, "pinniped-concierge");
    assert.deepEqual(lb.spec?.selector, { app: "pinniped-concierge" });
    await eventually("Pending", () => strategy()?.reason === "Pending", polling);
    assert.ok(signer.get(), "the signer is loaded while running");
    assert.equal(credentials.get().serving, undefined);
  });

  it("goes Listening once the cloud assigns an ingress IP, with the generated CA", async () => {
    await admin.request({
      method: "PATCH",
      path: `/api/v1/namespaces/${namespace}/services/${names.loadBalancerService}/status`,
      contentType: "application/merge-patch+json",
      body: { status: { loadBalancer: { ingress: [{ ip: "203.0.113.10" }] } } },
    });
    const s = await eventually(
      "Listening",
      () => (strategy()?.reason === "Listening" ? strategy() : undefined),
      polling,
    );
    caCrt = (await secret(names.caSecret)).data?.["ca.crt"] ?? "";
    assert.deepEqual(s.frontend, {
      type: "ImpersonationProxy",
      impersonationProxyInfo: { endpoint: "https://203.0.113.10", certificateAuthorityData: caCrt },
    });
    const tls = await secret(names.tlsSecret);
    assert.ok(tls.data?.["tls.crt"]);
    assert.equal(credentials.get().signerCAPEMs.length, 1);
    assert.ok(credentials.get().serving?.certPEM.includes("BEGIN CERTIFICATE"));
  });

  it("keeps labels and annotations others put on the Service", async () => {
    assert.equal(
      (await kubectl(["-n", namespace, "label", "svc", names.loadBalancerService, "gitops=yes"])).code,
      0,
    );
    assert.equal(
      (await kubectl(["-n", namespace, "annotate", "svc", names.loadBalancerService, "cloud.example/x=kept"]))
        .code,
      0,
    );
    // A merge patch: `a: null` removes the key from the spec.
    await patchSpec({ service: { type: "LoadBalancer", annotations: { a: null, b: "2" } } });
    const lb = await eventually(
      "the new annotation",
      async () => {
        const s = await svc(names.loadBalancerService);
        return s.metadata.annotations?.b === "2" ? s : undefined;
      },
      polling,
    );
    assert.equal(lb.metadata.annotations?.a, undefined, "a key removed from the spec is removed");
    assert.equal(lb.metadata.annotations?.["cloud.example/x"], "kept");
    assert.equal(lb.metadata.labels?.gitops, "yes");
  });

  it("turns off when a control-plane node appears and on when it goes", async () => {
    await node("cp-1", { "node-role.kubernetes.io/control-plane": "" });
    await eventually("stopped", () => !runner.running, polling);
    await eventually(
      "Disabled",
      () => strategy()?.message === "automatically determined that impersonation proxy should be disabled",
      polling,
    );
    await eventually("LB deleted", () => gone(() => svc(names.loadBalancerService)), polling);
    await eventually("TLS Secret deleted", () => gone(() => secret(names.tlsSecret)), polling);
    assert.equal((await secret(names.caSecret)).data?.["ca.crt"], caCrt, "the CA Secret is kept");
    assert.equal(signer.get(), undefined);
    await admin.request({ method: "DELETE", path: "/api/v1/nodes/cp-1" });
    await eventually("running again", () => runner.running, polling);
    await eventually("LB again", () => svc(names.loadBalancerService), polling);
    assert.deepEqual(runner.events.slice(-3), ["start", "stop", "start"]);
  });

  it("serves a ClusterIP Service in ClusterIP mode", async () => {
    await patchSpec({ service: { type: "ClusterIP" } });
    const cip = await eventually("ClusterIP Service", () => svc(names.clusterIPService), polling);
    await eventually("LB deleted", () => gone(() => svc(names.loadBalancerService)), polling);
    await eventually(
      "Listening on the cluster IP",
      () => strategy()?.frontend?.impersonationProxyInfo?.endpoint === `https://${cip.spec?.clusterIP}`,
      polling,
    );
  });

  it("keeps the old CA in the bundle after a rotation asked by annotation", async () => {
    assert.equal(
      (await kubectl(["-n", namespace, "annotate", "secret", names.caSecret, `${rotateAnnotation}=1`])).code,
      0,
    );
    const rotated = await eventually(
      "rotated",
      async () => {
        const s = await secret(names.caSecret);
        return s.data?.["previous-ca.crt"] ? s : undefined;
      },
      polling,
    );
    assert.equal(rotated.data?.["previous-ca.crt"], caCrt);
    const newCA = Buffer.from(rotated.data?.["ca.crt"] ?? "", "base64").toString();
    const oldCA = Buffer.from(caCrt, "base64").toString();
    await eventually(
      "the bundle has both",
      () =>
        strategy()?.frontend?.impersonationProxyInfo?.certificateAuthorityData ===
        Buffer.from(newCA + oldCA).toString("base64"),
      polling,
    );
    await eventually(
      "the chain has the cross-signed CA",
      () =>
        credentials
          .get()
          .serving?.certPEM.endsWith(
            Buffer.from(rotated.data?.["ca-cross-signed.crt"] ?? "", "base64").toString(),
          ),
      polling,
    );
    caCrt = rotated.data?.["ca.crt"] ?? "";
  });

  it("reuses the CA after a restart", async () => {
    stop.abort();
    await running;
    start();
    await eventually("Listening again", () => strategy()?.reason === "Listening", polling);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await secret(names.caSecret)).data?.["ca.crt"], caCrt);
  });

  it("disabling stops the proxy, deletes the Service and TLS Secret, keeps the CA and signer Secrets", async () => {
    await patchSpec({ mode: "disabled" });
    await eventually(
      "Disabled",
      () => strategy()?.message === "impersonation proxy was explicitly disabled by configuration",
      polling,
    );
    assert.equal(runner.running, false);
    await eventually("Service deleted", () => gone(() => svc(names.clusterIPService)), polling);
    await eventually("TLS Secret deleted", () => gone(() => secret(names.tlsSecret)), polling);
    assert.equal((await secret(names.caSecret)).data?.["ca.crt"], caCrt);
    assert.ok((await secret(names.signerSecret)).data?.caCertificate);
    assert.deepEqual(credentials.get(), { serving: undefined, signerCAPEMs: [] });
  });
});
