import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock, realClock, rfc3339, rfc3339Micro, sleep } from "./clock.ts";

describe("FakeClock", () => {
  it("fires due timers in time order, ties in scheduling order, including ones scheduled on the way", () => {
    const clock = new FakeClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push("b@20"), 20);
    clock.setTimeout(() => {
      fired.push("a@10");
      clock.setTimeout(() => fired.push("c@15"), 5);
    }, 10);
    clock.setTimeout(() => fired.push("b2@20"), 20);
    const cancelled = clock.setTimeout(() => fired.push("never"), 15);
    cancelled.cancel();
    clock.step(19);
    assert.deepEqual(fired, ["a@10", "c@15"]);
    assert.equal(clock.now(), 19);
    clock.step(1);
    assert.deepEqual(fired, ["a@10", "c@15", "b@20", "b2@20"]);
    assert.equal(clock.pending(), 0);
  });

  it("advance lets async code waiting on the clock run between timers", async () => {
    const clock = new FakeClock(0);
    const seen: number[] = [];
    const loop = async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(clock, 100);
        seen.push(clock.now());
      }
    };
    const done = loop();
    await clock.advance(300);
    await done;
    assert.deepEqual(seen, [100, 200, 300]);
  });

  it("sleep resolves false at once when aborted and leaves no timer behind", async () => {
    const clock = new FakeClock(0);
    const abort = new AbortController();
    const slept = sleep(clock, 1_000, abort.signal);
    assert.equal(clock.pending(), 1);
    abort.abort();
    assert.equal(await slept, false);
    assert.equal(clock.pending(), 0);
    assert.equal(await sleep(clock, 1, abort.signal), false);
  });

  it("the real clock schedules and cancels", async () => {
    let fired = false;
    realClock
      .setTimeout(() => {
        fired = true;
      }, 50)
      .cancel();
    assert.equal(await sleep(realClock, 5), true);
    assert.equal(fired, false);
  });
});

describe("time formats", () => {
  it("formats metav1.Time with seconds and MicroTime with six fractional digits", () => {
    const ms = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    assert.equal(rfc3339(ms), "2026-01-02T03:04:05Z");
    assert.equal(rfc3339Micro(ms), "2026-01-02T03:04:05.678000Z");
  });
});
