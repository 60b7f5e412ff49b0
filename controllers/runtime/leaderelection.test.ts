import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { FakeClock, settle } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import {
  defaultLeaderElectionTiming,
  LeaderElector,
  leaderOnlyClient,
  NOT_LEADER_MESSAGE,
  NotLeaderError,
} from "./leaderelection.ts";
import { FakeLeaseStore, FakeRestClient } from "./testing.ts";

const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

interface Candidate {
  elector: LeaderElector;
  changes: boolean[];
  stop: () => Promise<void>;
  metrics: Metrics;
  lines: Record<string, unknown>[];
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

function candidate(
  clock: FakeClock,
  store: FakeLeaseStore,
  identity: string,
  options: { releaseOnStop?: boolean; random?: () => number } = {},
): Candidate {
  const metrics = new Metrics();
  const { log, lines } = memoryLogger();
  const elector = new LeaderElector({
    lease: store.client(),
    identity,
    clock,
    metrics,
    log,
    random: options.random ?? (() => 0),
    releaseOnStop: options.releaseOnStop,
    ...TIMING,
  });
  const changes: boolean[] = [];
  elector.onChange((leader) => changes.push(leader));
  const abort = new AbortController();
  const done = elector.run(abort.signal);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    abort.abort();
    await done;
  };
  stops.push(stop);
  return { elector, changes, stop, metrics, lines };
}

async function gauge(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const data = await metrics.registry.getSingleMetric(`concierge_${name}`)?.get();
  return (data?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("LeaderElector", () => {
  it("creates the lease when there is none and leads", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(clock, store, "pod-a");
    await settle();
    assert.equal(a.elector.isLeader(), true);
    assert.deepEqual(a.changes, [true]);
    assert.equal(store.lease?.spec?.holderIdentity, "pod-a");
    assert.equal(store.lease?.spec?.leaseDurationSeconds, 15);
    assert.match(store.lease?.spec?.renewTime ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.equal(await gauge(a.metrics, "leader_election_is_leader"), 1);
    assert.equal(await gauge(a.metrics, "leader_election_transitions_total", { to: "leader" }), 1);
  });

  it("elects exactly one of two candidates; the other sees who leads", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(clock, store, "pod-a");
    const b = candidate(clock, store, "pod-b");
    await settle();
    for (let i = 0; i < 20; i++) {
      await clock.advance(1_000);
      assert.equal([a, b].filter((c) => c.elector.isLeader()).length, 1);
    }
    assert.equal(a.elector.isLeader(), true);
    assert.equal(b.elector.observedHolder(), "pod-a");
    assert.deepEqual(b.changes, []);
  });

  it("renews every retry period and keeps acquireTime and transitions", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    candidate(clock, store, "pod-a");
    await settle();
    const acquired = store.lease?.spec?.acquireTime;
    const writes = store.writes;
    await clock.advance(10_000);
    assert.equal(store.writes - writes, 5);
    assert.equal(store.lease?.spec?.acquireTime, acquired);
    assert.notEqual(store.lease?.spec?.renewTime, acquired);
    assert.equal(store.lease?.spec?.leaseTransitions, 0);
  });

  it("on graceful stop releases the lease, and the other candidate takes over at its next retry", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(clock, store, "pod-a");
    const b = candidate(clock, store, "pod-b");
    await settle();
    await a.stop();
    assert.deepEqual(a.changes, [true, false]);
    assert.equal(store.lease?.spec?.holderIdentity, "");
    assert.equal(a.elector.isLeader(), false);
    await clock.advance(2_000);
    assert.equal(b.elector.isLeader(), true);
    assert.equal(store.lease?.spec?.leaseTransitions, 1);
  });

  it("after a crash, the other candidate waits a full lease duration from when it saw the last renewal", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(clock, store, "pod-a", { releaseOnStop: false });
    await settle();
    const b = candidate(clock, store, "pod-b");
    await settle();
    await a.stop();
    assert.equal(store.lease?.spec?.holderIdentity, "pod-a", "not released");
    // b saw the lease at t=0 and will see it unchanged from now on.
    await clock.advance(14_000);
    assert.equal(b.elector.isLeader(), false);
    await clock.advance(2_000);
    assert.equal(b.elector.isLeader(), true);
    assert.equal(store.lease?.spec?.holderIdentity, "pod-b");
  });

  it("judges expiry by its own observation time, not by the holder's renewTime", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.lease = {
      metadata: { name: "lease", namespace: "ns", resourceVersion: "old" },
      spec: { holderIdentity: "ghost", leaseDurationSeconds: 15, renewTime: "2020-01-01T00:00:00.000000Z" },
    };
    const b = candidate(clock, store, "pod-b");
    await settle();
    assert.equal(b.elector.isLeader(), false, "a renewTime in the past proves nothing about clock skew");
    await clock.advance(16_000);
    assert.equal(b.elector.isLeader(), true);
  });

  it("steps down when it cannot renew before the deadline, then re-campaigns", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(clock, store, "pod-a");
    await settle();
    store.failing = true;
    await clock.advance(9_999);
    assert.equal(a.elector.isLeader(), true);
    await clock.advance(1);
    assert.equal(a.elector.isLeader(), false);
    assert.deepEqual(a.changes, [true, false]);
    assert.ok(a.lines.some((l) => l.message === "stopped leading"));
    store.failing = false;
    await clock.advance(2_000);
    assert.equal(a.elector.isLeader(), true, "nobody else took it: leads again");
    assert.deepEqual(a.changes, [true, false, true]);
  });

  it("stops claiming leadership at the deadline even while a renewal hangs", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(clock, store, "pod-a");
    await settle();
    store.hanging = true;
    await clock.advance(2_000);
    clock.step(8_000);
    assert.equal(a.elector.isLeader(), false, "time check, before the loop even runs");
    await settle();
    assert.deepEqual(a.changes, [true, false]);
    store.hanging = false;
  });

  it("steps down at once when it sees another holder", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(clock, store, "pod-a");
    await settle();
    store.overwrite("usurper");
    await clock.advance(2_000);
    assert.equal(a.elector.isLeader(), false);
    assert.equal(a.elector.observedHolder(), "usurper");
    assert.ok(a.lines.some((l) => l.message === "observed a new leader" && l.leader === "usurper"));
  });

  it("guards writes with upstream's message", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.lease = {
      metadata: { name: "lease", namespace: "ns", resourceVersion: "1" },
      spec: { holderIdentity: "other", leaseDurationSeconds: 15 },
    };
    const b = candidate(clock, store, "pod-b");
    await settle();
    assert.throws(() => b.elector.assertLeader(), new NotLeaderError());
    assert.throws(() => b.elector.assertLeader(), { message: NOT_LEADER_MESSAGE });
    assert.equal(NOT_LEADER_MESSAGE, "write attempt rejected as client is not leader");
    let wrote = false;
    const write = b.elector.guard(async (value: string) => {
      wrote = true;
      return value;
    });
    await assert.rejects(write("x"), NotLeaderError);
    assert.equal(wrote, false);

    const raw = new FakeRestClient();
    const client = leaderOnlyClient(raw, b.elector);
    await client.request({ method: "GET", path: "/api/v1/namespaces" });
    await assert.rejects(client.request({ method: "PATCH", path: "/x", body: {} }), {
      message: NOT_LEADER_MESSAGE,
    });
    assert.deepEqual(
      raw.requests.map((r) => r.method),
      ["GET"],
    );

    await clock.advance(16_000);
    assert.equal(b.elector.isLeader(), true);
    assert.equal(await write("y"), "y");
    await client.request({ method: "PATCH", path: "/x", body: {} });
    assert.equal(raw.writes().length, 1);
  });

  it("by default takes over from a crashed leader within kube-controller-manager's 15 s lease", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    // A crash releases nothing.
    const elector = new LeaderElector({
      lease: store.client(),
      identity: "pod-a",
      clock,
      random: () => 0,
      releaseOnStop: false,
    });
    const abort = new AbortController();
    const done = elector.run(abort.signal);
    stops.push(async () => {
      abort.abort();
      await done;
    });
    await settle();
    assert.equal(elector.isLeader(), true);
    assert.equal(store.lease?.spec?.leaseDurationSeconds, 15);
    // pod-a is killed: its lease is never renewed again, and pod-b was watching.
    abort.abort();
    await done;
    const b = new LeaderElector({ lease: store.client(), identity: "pod-b", clock, random: () => 0 });
    const abortB = new AbortController();
    const doneB = b.run(abortB.signal);
    stops.push(async () => {
      abortB.abort();
      await doneB;
    });
    await settle();
    await clock.advance(16_000);
    await settle();
    await clock.advance(2_000);
    await settle();
    assert.equal(b.isLeader(), true);
    assert.deepEqual(defaultLeaderElectionTiming, {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
  });

  it("refuses timings where the lease could expire before the leader gives up", () => {
    assert.throws(
      () =>
        new LeaderElector({
          lease: new FakeLeaseStore().client(),
          identity: "x",
          leaseDurationMs: 10_000,
          renewDeadlineMs: 10_000,
          retryPeriodMs: 1_000,
        }),
      /leaseDuration > renewDeadline > retryPeriod/,
    );
  });
});
