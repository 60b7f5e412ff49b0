import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Backoff } from "./backoff.ts";

describe("Backoff", () => {
  it("doubles up to the cap and starts over after reset", () => {
    const b = new Backoff({ initialMs: 800, maxMs: 30_000, random: () => 0 });
    const delays = Array.from({ length: 8 }, () => b.next());
    assert.deepEqual(delays, [800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000]);
    assert.equal(b.attempts, 8);
    b.reset();
    assert.equal(b.next(), 800);
  });

  it("jitters downwards only, so the cap holds", () => {
    const b = new Backoff({ initialMs: 1_000, maxMs: 1_000, jitter: 0.5, random: () => 0.999 });
    const d = b.next();
    assert.ok(d >= 500 && d <= 1_000, String(d));
  });

  it("does not overflow after very many failures", () => {
    const b = new Backoff({ initialMs: 5, maxMs: 1_000, random: () => 0 });
    for (let i = 0; i < 2_000; i++) b.next();
    assert.equal(b.next(), 1_000);
  });
});
