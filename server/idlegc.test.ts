import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { collectWhenIdle } from "./idlegc.ts";

const MiB = 2 ** 20;
const ticks = (n: number) => new Promise((resolve) => setTimeout(resolve, n * 5 + 50));

describe("collectWhenIdle", () => {
  it("collects once the loop is idle after the heap grew, and not again until it grows again", async () => {
    let heap = 20 * MiB;
    let busy = 0.9;
    const collections: number[] = [];
    const stop = collectWhenIdle({
      intervalMs: 1,
      heapTotal: () => heap,
      utilization: () => busy,
      collect: () => {
        collections.push(heap);
        heap = 24 * MiB;
      },
    });
    try {
      heap = 60 * MiB;
      await ticks(10);
      assert.deepEqual(collections, [], "not while busy");
      busy = 0.01;
      await ticks(10);
      assert.deepEqual(collections, [60 * MiB], "once idle");
      heap = 28 * MiB;
      await ticks(10);
      assert.deepEqual(collections, [60 * MiB], "not for growth under the threshold");
    } finally {
      stop();
    }
  });

  it("collects the start-up's heap at the first idle interval, and takes a heap V8 shrank itself as the new floor", async () => {
    let heap = 40 * MiB;
    const collections: number[] = [];
    const stop = collectWhenIdle({
      intervalMs: 1,
      heapTotal: () => heap,
      utilization: () => 0,
      collect: () => collections.push(heap),
    });
    try {
      await ticks(10);
      assert.deepEqual(collections, [40 * MiB]);
      heap = 20 * MiB;
      await ticks(10);
      heap = 27 * MiB;
      await ticks(10);
      assert.deepEqual(collections, [40 * MiB]);
      heap = 29 * MiB;
      await ticks(10);
      assert.deepEqual(collections, [40 * MiB, 29 * MiB]);
    } finally {
      stop();
    }
  });

  it("runs V8's own full collection by default", async () => {
    let garbage: object | undefined = { big: new Array(1000).fill("x") };
    const ref = new WeakRef(garbage);
    garbage = undefined;
    const stop = collectWhenIdle({ intervalMs: 1, minGrowthBytes: 0, utilization: () => 0 });
    try {
      await ticks(10);
      assert.equal(ref.deref(), undefined);
    } finally {
      stop();
    }
  });
});
