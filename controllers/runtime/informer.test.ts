import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { FakeClock, settle } from "../../kube/clock.ts";
import { type KubeObject, keyOf } from "../../kube/resource.ts";
import { ApiError, type Query, StreamClosedError } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { Informer, type InformerOptions } from "./informer.ts";
import { InformerFactory } from "./informer-factory.ts";
import type { InformerTransport, ListPage, WatchSink } from "./listwatch.ts";
import { eventually } from "./testing.ts";

/** One watch the fake server holds open; the test drives it. */
class FakeWatch {
  readonly query: Query;
  readonly sink: WatchSink;
  readonly signal: AbortSignal;
  readonly #resolve: () => void;
  readonly #reject: (err: unknown) => void;
  ended = false;
  constructor(
    query: Query,
    sink: WatchSink,
    signal: AbortSignal,
    resolve: () => void,
    reject: (e: unknown) => void,
  ) {
    this.query = query;
    this.sink = sink;
    this.signal = signal;
    this.#resolve = resolve;
    this.#reject = reject;
  }
  /** The server ends the watch normally. */
  close(): void {
    this.ended = true;
    this.#resolve();
  }
  fail(err: unknown): void {
    this.ended = true;
    this.#reject(err);
  }
  send(type: string, object: unknown): void {
    this.sink.activity();
    this.sink.event({ type, object } as never);
  }
}

/**
 * An API server in miniature. Resource versions are deliberately not numbers ("rv-a0001"), to
 * prove the informer treats them as opaque.
 */
class FakeTransport implements InformerTransport {
  readonly objects = new Map<string, KubeObject>();
  readonly lists: Query[] = [];
  readonly watches: FakeWatch[] = [];
  readonly listFailures: unknown[] = [];
  readonly watchFailures: unknown[] = [];
  #counter = 0;

  nextRv(): string {
    return `rv-a${String(++this.#counter).padStart(4, "0")}`;
  }

  /** Creates or updates an object on the server and tells the open watch, if any. */
  put(name: string, namespace: string | undefined, data: Record<string, string> = {}): KubeObject {
    const obj = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name, namespace, resourceVersion: this.nextRv() },
      data,
    };
    const key = keyOf(obj);
    const existed = this.objects.has(key);
    this.objects.set(key, obj);
    this.openWatch()?.send(existed ? "MODIFIED" : "ADDED", structuredClone(obj));
    return obj;
  }

  /** Changes the server without telling any watch (as if the events were missed). */
  putSilently(name: string, namespace: string | undefined, data: Record<string, string> = {}): void {
    const obj = { metadata: { name, namespace, resourceVersion: this.nextRv() }, data };
    this.objects.set(keyOf(obj), obj);
  }

  delete(name: string, namespace?: string, silently = false): void {
    const key = namespace ? `${namespace}/${name}` : name;
    const obj = this.objects.get(key);
    this.objects.delete(key);
    if (obj && !silently) {
      this.openWatch()?.send("DELETED", {
        ...structuredClone(obj),
        metadata: { ...obj.metadata, resourceVersion: this.nextRv() },
      });
    }
  }

  openWatch(): FakeWatch | undefined {
    const w = this.watches.at(-1);
    return w && !w.signal.aborted && !w.ended ? w : undefined;
  }

  async list(_path: string, query: Query, _signal: AbortSignal): Promise<ListPage> {
    this.lists.push(query);
    const failure = this.listFailures.shift();
    if (failure) throw failure;
    const all = [...this.objects.values()].map((o) => {
      const { apiVersion: _a, kind: _k, ...rest } = structuredClone(o);
      return rest;
    });
    const start = Number(query.continue ?? 0);
    const limit = Number(query.limit ?? all.length);
    const end = Math.min(all.length, start + limit);
    return {
      apiVersion: "v1",
      kind: "ConfigMapList",
      metadata: {
        resourceVersion: `rv-a${String(this.#counter).padStart(4, "0")}`,
        continue: end < all.length ? String(end) : undefined,
      },
      items: all.slice(start, end),
    };
  }

  watch(_path: string, query: Query, signal: AbortSignal, sink: WatchSink): Promise<void> {
    const failure = this.watchFailures.shift();
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      this.watches.push(new FakeWatch(query, sink, signal, resolve, reject));
      sink.open();
    });
  }
}

interface Setup {
  clock: FakeClock;
  transport: FakeTransport;
  informer: Informer;
  metrics: Metrics;
  lines: Record<string, unknown>[];
  events: string[];
}

const started: Informer[] = [];
const clocks: FakeClock[] = [];
afterEach(async () => {
  for (const i of started.splice(0)) await i.stop();
  for (const c of clocks.splice(0)) assert.equal(c.pending(), 0, "no timers left behind after stop");
});

async function setup(
  options: Partial<InformerOptions> = {},
  prepare?: (t: FakeTransport) => void,
): Promise<Setup> {
  const clock = new FakeClock();
  const transport = new FakeTransport();
  prepare?.(transport);
  const metrics = new Metrics();
  const { log, lines } = memoryLogger();
  const informer = new Informer({
    resource: { group: "", version: "v1", resource: "configmaps", namespace: "ns", labelSelector: "app=x" },
    transport,
    clock,
    metrics,
    log,
    random: () => 0,
    ...options,
  });
  const events: string[] = [];
  informer.addHandler({
    add: (o) => events.push(`add ${keyOf(o)} ${o.metadata?.resourceVersion}`),
    update: (old, o) =>
      events.push(`update ${keyOf(o)} ${old.metadata?.resourceVersion}->${o.metadata?.resourceVersion}`),
    delete: (o) => events.push(`delete ${keyOf(o)}`),
  });
  informer.start();
  started.push(informer);
  clocks.push(clock);
  await settle();
  return { clock, transport, informer, metrics, lines, events };
}

async function metric(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const data = await metrics.registry.getSingleMetric(`concierge_${name}`)?.get();
  return (data?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("Informer", () => {
  it("lists page by page, then watches from the list's version with bookmarks and a jittered timeout", async () => {
    const s = await setup({ pageSize: 2 }, (t) => {
      for (const n of ["a", "b", "c", "d", "e"]) t.putSilently(n, "ns");
    });
    assert.equal(s.informer.hasSynced(), true);
    await s.informer.waitForSync();
    assert.deepEqual(
      s.transport.lists.map((q) => [q.limit, q.continue, q.labelSelector]),
      [
        [2, undefined, "app=x"],
        [2, "2", "app=x"],
        [2, "4", "app=x"],
      ],
    );
    assert.equal(s.informer.list().length, 5);
    assert.equal(s.informer.get("a", "ns")?.kind, "ConfigMap", "list items get the list's kind");
    const w = s.transport.watches[0];
    assert.ok(w);
    assert.equal(w.query.allowWatchBookmarks, true);
    assert.equal(w.query.resourceVersion, "rv-a0005");
    assert.equal(w.query.labelSelector, "app=x");
    assert.equal(w.query.timeoutSeconds, 300);
    assert.deepEqual(s.events.slice(0, 2), ["add ns/a rv-a0001", "add ns/b rv-a0002"]);
  });

  it("jitters the server-side timeout between t and 2t", async () => {
    const s = await setup({ random: () => 0.5, watchTimeoutSeconds: 100 });
    assert.equal(s.transport.watches[0]?.query.timeoutSeconds, 150);
  });

  it("applies watch events to the cache and hands out frozen objects", async () => {
    const s = await setup();
    s.transport.put("a", "ns", { k: "1" });
    s.transport.put("a", "ns", { k: "2" });
    s.transport.put("b", "ns");
    s.transport.delete("b", "ns");
    assert.deepEqual(s.events, [
      "add ns/a rv-a0001",
      "update ns/a rv-a0001->rv-a0002",
      "add ns/b rv-a0003",
      "delete ns/b",
    ]);
    const a = s.informer.get("a", "ns") as KubeObject & { data: Record<string, string> };
    assert.equal(a.data.k, "2");
    assert.throws(() => {
      a.data.k = "mutated";
    }, TypeError);
    assert.deepEqual(
      s.informer.list("ns").map((o) => o.metadata?.name),
      ["a"],
    );
    assert.deepEqual(s.informer.list("other"), []);
    assert.equal(s.informer.lastResourceVersion(), "rv-a0004");
    assert.equal(await metric(s.metrics, "informer_events_total", { type: "update" }), 1);
  });

  it("moves its resource version forward on bookmarks", async () => {
    const s = await setup();
    s.transport.openWatch()?.send("BOOKMARK", { kind: "ConfigMap", metadata: { resourceVersion: "rv-zz" } });
    assert.equal(s.informer.lastResourceVersion(), "rv-zz");
    assert.equal(await metric(s.metrics, "informer_events_total", { type: "bookmark" }), 1);
    assert.deepEqual(s.events, []);
  });

  it("relists at once on a 410 ERROR event and turns the differences into add/update/delete", async () => {
    const s = await setup({}, (t) => {
      t.putSilently("same", "ns");
      t.putSilently("changed", "ns");
      t.putSilently("gone", "ns");
    });
    s.events.length = 0;
    s.transport.putSilently("changed", "ns", { v: "2" });
    s.transport.delete("gone", "ns", true);
    s.transport.putSilently("new", "ns");
    s.transport.openWatch()?.send("ERROR", {
      kind: "Status",
      code: 410,
      reason: "Expired",
      message: "too old resource version: 1 (5)",
    });
    await settle();
    assert.equal(s.transport.lists.length, 2);
    assert.deepEqual(s.events.sort(), [
      "add ns/new rv-a0005",
      "delete ns/gone",
      "update ns/changed rv-a0002->rv-a0004",
    ]);
    assert.equal(s.transport.watches.length, 2);
    assert.equal(s.transport.watches[1]?.query.resourceVersion, "rv-a0005");
    assert.equal(await metric(s.metrics, "informer_relists_total"), 1);
    assert.equal(await metric(s.metrics, "informer_watch_errors_total", { kind: "gone" }), 1);
    assert.ok(s.lines.some((l) => l.message === "resource version expired; relisting"));
  });

  it("relists on an HTTP 410 answer to the watch request", async () => {
    const s = await setup({}, (t) =>
      t.watchFailures.push(new ApiError(410, "Gone", { code: 410, reason: "Gone" })),
    );
    assert.equal(s.transport.lists.length, 2);
    assert.equal(s.transport.watches.length, 1);
  });

  it("backs off when expiries repeat", async () => {
    const gone = () => new ApiError(410, "Gone");
    const s = await setup({}, (t) => t.watchFailures.push(gone(), gone()));
    assert.equal(s.transport.lists.length, 2, "first expiry relists at once");
    await s.clock.advance(1_599);
    assert.equal(s.transport.lists.length, 2, "second one waits");
    await s.clock.advance(1);
    assert.equal(s.transport.lists.length, 3);
  });

  it("restarts the watch after every kind of failure, from the last version, with growing capped backoff", async () => {
    const failures: [unknown, string][] = [
      [new ApiError(500, "boom"), "server_error"],
      [new ApiError(403, "forbidden"), "forbidden"],
      [
        Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6443"), { code: "ECONNREFUSED" }),
        "connection_refused",
      ],
      [Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }), "network"],
      [new StreamClosedError("cut"), "stream_closed"],
      [new ApiError(429, "slow down"), "throttled"],
      [new Error("something odd"), "unknown"],
    ];
    const s = await setup({ backoffMaxMs: 30_000 });
    const expectedDelays = [800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000];
    for (const [i, [err, kind]] of failures.entries()) {
      const w = s.transport.openWatch();
      assert.ok(w, `watch ${i} is open`);
      w.fail(err);
      await settle();
      assert.equal(s.transport.openWatch(), undefined);
      assert.equal(s.clock.nextDue(), s.clock.now() + (expectedDelays[i] ?? 0), `delay after ${kind}`);
      await s.clock.advance(expectedDelays[i] ?? 0);
      assert.equal(await metric(s.metrics, "informer_watch_errors_total", { kind }), 1, kind);
    }
    assert.equal(s.transport.lists.length, 1, "no relist: the resource version is still good");
    assert.equal(s.transport.watches.length, failures.length + 1);
    assert.ok(s.transport.watches.every((w) => w.query.resourceVersion === "rv-a0000"));
    assert.equal(await metric(s.metrics, "informer_restarts_total"), failures.length);
    assert.ok(s.lines.some((l) => l.message === "watch reconnected"));
    assert.ok(
      s.lines.some((l) => l.message === "list/watch failed; retrying" && l.kind === "connection_refused"),
    );
  });

  it("resets the backoff after a watch stayed healthy for the reset period", async () => {
    const s = await setup({ backoffResetAfterMs: 120_000, inactivityTimeoutMs: 1_000_000 });
    s.transport.openWatch()?.fail(new ApiError(500, "x"));
    await s.clock.advance(800);
    s.transport.openWatch()?.fail(new ApiError(500, "x"));
    await settle();
    assert.equal(s.clock.nextDue(), s.clock.now() + 1_600);
    await s.clock.advance(1_600);
    await s.clock.advance(120_000);
    s.transport.openWatch()?.fail(new ApiError(500, "x"));
    await settle();
    assert.equal(s.clock.nextDue(), s.clock.now() + 800);
  });

  it("rewatches at once when the server ends a watch normally, and backs off when it ends at once", async () => {
    const s = await setup({ inactivityTimeoutMs: 1_000_000 });
    await s.clock.advance(300_000);
    s.transport.openWatch()?.close();
    await settle();
    assert.equal(s.transport.watches.length, 2, "normal end: immediate rewatch");
    s.transport.openWatch()?.close();
    await settle();
    assert.equal(s.transport.watches.length, 2, "empty watch that ended at once: back off");
    assert.equal(await metric(s.metrics, "informer_watch_errors_total", { kind: "closed" }), 1);
    await s.clock.advance(800);
    assert.equal(s.transport.watches.length, 3);
  });

  it("aborts a watch that received no bytes for the inactivity period and rewatches", async () => {
    const s = await setup({ inactivityTimeoutMs: 10_000 });
    const first = s.transport.openWatch();
    await s.clock.advance(6_000);
    first?.sink.activity();
    await s.clock.advance(6_000);
    assert.equal(first?.signal.aborted, false, "bytes 6 s ago keep the watch alive");
    first?.send("BOOKMARK", { metadata: { resourceVersion: "rv-b" } });
    await s.clock.advance(9_999);
    assert.equal(first?.signal.aborted, false);
    await s.clock.advance(1);
    assert.equal(first?.signal.aborted, true, "silent for 10 s: aborted");
    assert.equal(await metric(s.metrics, "informer_watch_errors_total", { kind: "inactivity" }), 1);
    await s.clock.advance(800);
    assert.equal(s.transport.watches.length, 2);
    assert.equal(s.transport.watches[1]?.query.resourceVersion, "rv-b");
  });

  it("keeps retrying a failing list and only then reports synced", async () => {
    const s = await setup({}, (t) => {
      t.listFailures.push(
        new ApiError(503, "unavailable"),
        Object.assign(new Error("refused"), { code: "ECONNREFUSED" }),
      );
      t.putSilently("a", "ns");
    });
    assert.equal(s.informer.hasSynced(), false);
    let synced = false;
    void s.informer.waitForSync().then(() => {
      synced = true;
    });
    await s.clock.advance(800);
    assert.equal(synced, false);
    await s.clock.advance(1_600);
    assert.equal(synced, true);
    assert.equal(s.transport.lists.length, 3);
    assert.deepEqual(s.events, ["add ns/a rv-a0001"]);
  });

  it("treats an ERROR event other than 410 as a failure without relisting", async () => {
    const s = await setup();
    s.transport.openWatch()?.send("ERROR", { kind: "Status", code: 500, message: "etcd down" });
    await s.clock.advance(800);
    assert.equal(s.transport.lists.length, 1);
    assert.equal(s.transport.watches.length, 2);
    assert.equal(await metric(s.metrics, "informer_watch_errors_total", { kind: "server_error" }), 1);
  });

  it("treats a malformed event as a failure", async () => {
    const s = await setup();
    s.transport.openWatch()?.send("ADDED", { metadata: {} });
    await settle();
    assert.equal(await metric(s.metrics, "informer_watch_errors_total", { kind: "decode" }), 1);
  });

  it("keeps going when a handler throws", async () => {
    const s = await setup();
    s.informer.addHandler({
      add: () => {
        throw new Error("handler bug");
      },
    });
    s.transport.put("a", "ns");
    s.transport.put("b", "ns");
    assert.equal(s.informer.list().length, 2);
    assert.equal(s.lines.filter((l) => l.message === "event handler failed").length, 2);
  });

  it("replays the cache to a handler added after sync, and unsubscribes", async () => {
    const s = await setup({}, (t) => t.putSilently("a", "ns"));
    const seen: string[] = [];
    const unsubscribe = s.informer.addHandler({ add: (o) => seen.push(keyOf(o)) });
    assert.deepEqual(seen, ["ns/a"]);
    unsubscribe();
    s.transport.put("b", "ns");
    assert.deepEqual(seen, ["ns/a"]);
  });

  it("redelivers every object as an update each resync period", async () => {
    const s = await setup({ resyncPeriodMs: 60_000, inactivityTimeoutMs: 1_000_000 }, (t) =>
      t.putSilently("a", "ns"),
    );
    s.events.length = 0;
    await s.clock.advance(60_000);
    assert.deepEqual(s.events, ["update ns/a rv-a0001->rv-a0001"]);
    await s.clock.advance(60_000);
    assert.equal(s.events.length, 2);
  });

  it("stop aborts the running watch and leaves no timers", async () => {
    const s = await setup({ resyncPeriodMs: 1_000 });
    const w = s.transport.openWatch();
    await s.informer.stop();
    assert.equal(w?.signal.aborted, true);
    assert.equal(s.clock.pending(), 0);
  });

  it("stop during a backoff sleep returns at once", async () => {
    const s = await setup();
    s.transport.openWatch()?.fail(new ApiError(500, "x"));
    await settle();
    assert.equal(s.clock.pending(), 1);
    await s.informer.stop();
    assert.equal(s.clock.pending(), 0);
  });
});

describe("InformerFactory", () => {
  it("shares one informer per resource, namespace and selectors", async () => {
    const transport = new FakeTransport();
    const clock = new FakeClock();
    const factory = new InformerFactory({ transport, clock, inactivityTimeoutMs: 1_000_000 });
    const cms = { group: "", version: "v1", resource: "configmaps", namespace: "ns" };
    const a = factory.informer(cms);
    const b = factory.informer({ ...cms });
    const c = factory.informer({ ...cms, namespace: "other" });
    const d = factory.informer({ ...cms, labelSelector: "x=y" });
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.notEqual(a, d);
    factory.start();
    const late = factory.informer({ group: "apps", version: "v1", resource: "deployments" });
    await factory.waitForSync();
    assert.equal(late.hasSynced(), true);
    assert.equal(late.name, "apps/deployments");
    assert.equal(a.name, "configmaps@ns");
    assert.equal(transport.watches.length, 4, "one watch per distinct informer");
    await factory.stop();
    await eventually(() => transport.watches.every((w) => w.signal.aborted));
    assert.equal(clock.pending(), 0);
  });
});
