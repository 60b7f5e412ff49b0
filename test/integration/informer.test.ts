// The informer against a real kube-apiserver: convergence, bookmarks, recovery from a real
// watch error (RBAC revoked mid-flight) and from an API server restart.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { Informer, type InformerTiming } from "../../controllers/runtime/informer.ts";
import { type InformerTransport, restTransport } from "../../controllers/runtime/listwatch.ts";
import { type ControlPlane, startControlPlane } from "../../hack/controlplane.ts";
import type { KubeObject } from "../../kube/resource.ts";
import { KubeRestClient, type Query, type RestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";

const LABEL = "concierge.test/informer=yes";

// How long and how often this file waited before eventually was shared: its tests keep that timing.
const polling = { timeoutMs: 30_000, intervalMs: 50 };

/** Records the queries the informer sends, around the real transport. */
function recording(inner: InformerTransport): InformerTransport & { watchQueries: Query[] } {
  const watchQueries: Query[] = [];
  return {
    watchQueries,
    list: (path, query, signal) => inner.list(path, query, signal),
    watch: (path, query, signal, sink) => {
      watchQueries.push(query);
      return inner.watch(path, query, signal, sink);
    },
  };
}

const configMaps = (rest: RestClient, namespace: string) => {
  const base = `/api/v1/namespaces/${namespace}/configmaps`;
  return {
    create: (name: string, data: Record<string, string> = {}) =>
      rest.request<KubeObject>({
        method: "POST",
        path: base,
        body: { metadata: { name, labels: { "concierge.test/informer": "yes" } }, data },
      }),
    update: (name: string, data: Record<string, string>) =>
      rest.request<KubeObject>({
        method: "PATCH",
        path: `${base}/${name}`,
        body: { data },
        contentType: "application/merge-patch+json",
      }),
    delete: (name: string) => rest.request({ method: "DELETE", path: `${base}/${name}` }),
  };
};

async function metric(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const data = await metrics.registry.getSingleMetric(`concierge_${name}`)?.get();
  return (data?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

const FAST: InformerTiming = { backoffInitialMs: 100, backoffMaxMs: 1_000, inactivityTimeoutMs: 30_000 };

function names(informer: Informer): string[] {
  return informer
    .list()
    .map((o) => o.metadata?.name ?? "")
    .sort();
}

const running: Informer[] = [];
afterEach(async () => {
  for (const i of running.splice(0)) await i.stop();
});

describe("informer on the shared control plane", () => {
  let c: TestCluster;
  let admin: KubeRestClient;
  before(async () => {
    c = await testCluster();
    admin = new KubeRestClient(c.kubeConfig());
  });

  it("converges on ConfigMaps in a fresh namespace, asking for bookmarks", async () => {
    const ns = await c.newNamespace("informer");
    const cms = configMaps(admin, ns);
    await cms.create("before-1", { v: "1" });
    await cms.create("before-2", { v: "1" });

    const transport = recording(restTransport(new KubeRestClient(c.kubeConfig())));
    const metrics = new Metrics();
    const informer = new Informer({
      resource: { group: "", version: "v1", resource: "configmaps", namespace: ns, labelSelector: LABEL },
      transport,
      metrics,
      // A short server-side timeout, so the apiserver's "bookmark just before the deadline" arrives soon.
      watchTimeoutSeconds: 3,
      ...FAST,
    });
    const events: string[] = [];
    informer.addHandler({
      add: (o) => events.push(`add ${o.metadata?.name}`),
      update: (_old, o) => events.push(`update ${o.metadata?.name}`),
      delete: (o) => events.push(`delete ${o.metadata?.name}`),
    });
    running.push(informer);
    informer.start();
    await informer.waitForSync(AbortSignal.timeout(30_000));
    assert.deepEqual(names(informer), ["before-1", "before-2"]);

    await cms.create("after", { v: "1" });
    await cms.update("before-1", { v: "2" });
    await cms.delete("before-2");
    await eventually(
      "the cache to converge",
      () => {
        const b1 = informer.get("before-1", ns) as
          | (KubeObject & { data?: Record<string, string> })
          | undefined;
        return names(informer).join() === "after,before-1" && b1?.data?.v === "2";
      },
      polling,
    );
    assert.deepEqual(events, [
      "add before-1",
      "add before-2",
      "add after",
      "update before-1",
      "delete before-2",
    ]);
    assert.ok(Object.isFrozen(informer.get("after", ns)));

    assert.ok(transport.watchQueries.length >= 1);
    for (const q of transport.watchQueries) {
      assert.equal(q.allowWatchBookmarks, true);
      assert.equal(q.labelSelector, LABEL);
      assert.ok(Number(q.timeoutSeconds) >= 3 && Number(q.timeoutSeconds) < 6);
    }
    await eventually(
      "a bookmark from the server",
      async () => (await metric(metrics, "informer_events_total", { type: "bookmark" })) > 0,
      { ...polling, timeoutMs: 15_000 },
    );
  });

  it("restarts its watch after a real watch error (RBAC revoked) and catches up", async () => {
    const ns = await c.newNamespace("informer-rbac");
    const user = c.uniqueName("informer-reader");
    const rbac = async (verb: "create" | "delete", kind: "role" | "rolebinding", extra: string[]) => {
      const res = await c.kubectl([verb, kind, "reader", "-n", ns, ...extra]);
      assert.equal(res.code, 0, res.stderr);
    };
    await rbac("create", "role", ["--verb=get,list,watch", "--resource=configmaps"]);
    await rbac("create", "rolebinding", ["--role=reader", `--user=${user}`]);

    const base = c.kubeConfig();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: base.clusters,
      contexts: base.contexts,
      currentContext: base.currentContext,
      users: base.users.map((u) => ({ ...u, impersonateUser: user })),
    });
    const metrics = new Metrics();
    const { log, lines } = memoryLogger("info");
    const informer = new Informer({
      resource: { group: "", version: "v1", resource: "configmaps", namespace: ns, labelSelector: LABEL },
      transport: restTransport(new KubeRestClient(kc)),
      metrics,
      log,
      // The server ends each watch within 1–2 s, so the next one meets the revoked permission.
      watchTimeoutSeconds: 1,
      ...FAST,
    });
    running.push(informer);
    informer.start();
    await informer.waitForSync(AbortSignal.timeout(30_000));

    await rbac("delete", "rolebinding", []);
    await eventually(
      "a forbidden watch",
      async () => (await metric(metrics, "informer_watch_errors_total", { kind: "forbidden" })) >= 2,
      polling,
    );
    const cms = configMaps(admin, ns);
    await cms.create("while-forbidden");
    await rbac("create", "rolebinding", ["--role=reader", `--user=${user}`]);
    await eventually(
      "the cache to catch up",
      () => informer.get("while-forbidden", ns) !== undefined,
      polling,
    );
    await cms.create("after-restore");
    await eventually("a new event", () => informer.get("after-restore", ns) !== undefined, polling);
    assert.ok((await metric(metrics, "informer_restarts_total")) >= 2);
    assert.ok(lines.some((l) => l.message === "list/watch failed; retrying" && l.kind === "forbidden"));
    assert.ok(lines.some((l) => l.message === "watch reconnected"));
  });
});

describe("informer across an API server restart (dedicated control plane)", () => {
  let cp: ControlPlane;
  before(async () => {
    cp = await startControlPlane({ name: "informer-restart" });
  });
  after(async () => {
    await cp?.stop();
  });

  it("recovers without a new informer and converges on changes made after the restart", async () => {
    const admin = new KubeRestClient(cp.kubeConfig());
    const ns = "informer-restart";
    await admin.request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name: ns } } });
    const cms = configMaps(admin, ns);
    await cms.create("before", { v: "1" });
    await cms.create("doomed");

    const metrics = new Metrics();
    const { log, lines } = memoryLogger("info");
    const informer = new Informer({
      resource: { group: "", version: "v1", resource: "configmaps", namespace: ns, labelSelector: LABEL },
      transport: restTransport(new KubeRestClient(cp.kubeConfig())),
      metrics,
      log,
      ...FAST,
    });
    running.push(informer);
    informer.start();
    await informer.waitForSync(AbortSignal.timeout(30_000));
    assert.deepEqual(names(informer), ["before", "doomed"]);

    await cp.stopApiServer();
    await eventually(
      "the watch to fail",
      async () => (await metric(metrics, "informer_watch_errors_total")) >= 1,
      polling,
    );
    await cp.startApiServer();

    await cms.create("after");
    await cms.update("before", { v: "2" });
    await cms.delete("doomed");
    await eventually(
      "the cache to converge after the restart",
      () => {
        const before = informer.get("before", ns) as
          | (KubeObject & { data?: Record<string, string> })
          | undefined;
        return names(informer).join() === "after,before" && before?.data?.v === "2";
      },
      polling,
    );
    assert.ok((await metric(metrics, "informer_restarts_total")) >= 1);
    const kinds = lines.filter((l) => l.message === "list/watch failed; retrying").map((l) => l.kind);
    assert.ok(kinds.length >= 1);
    assert.ok(
      kinds.every((k) =>
        ["stream_closed", "network", "connection_refused", "server_error", "closed"].includes(String(k)),
      ),
      `unexpected failure kinds ${kinds.join()}`,
    );
  });
});
