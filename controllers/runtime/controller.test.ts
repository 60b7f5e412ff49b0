import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { FakeClock, settle } from "../../kube/clock.ts";
import type { KubeObject } from "../../kube/resource.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { Controller, type Syncer, SyntheticRequeue, TerminalError } from "./controller.ts";
import { ownKey, singletonKey, when } from "./filters.ts";
import { NotLeaderError } from "./leaderelection.ts";
import { eventually, FakeInformer } from "./testing.ts";

const cm = (name: string, namespace = "ns", extra: Partial<KubeObject> = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace, resourceVersion: "1" },
  ...extra,
});

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = metrics.registry.getSingleMetric(`concierge_${name}`);
  const data = await metric?.get();
  const match = data?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return match?.value ?? 0;
}

interface Harness {
  clock: FakeClock;
  metrics: Metrics;
  lines: Record<string, unknown>[];
  synced: string[];
  controller: Controller;
  stop: () => Promise<void>;
}

const running: Harness[] = [];
afterEach(async () => {
  for (const h of running.splice(0)) await h.stop();
});

function start(
  sync: Syncer,
  setup: (c: Controller) => void,
  options: { workers?: number; maxRetries?: number } = {},
): Harness {
  const clock = new FakeClock();
  const metrics = new Metrics();
  const { log, lines } = memoryLogger();
  const synced: string[] = [];
  const controller = new Controller({
    name: "test",
    clock,
    metrics,
    log,
    ...options,
    sync: async (ctx) => {
      synced.push(ctx.key);
      return sync(ctx);
    },
  });
  setup(controller);
  const abort = new AbortController();
  const done = controller.run(abort.signal);
  const h: Harness = {
    clock,
    metrics,
    lines,
    synced,
    controller,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
  running.push(h);
  return h;
}

describe("Controller", () => {
  it("maps informer events to keys through the filter and drops what it filters out", async () => {
    const informer = new FakeInformer({ objects: [cm("a"), cm("skip")] });
    const h = start(
      () => undefined,
      (c) =>
        c.withInformer(
          informer,
          when((o) => o.metadata?.name !== "skip", ownKey),
        ),
    );
    await eventually(() => h.synced.length === 1);
    assert.deepEqual(h.synced, ["ns/a"]);
    informer.upsert(cm("b", "other"));
    informer.upsert(cm("skip", "ns", { data: { x: "1" } }));
    informer.remove("a", "ns");
    await eventually(() => h.synced.length === 3);
    await settle();
    assert.deepEqual(h.synced, ["ns/a", "other/b", "ns/a"]);
  });

  it("lets one event fan out to several keys", async () => {
    const informer = new FakeInformer();
    const h = start(
      () => undefined,
      (c) => c.withInformer(informer, () => ["x", "y"]),
    );
    informer.upsert(cm("a"));
    await eventually(() => h.synced.length === 2);
    assert.deepEqual(h.synced.sort(), ["x", "y"]);
  });

  it("syncs the initial event once at start even without objects", async () => {
    const h = start(
      () => undefined,
      (c) => c.withInformer(new FakeInformer(), singletonKey("world")).withInitialEvent("world"),
    );
    await eventually(() => h.synced.length === 1);
    await settle();
    assert.deepEqual(h.synced, ["world"]);
  });

  it("processes nothing until every informer has synced", async () => {
    const late = new FakeInformer({ synced: false, objects: [cm("a")] });
    const h = start(
      () => undefined,
      (c) => c.withInformer(new FakeInformer(), ownKey).withInformer(late, ownKey).withInitialEvent("init"),
    );
    await settle();
    assert.deepEqual(h.synced, []);
    late.markSynced();
    await eventually(() => h.synced.length === 2);
    assert.deepEqual(h.synced.sort(), ["init", "ns/a"]);
  });

  it("reports its first pass done once every key known at sync has been synced once, whatever the outcome", async () => {
    const late = new FakeInformer({ synced: false, objects: [cm("a"), cm("b")] });
    let releaseB = () => {};
    const b = new Promise<void>((resolve) => {
      releaseB = resolve;
    });
    const h = start(
      async ({ key }) => {
        if (key === "ns/a") throw new Error("not loadable");
        if (key === "ns/b") await b;
        return undefined;
      },
      (c) => c.withInformer(late, ownKey).withInitialEvent("init"),
    );
    await settle();
    assert.equal(h.controller.firstPassDone(), false, "caches not synced");
    late.markSynced();
    await eventually(() => h.synced.includes("ns/b"));
    assert.equal(h.controller.firstPassDone(), false, "ns/b is still syncing");
    releaseB();
    await eventually(() => h.controller.firstPassDone());
    // A key that appears later is not part of the first pass.
    late.upsert(cm("c"));
    assert.equal(h.controller.firstPassDone(), true);
  });

  it("warns while informers have not synced", async () => {
    const h = start(
      () => undefined,
      (c) => c.withInformer(new FakeInformer({ name: "slow", synced: false }), ownKey),
    );
    await h.clock.advance(60_000);
    assert.ok(h.lines.some((l) => l.message === "still waiting for informer caches to sync"));
  });

  it("retries a failing key with growing backoff, then forgets it on success", async () => {
    let calls = 0;
    const h = start(
      () => {
        calls++;
        if (calls <= 2) throw new Error(`failure ${calls}`);
      },
      (c) => c.withInitialEvent("k"),
    );
    await eventually(() => calls === 1);
    await h.clock.advance(4);
    assert.equal(calls, 1, "first retry waits 5 ms");
    await h.clock.advance(1);
    await eventually(() => calls === 2);
    await h.clock.advance(9);
    assert.equal(calls, 2, "second retry waits 10 ms");
    await h.clock.advance(1);
    await eventually(() => calls === 3);
    assert.equal(await metricValue(h.metrics, "controller_syncs_total", { result: "error" }), 2);
    assert.equal(await metricValue(h.metrics, "controller_syncs_total", { result: "success" }), 1);
    assert.equal(await metricValue(h.metrics, "controller_retries_total", { controller: "test" }), 2);
    const errors = h.lines.filter((l) => l.message === "sync failed; will retry");
    assert.deepEqual(
      errors.map((l) => [l.key, l.controller, (l.error as { message: string }).message]),
      [
        ["k", "test", "failure 1"],
        ["k", "test", "failure 2"],
      ],
    );
    // After success the backoff starts over at 5 ms.
    h.controller.enqueue("k");
    await eventually(() => calls === 4);
  });

  it("does not retry a TerminalError, also when it is the cause of another error", async () => {
    let calls = 0;
    const h = start(
      ({ key }) => {
        calls++;
        if (key === "wrapped") throw new Error("outer", { cause: new TerminalError("bad spec") });
        throw new TerminalError("bad spec");
      },
      (c) => c.withInitialEvent("k").withInitialEvent("wrapped"),
    );
    await eventually(() => calls === 2);
    await h.clock.advance(10_000);
    assert.equal(calls, 2);
    assert.equal(await metricValue(h.metrics, "controller_syncs_total", { result: "terminal" }), 2);
    assert.equal(h.lines.filter((l) => l.message === "sync failed; not retrying").length, 2);
  });

  it("requeues on SyntheticRequeue without logging an error", async () => {
    let calls = 0;
    const h = start(
      () => {
        calls++;
        if (calls === 1) throw SyntheticRequeue;
      },
      (c) => c.withInitialEvent("k"),
    );
    await eventually(() => calls === 1);
    await h.clock.advance(5);
    await eventually(() => calls === 2);
    assert.equal(
      h.lines.filter((l) => l.level === "error").length,
      0,
      JSON.stringify(h.lines.filter((l) => l.level === "error")),
    );
    assert.equal(await metricValue(h.metrics, "controller_syncs_total", { result: "requeue" }), 1);
  });

  it("requeues NotLeaderError quietly, and retries at once on request", async () => {
    let calls = 0;
    let leader = false;
    const h = start(
      () => {
        calls++;
        if (!leader) throw new NotLeaderError();
      },
      (c) => c.withInitialEvent("k"),
    );
    await h.clock.advance(1_000);
    const refused = calls;
    assert.ok(refused > 3, "retried with backoff");
    assert.equal(h.lines.filter((l) => l.level === "error").length, 0);
    assert.equal(await metricValue(h.metrics, "controller_syncs_total", { result: "not_leader" }), refused);
    leader = true;
    h.controller.retryFailedNow();
    await eventually(() => calls === refused + 1);
    assert.equal(await metricValue(h.metrics, "controller_syncs_total", { result: "success" }), 1);
  });

  it("syncs again after requeueAfterMs", async () => {
    let calls = 0;
    const h = start(
      () => {
        calls++;
        return calls === 1 ? { requeueAfterMs: 30_000 } : undefined;
      },
      (c) => c.withInitialEvent("k"),
    );
    await eventually(() => calls === 1);
    await h.clock.advance(29_999);
    assert.equal(calls, 1);
    await h.clock.advance(1);
    await eventually(() => calls === 2);
    assert.equal(await metricValue(h.metrics, "controller_syncs_total", { result: "requeue_after" }), 1);
  });

  it("survives syncs that throw synchronously, throw non-errors, or reject", async () => {
    const informer = new FakeInformer();
    const failures: Record<string, () => unknown> = {
      sync: () => {
        throw new Error("sync throw");
      },
      string: () => {
        throw "a string";
      },
      reject: () => Promise.reject(new Error("rejected")),
      undefinedKey: () => {
        throw undefined;
      },
    };
    const h = start(
      ({ key }) => failures[key]?.() as undefined,
      (c) => c.withInformer(informer, ownKey),
    );
    for (const key of Object.keys(failures)) h.controller.enqueue(key);
    await eventually(() => h.synced.length === 4);
    await h.clock.advance(5);
    await eventually(() => h.synced.length === 8);
    assert.equal(await metricValue(h.metrics, "controller_syncs_total", { result: "error" }), 8);
  });

  it("gives up on a key after maxRetries", async () => {
    let calls = 0;
    const h = start(
      () => {
        calls++;
        throw new Error("always");
      },
      (c) => c.withInitialEvent("k"),
      { maxRetries: 2 },
    );
    await h.clock.advance(1_000);
    await eventually(() => calls === 3);
    await h.clock.advance(10_000);
    assert.equal(calls, 3);
    assert.equal(await metricValue(h.metrics, "controller_syncs_total", { result: "dropped" }), 1);
  });

  it("drops an event whose filter throws, and keeps going", async () => {
    const informer = new FakeInformer();
    const h = start(
      () => undefined,
      (c) =>
        c.withInformer(informer, (e) => {
          if (e.obj.metadata?.name === "boom") throw new Error("filter bug");
          return ownKey(e);
        }),
    );
    informer.upsert(cm("boom"));
    informer.upsert(cm("fine"));
    await eventually(() => h.synced.length === 1);
    assert.deepEqual(h.synced, ["ns/fine"]);
    assert.ok(h.lines.some((l) => l.message === "event filter failed; event dropped"));
  });

  it("never runs one key on two workers; a key re-added while syncing runs once more afterwards", async () => {
    const informer = new FakeInformer();
    let active = 0;
    let maxActive = 0;
    const releases: (() => void)[] = [];
    const h = start(
      async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise<void>((resolve) => releases.push(resolve));
        active--;
      },
      (c) => c.withInformer(informer, singletonKey("one")),
      { workers: 4 },
    );
    informer.upsert(cm("a"));
    await eventually(() => releases.length === 1);
    informer.upsert(cm("b"));
    informer.upsert(cm("c"));
    await settle();
    assert.equal(releases.length, 1);
    releases[0]?.();
    await eventually(() => releases.length === 2);
    releases[1]?.();
    await settle();
    assert.equal(maxActive, 1);
    assert.deepEqual(h.synced, ["one", "one"]);
  });

  it("stops after in-flight syncs finish; their signal is aborted", async () => {
    let signal: AbortSignal | undefined;
    let release: () => void = () => {};
    const h = start(
      (ctx) => {
        signal = ctx.signal;
        return new Promise<undefined>((resolve) => {
          release = () => resolve(undefined);
        });
      },
      (c) => c.withInitialEvent("k"),
    );
    await eventually(() => signal !== undefined);
    let stopped = false;
    const stopping = h.stop().then(() => {
      stopped = true;
    });
    await settle();
    assert.equal(signal?.aborted, true);
    assert.equal(stopped, false);
    release();
    await stopping;
    assert.ok(h.lines.some((l) => l.message === "controller stopped"));
    await assert.rejects(h.controller.run(new AbortController().signal), /already started/);
  });
});
