import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock, settle } from "../../kube/clock.ts";
import { WorkQueue } from "./workqueue.ts";

/** Takes every key that is ready now, without blocking. */
async function drainReady(q: WorkQueue): Promise<string[]> {
  const keys: string[] = [];
  while (q.len() > 0) {
    const key = await q.get();
    assert.ok(key !== undefined);
    keys.push(key);
  }
  return keys;
}

describe("WorkQueue", () => {
  it("hands out a key added many times while waiting once, in FIFO order", async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    q.add("a");
    q.add("b");
    q.add("a");
    q.add("a");
    assert.deepEqual(await drainReady(q), ["a", "b"]);
  });

  it("never hands a key to two workers; a re-add while in flight is processed once after done", async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    q.add("a");
    const first = await q.get();
    assert.equal(first, "a");
    q.add("a");
    q.add("a");
    assert.equal(q.len(), 0, "in-flight key must not be handed out again");
    let second: string | undefined;
    void q.get().then((k) => {
      second = k;
    });
    await settle();
    assert.equal(second, undefined);
    q.done("a");
    await settle();
    assert.equal(second, "a");
    q.done("a");
    assert.equal(q.len(), 0);
  });

  it("wakes a blocked getter when a key arrives", async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    const pending = q.get();
    q.add("x");
    assert.equal(await pending, "x");
  });

  it("delays addAfter keys on the clock; the earliest pending delay wins", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter("a", 100);
    q.addAfter("a", 500);
    q.addAfter("b", 50);
    clock.step(49);
    assert.equal(q.len(), 0);
    clock.step(1);
    assert.deepEqual(await drainReady(q), ["b"]);
    clock.step(50);
    assert.deepEqual(await drainReady(q), ["a"]);
    q.done("a");
    q.done("b");
    clock.step(1_000);
    assert.equal(q.len(), 0, "the later duplicate delay was dropped");
  });

  it("moves a pending delay earlier when a shorter one is requested", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter("a", 500);
    q.addAfter("a", 10);
    clock.step(10);
    assert.deepEqual(await drainReady(q), ["a"]);
    q.done("a");
    clock.step(1_000);
    assert.equal(q.len(), 0);
  });

  it("backs off per key exponentially from 5 ms up to the cap; forget resets", () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, maxDelayMs: 1_000 });
    const delays = [0, 1, 2, 3, 4, 8, 20].map((n) => q.backoffFor(n));
    assert.deepEqual(delays, [5, 10, 20, 40, 80, 1_000, 1_000]);

    q.addRateLimited("a");
    q.addRateLimited("b");
    assert.equal(q.numRequeues("a"), 1);
    clock.step(4);
    assert.equal(q.len(), 0);
    clock.step(1);
    assert.equal(q.len(), 2);

    for (let i = 1; i < 12; i++) q.addRateLimited("a");
    assert.equal(q.numRequeues("a"), 12);
    assert.equal(q.numRequeues("b"), 1);
    q.forget("a");
    assert.equal(q.numRequeues("a"), 0);
  });

  it("retryFailedNow adds keys with failures at once, keeping their counts", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    for (let i = 0; i < 10; i++) q.addRateLimited("failing");
    q.add("fine");
    assert.deepEqual(await drainReady(q), ["fine"]);
    q.retryFailedNow();
    assert.deepEqual(await drainReady(q), ["failing"]);
    assert.equal(q.numRequeues("failing"), 10);
  });

  it("a rate-limited key comes back after its delay", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.add("a");
    const key = await q.get();
    assert.equal(key, "a");
    q.addRateLimited("a");
    q.addRateLimited("a");
    q.done("a");
    clock.step(5);
    assert.deepEqual(await drainReady(q), ["a"], "first (5 ms) delay wins over the second (10 ms)");
  });

  it("reports depth changes", () => {
    const depths: number[] = [];
    const q = new WorkQueue({ clock: new FakeClock(), onDepth: (d) => depths.push(d) });
    q.add("a");
    q.add("b");
    void q.get();
    assert.deepEqual(depths, [1, 2, 1]);
  });

  it("shutDown releases blocked getters, drops waiting and delayed keys, and waits for in-flight keys", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.add("busy");
    assert.equal(await q.get(), "busy");
    q.add("waiting");
    q.addAfter("later", 100);
    assert.equal(clock.pending(), 1);

    let drained = false;
    const shutdown = q.shutDown().then(() => {
      drained = true;
    });
    assert.equal(clock.pending(), 0, "delayed keys' timers are cancelled");
    assert.equal(await q.get(), undefined);
    q.add("ignored");
    assert.equal(q.len(), 0);
    await settle();
    assert.equal(drained, false, "still waiting for the in-flight key");
    q.done("busy");
    await shutdown;
    assert.equal(drained, true);
  });

  it("shutDown with nothing in flight resolves at once and wakes every blocked worker", async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    const workers = [q.get(), q.get(), q.get()];
    await q.shutDown();
    assert.deepEqual(await Promise.all(workers), [undefined, undefined, undefined]);
    assert.equal(q.shuttingDown, true);
  });
});
