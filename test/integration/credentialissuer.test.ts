// The credentialissuer reconciler in-process against the real API server: strategies published
// into the StrategyHolder land sorted in CredentialIssuer.status (through the CRD's schema and
// status subresource), kubectl's DEFAULTSTRATEGY column shows the successful one, lastUpdateTime
// moves only on a real change, a hand edit is reverted, and a missing CredentialIssuer is waited
// for, never created. The TokenCredentialRequestAPI frontend is built from the test cluster's real
// kube-public/cluster-info.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { CredentialIssuerStrategy } from "../../apis/index.ts";
import { StrategyHolder } from "../../controllers/credentialissuer/holder.ts";
import type { StrategyUpdate } from "../../controllers/credentialissuer/merge.ts";
import {
  type CredentialIssuerObject,
  register as registerCredentialIssuer,
} from "../../controllers/credentialissuer/reconciler.ts";
import {
  clusterInfoName,
  clusterInfoNamespace,
  tokenCredentialRequestFrontend,
} from "../../controllers/kubecertagent/frontend.ts";
import { type Manager, managerFromKubeConfig } from "../../controllers/runtime/manager.ts";
import { isNotFound, KubeRestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";

const path = "/apis/config.concierge.pinniped.dev/v1alpha1/credentialissuers";
const label = "concierge.test/credentialissuer";

// How long and how often this file waited before eventually was shared: its tests keep that timing.
const polling = { timeoutMs: 30_000, intervalMs: 10 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Without the times, which the reconciler stamps. */
function withoutTimes(strategies: CredentialIssuerStrategy[] | undefined): StrategyUpdate[] {
  return (strategies ?? []).map(({ lastUpdateTime: _, ...rest }) => rest);
}

describe("credentialissuer reconciler against the real API server", () => {
  let c: TestCluster;
  let admin: KubeRestClient;
  let namespace: string;
  let manager: Manager;
  let running: Promise<void>;
  let name: string;
  let lateName: string;
  const holder = new StrategyHolder();
  const stop = new AbortController();
  const { log, lines } = memoryLogger("debug");

  const proxyDisabled: Omit<StrategyUpdate, "type"> = {
    status: "Error",
    reason: "Disabled",
    message: "impersonation proxy was explicitly disabled by configuration",
  };
  let kcaSuccess: Omit<StrategyUpdate, "type">;

  const get = (n: string) => admin.request<CredentialIssuerObject>({ method: "GET", path: `${path}/${n}` });

  async function create(n: string): Promise<void> {
    await admin.request({
      method: "POST",
      path,
      body: {
        apiVersion: "config.concierge.pinniped.dev/v1alpha1",
        kind: "CredentialIssuer",
        metadata: { name: n, labels: { [label]: "yes" } },
        spec: { impersonationProxy: { mode: "disabled", service: { type: "LoadBalancer" } } },
      },
    });
  }

  before(async () => {
    c = await testCluster();
    admin = new KubeRestClient(c.kubeConfig());
    namespace = await c.newNamespace("concierge");
    name = c.uniqueName("pinniped-concierge-config");
    lateName = c.uniqueName("late-config");
    await create(name);

    const clusterInfo = await admin.request<{ data?: Record<string, string> }>({
      method: "GET",
      path: `/api/v1/namespaces/${clusterInfoNamespace}/configmaps/${clusterInfoName}`,
    });
    const built = tokenCredentialRequestFrontend(clusterInfo);
    assert.ok(built.ok, JSON.stringify(built));
    kcaSuccess = {
      status: "Success",
      reason: "FetchedKey",
      message: "key was fetched successfully",
      frontend: built.frontend,
    };

    manager = managerFromKubeConfig(c.kubeConfig(), {
      identity: "credentialissuer-test",
      leaseNamespace: namespace,
      leaseName: c.uniqueName("credentialissuer"),
      leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      log,
    });
    registerCredentialIssuer(manager, { holder, credentialIssuerName: name });
    // A second reconciler, for a CredentialIssuer that does not exist yet.
    registerCredentialIssuer(manager, { holder, credentialIssuerName: lateName });
    running = manager.run(stop.signal);
    await eventually("leadership", () => manager.leader.isLeader(), polling);
  });

  after(async () => {
    stop.abort();
    await running;
    await c.kubectl(["delete", "credentialissuers", "-l", label, "--ignore-not-found", "--wait=false"]);
    await c.kubectl(["delete", "namespace", namespace, "--wait=false"]);
  });

  it("builds the TokenCredentialRequestAPI frontend from the cluster's real kube-public/cluster-info", async () => {
    const caData = c.kubeConfig().getCurrentCluster()?.caData;
    assert.ok(caData, "the admin kubeconfig carries the cluster CA");
    assert.deepEqual(kcaSuccess.frontend, {
      type: "TokenCredentialRequestAPI",
      tokenCredentialRequestInfo: { server: c.server, certificateAuthorityData: caData },
    });
    assert.match(Buffer.from(caData, "base64").toString(), /^-----BEGIN CERTIFICATE-----/);

    const clusterInfo = await admin.request<{ data?: Record<string, string> }>({
      method: "GET",
      path: `/api/v1/namespaces/${clusterInfoNamespace}/configmaps/${clusterInfoName}`,
    });
    const overridden = tokenCredentialRequestFrontend(clusterInfo, "https://concierge.example.com/k8s");
    assert.deepEqual(overridden, {
      ok: true,
      frontend: {
        type: "TokenCredentialRequestAPI",
        tokenCredentialRequestInfo: {
          server: "https://concierge.example.com/k8s",
          certificateAuthorityData: caData,
        },
      },
    });
  });

  it("writes published strategies sorted, and kubectl shows the successful one as DEFAULTSTRATEGY", async () => {
    holder.set("ImpersonationProxy", proxyDisabled);
    holder.set("KubeClusterSigningCertificate", kcaSuccess);
    const ci = await eventually(
      "both strategies in the status",
      async () => {
        const o = await get(name);
        return o.status?.strategies?.length === 2 ? o : undefined;
      },
      polling,
    );
    assert.deepEqual(withoutTimes(ci.status?.strategies), [
      { ...kcaSuccess, type: "KubeClusterSigningCertificate" },
      { ...proxyDisabled, type: "ImpersonationProxy" },
    ]);
    for (const s of ci.status?.strategies ?? []) {
      assert.match(s.lastUpdateTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }

    const table = await c.kubectl(["get", "credentialissuer", name]);
    assert.equal(table.code, 0, table.stderr);
    const [header, row] = table.stdout.trim().split("\n");
    assert.deepEqual(header?.split(/\s+/), ["NAME", "PROXYMODE", "DEFAULTSTRATEGY", "AGE"]);
    assert.deepEqual(row?.split(/\s+/).slice(0, 3), [name, "disabled", "KubeClusterSigningCertificate"]);
  });

  it("is Ready for kubectl wait, with the frontend in the message and the disabled proxy not an error", async () => {
    holder.set("ImpersonationProxy", proxyDisabled);
    holder.set("KubeClusterSigningCertificate", kcaSuccess);
    const waited = await c.kubectl([
      "wait",
      "--for=condition=Ready",
      `credentialissuer/${name}`,
      "--timeout=30s",
    ]);
    assert.equal(waited.code, 0, waited.stderr);
    const ci = await get(name);
    assert.equal(ci.status?.observedGeneration, ci.metadata?.generation);
    const byType = new Map((ci.status?.conditions ?? []).map((x) => [x.type, x]));
    assert.match(byType.get("Ready")?.message ?? "", /TokenCredentialRequestAPI/);
    assert.deepEqual(
      [byType.get("ImpersonationProxy")?.status, byType.get("ImpersonationProxy")?.reason],
      ["False", "Disabled"],
    );
    assert.equal(byType.get("KubeClusterSigningCertificate")?.status, "True");
  });

  it("a server-side apply of the same file twice writes nothing the second time, and a spec change moves observedGeneration", async () => {
    holder.set("ImpersonationProxy", proxyDisabled);
    holder.set("KubeClusterSigningCertificate", kcaSuccess);
    const file = (mode: string) =>
      JSON.stringify({
        apiVersion: "config.concierge.pinniped.dev/v1alpha1",
        kind: "CredentialIssuer",
        metadata: { name, labels: { [label]: "yes" } },
        spec: { impersonationProxy: { mode, service: { type: "LoadBalancer" } } },
      });
    const apply = (mode: string) =>
      // Forced, as Flux and Argo CD apply: the test created the object under another manager.
      c.kubectl(["apply", "--server-side", "--force-conflicts", "--field-manager=gitops-test", "-f", "-"], {
        input: file(mode),
      });
    const settled = () =>
      eventually(
        "status observed the generation",
        async () => {
          const o = await get(name);
          return o.status?.observedGeneration === o.metadata?.generation ? o : undefined;
        },
        polling,
      );
    assert.equal((await apply("disabled")).code, 0);
    const first = await settled();
    const again = await apply("disabled");
    assert.equal(again.code, 0, again.stderr);
    await sleep(200);
    assert.equal((await get(name)).metadata?.resourceVersion, first.metadata?.resourceVersion);

    assert.equal((await apply("auto")).code, 0);
    const changed = await settled();
    assert.equal(changed.metadata?.generation, (first.metadata?.generation ?? 0) + 1);
    assert.ok(
      changed.status?.conditions?.every((x) => x.observedGeneration === changed.metadata?.generation),
    );
    assert.equal((await apply("disabled")).code, 0);
    await settled();
  });

  it("leaves lastUpdateTime alone when an identical strategy is republished, and moves it on a real change", async () => {
    const before = await eventually(
      "the strategies",
      async () => {
        const o = await get(name);
        return o.status?.strategies?.length === 2 ? o : undefined;
      },
      polling,
    );
    // Past the second boundary, so that a new stamp would differ from the old one.
    await sleep(1_100);
    holder.set("KubeClusterSigningCertificate", structuredClone(kcaSuccess));
    holder.set("ImpersonationProxy", structuredClone(proxyDisabled));
    // An event on the CredentialIssuer syncs the reconciler with the holder as it is.
    const synced = () =>
      lines.filter((l) => l.message === "synced" && l.controller === "credentialissuer" && l.key === name)
        .length;
    const syncsBefore = synced();
    const labelled = await c.kubectl(["label", "credentialissuer", name, "concierge.test/touched=yes"]);
    assert.equal(labelled.code, 0, labelled.stderr);
    await eventually("a sync after the label", () => synced() > syncsBefore, polling);
    await sleep(500);
    const after = await get(name);
    assert.deepEqual(after.status, before.status);

    const changed = {
      ...proxyDisabled,
      message: "automatically determined that impersonation proxy should be disabled",
    };
    holder.set("ImpersonationProxy", changed);
    const updated = await eventually(
      "the changed strategy",
      async () => {
        const o = await get(name);
        return o.status?.strategies?.[1]?.message === changed.message ? o : undefined;
      },
      polling,
    );
    const [kcaBefore, proxyBefore] = before.status?.strategies ?? [];
    const [kcaAfter, proxyAfter] = updated.status?.strategies ?? [];
    assert.equal(kcaAfter?.lastUpdateTime, kcaBefore?.lastUpdateTime);
    assert.ok(
      Date.parse(proxyAfter?.lastUpdateTime ?? "") > Date.parse(proxyBefore?.lastUpdateTime ?? ""),
      `${proxyAfter?.lastUpdateTime} is after ${proxyBefore?.lastUpdateTime}`,
    );
  });

  it("reverts a manual edit of status.strategies", async () => {
    const wanted = withoutTimes((await get(name)).status?.strategies);
    const edit = {
      status: {
        strategies: [
          {
            type: "ImpersonationProxy",
            status: "Success",
            reason: "Listening",
            message: "edited by hand",
            lastUpdateTime: "2020-01-01T00:00:00Z",
          },
        ],
      },
    };
    const patched = await c.kubectl([
      "patch",
      "credentialissuer",
      name,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify(edit),
    ]);
    assert.equal(patched.code, 0, patched.stderr);
    const reverted = await eventually(
      "the edit reverted",
      async () => {
        const o = await get(name);
        const strategies = o.status?.strategies ?? [];
        return strategies.length === 2 && strategies.every((s) => s.message !== "edited by hand")
          ? o
          : undefined;
      },
      polling,
    );
    assert.deepEqual(withoutTimes(reverted.status?.strategies), wanted);
  });

  it("never creates a missing CredentialIssuer, reports upstream's error, and writes once it exists", async () => {
    const message = `could not get CredentialIssuer to update: credentialissuer.config.concierge.pinniped.dev "${lateName}" not found`;
    await eventually(
      "the error logged",
      () =>
        lines.some(
          (l) =>
            l.message === "sync failed; will retry" &&
            JSON.stringify(l).includes(JSON.stringify(message).slice(1, -1)),
        ),
      polling,
    );
    await assert.rejects(get(lateName), isNotFound);

    await create(lateName);
    const ci = await eventually(
      "the strategies on the late CredentialIssuer",
      async () => {
        const o = await get(lateName);
        return o.status?.strategies?.length === 2 ? o : undefined;
      },
      polling,
    );
    assert.deepEqual(
      ci.status?.strategies?.map((s) => s.type),
      ["KubeClusterSigningCertificate", "ImpersonationProxy"],
    );
  });
});
