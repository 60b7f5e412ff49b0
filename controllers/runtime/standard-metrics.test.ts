// The metrics client-go exports under its own names (workqueue_*, rest_client_*,
// leader_election_master_status), which the usual controller dashboards and alerts read.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { FakeClock, settle } from "../../kube/clock.ts";
import { KubeRestClient } from "../../kube/rest.ts";
import { Metrics } from "../../observability/metrics.ts";
import { Controller } from "./controller.ts";
import { ownKey } from "./filters.ts";
import { LeaderElector } from "./leaderelection.ts";
import { restClientMetrics } from "./manager.ts";
import { eventually, FakeInformer, FakeLeaseStore } from "./testing.ts";
import { WorkQueue } from "./workqueue.ts";

async function sample(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const data = await metrics.registry.getSingleMetric(name)?.get();
  return (data?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("client-go's standard metrics", () => {
  it("workqueue: adds once per waiting key, time waiting and working, retries", async () => {
    const clock = new FakeClock();
    const seen = { added: 0, waited: [] as number[], worked: [] as number[], retried: 0 };
    const queue = new WorkQueue({
      clock,
      observer: {
        added: () => seen.added++,
        waited: (s) => seen.waited.push(s),
        worked: (s) => seen.worked.push(s),
        retried: () => seen.retried++,
      },
    });
    queue.add("a");
    queue.add("a");
    assert.equal(seen.added, 1, "a key already waiting is not added again");
    await clock.advance(2000);
    assert.equal(await queue.get(), "a");
    await clock.advance(500);
    queue.done("a");
    queue.addRateLimited("a");
    assert.deepEqual(seen.waited, [2]);
    assert.deepEqual(seen.worked, [0.5]);
    assert.equal(seen.retried, 1);
  });

  it("a controller's queue is exported as workqueue_* with its name", async () => {
    const clock = new FakeClock();
    const metrics = new Metrics();
    let failures = 1;
    const controller = new Controller({
      name: "jwtcachefiller-controller",
      clock,
      metrics,
      sync: () => {
        if (failures-- > 0) throw new Error("once");
      },
    }).withInformer(
      new FakeInformer({
        objects: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a", namespace: "ns" } }],
      }),
      ownKey,
    );
    const abort = new AbortController();
    const done = controller.run(abort.signal);
    after(async () => {
      abort.abort();
      await done;
    });
    const name = { name: "jwtcachefiller-controller" };
    assert.match(await metrics.text(), /^workqueue_depth\{name="jwtcachefiller-controller"\} \d+$/m);
    assert.match(await metrics.text(), /^workqueue_retries_total\{name="jwtcachefiller-controller"\} \d+$/m);
    await eventually(() => failures === 0);
    await clock.advance(5);
    await eventually(() => failures < 0);
    await settle();
    assert.equal(await sample(metrics, "workqueue_retries_total", name), 1);
    assert.equal(await sample(metrics, "workqueue_adds_total", name), 2);
    assert.equal(await sample(metrics, "workqueue_depth", name), 0);
    const text = await metrics.text();
    assert.match(text, /^workqueue_queue_duration_seconds_count\{name="jwtcachefiller-controller"\} 2$/m);
    assert.match(text, /^workqueue_work_duration_seconds_count\{name="jwtcachefiller-controller"\} 2$/m);
    assert.match(
      text,
      /^workqueue_work_duration_seconds_bucket\{le="1e-8",name="jwtcachefiller-controller"\} 2$/m,
    );
  });

  it("leader_election_master_status follows leadership, by lease name", async () => {
    const clock = new FakeClock();
    const metrics = new Metrics();
    const elector = new LeaderElector({
      lease: new FakeLeaseStore().client("ns", "pinniped-concierge"),
      identity: "pod-a",
      clock,
      metrics,
      random: () => 0,
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
    assert.equal(await sample(metrics, "leader_election_master_status", { name: "pinniped-concierge" }), 0);
    const abort = new AbortController();
    const running = elector.run(abort.signal);
    await settle();
    assert.equal(await sample(metrics, "leader_election_master_status", { name: "pinniped-concierge" }), 1);
    abort.abort();
    await running;
    assert.equal(await sample(metrics, "leader_election_master_status", { name: "pinniped-concierge" }), 0);
  });

  it("rest_client_requests_total and rest_client_request_duration_seconds per code, method and host", async () => {
    const server = createServer((req, res) => {
      if (req.url?.startsWith("/api/v1/namespaces/missing")) res.writeHead(404).end("{}");
      else res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    after(() => new Promise((ok) => server.close(ok)));
    const address = server.address();
    const host = `127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: `http://${host}`, skipTLSVerify: true }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const metrics = new Metrics();
    const client = new KubeRestClient(kc, { onResult: restClientMetrics(metrics) });
    await client.request({ method: "GET", path: "/api/v1/namespaces/default" });
    await client.request({ method: "POST", path: "/api/v1/namespaces", body: {} });
    await assert.rejects(client.request({ method: "GET", path: "/api/v1/namespaces/missing" }));
    client.close();
    assert.equal(
      await sample(metrics, "rest_client_requests_total", { code: "200", method: "GET", host }),
      1,
    );
    assert.equal(
      await sample(metrics, "rest_client_requests_total", { code: "200", method: "POST", host }),
      1,
    );
    assert.equal(
      await sample(metrics, "rest_client_requests_total", { code: "404", method: "GET", host }),
      1,
    );
    assert.match(
      await metrics.text(),
      new RegExp(`^rest_client_request_duration_seconds_count\\{verb="GET",host="${host}"\\} 2$`, "m"),
    );
  });
});
