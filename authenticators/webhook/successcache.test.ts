import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../../kube/clock.ts";
import { SuccessCache, tokenHash } from "./successcache.ts";

const user = (username: string) => ({ username, groups: ["g"] });

describe("SuccessCache", () => {
  it("keys by the token's SHA-256, never the token", () => {
    assert.equal(tokenHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("expires entries after the TTL and hands out copies", () => {
    const clock = new FakeClock();
    const cache = new SuccessCache({ ttlMs: 1_000, maxEntries: 10, clock });
    cache.set("a", user("alice"));
    const copy = cache.get("a");
    copy?.groups.push("changed");
    assert.deepEqual(cache.get("a"), user("alice"));
    clock.step(999);
    assert.ok(cache.get("a"));
    clock.step(1);
    assert.equal(cache.get("a"), undefined);
    assert.equal(cache.size, 0);
  });

  it("drops expired entries on store and the oldest entry when full", () => {
    const clock = new FakeClock();
    const cache = new SuccessCache({ ttlMs: 1_000, maxEntries: 2, clock });
    cache.set("a", user("a"));
    clock.step(600);
    cache.set("b", user("b"));
    cache.set("a", user("a2"));
    cache.set("c", user("c"));
    assert.equal(cache.get("b"), undefined, "the oldest made room");
    assert.deepEqual(cache.get("a"), user("a2"), "storing again renews an entry");
    clock.step(1_000);
    cache.set("d", user("d"));
    assert.equal(cache.size, 1, "a and c, both stored at 600, expired at 1600 and were dropped");
  });

  it("stores nothing when turned off", () => {
    const cache = new SuccessCache({ ttlMs: 0, maxEntries: 10, clock: new FakeClock() });
    cache.set("a", user("a"));
    assert.equal(cache.size, 0);
  });
});
