import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LogRateLimiter } from "./ratelimit.ts";

describe("LogRateLimiter", () => {
  it("lets one line per key and interval through, then says how many it left out", () => {
    let now = 0;
    const limiter = new LogRateLimiter({ intervalMs: 10_000, now: () => now });
    assert.deepEqual(limiter.take("a"), { log: true, suppressed: 0 });
    assert.deepEqual(limiter.take("a"), { log: false });
    assert.deepEqual(limiter.take("a"), { log: false });
    assert.deepEqual(limiter.take("b"), { log: true, suppressed: 0 });
    now = 10_000;
    assert.deepEqual(limiter.take("a"), { log: true, suppressed: 2 });
    assert.deepEqual(limiter.take("a"), { log: false });
  });

  it("remembers at most maxKeys keys, forgetting the oldest", () => {
    const limiter = new LogRateLimiter({ intervalMs: 10_000, maxKeys: 2, now: () => 0 });
    for (const key of ["a", "b", "c"]) assert.equal(limiter.take(key).log, true);
    assert.equal(limiter.take("a").log, true);
    assert.equal(limiter.take("c").log, false);
  });
});
