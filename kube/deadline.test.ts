import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { deadline } from "./deadline.ts";

describe("deadline", () => {
  it("aborts with a TimeoutError after the timeout, as AbortSignal.timeout does", async () => {
    const { signal } = deadline(5);
    await sleep(30);
    assert.equal(signal.aborted, true);
    assert.ok(signal.reason instanceof DOMException);
    assert.equal(signal.reason.name, "TimeoutError");
  });

  it("aborts with the reason of the first given signal that aborts", () => {
    const a = new AbortController();
    const b = new AbortController();
    const { signal } = deadline(60_000, undefined, a.signal, b.signal);
    b.abort(new Error("b went away"));
    a.abort(new Error("a went away"));
    assert.equal(signal.aborted, true);
    assert.equal((signal.reason as Error).message, "b went away");
  });

  it("starts aborted when a given signal already is", () => {
    const { signal } = deadline(60_000, AbortSignal.abort(new Error("gone")));
    assert.equal((signal.reason as Error).message, "gone");
  });

  it("once cleared, neither the timer nor the given signals abort it", async () => {
    const a = new AbortController();
    const { signal, clear } = deadline(5, a.signal);
    clear();
    a.abort();
    await sleep(30);
    assert.equal(signal.aborted, false);
  });
});
