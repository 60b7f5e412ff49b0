import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Turns } from "./turns.ts";

/** Three steps that each, when they run, queue an immediate that records "io" (as I/O would). */
async function order(turns: Turns): Promise<string[]> {
  const seen: string[] = [];
  await Promise.all(
    ["a", "b", "c"].map(async (name) => {
      await turns.take();
      seen.push(name);
      setImmediate(() => seen.push(`io after ${name}`));
    }),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return seen;
}

describe("Turns", () => {
  it("lets the event loop run between steps once a turn's slice is used up", async () => {
    assert.deepEqual(await order(new Turns(0)), ["a", "io after a", "b", "io after b", "c", "io after c"]);
  });

  it("runs the steps of one slice back to back, in arrival order", async () => {
    assert.deepEqual(await order(new Turns(Number.POSITIVE_INFINITY)), [
      "a",
      "b",
      "c",
      "io after a",
      "io after b",
      "io after c",
    ]);
  });

  it("starts a new turn for a step that arrives after the queue ran dry", async () => {
    const turns = new Turns(0);
    assert.deepEqual(await order(turns), ["a", "io after a", "b", "io after b", "c", "io after c"]);
    assert.deepEqual(await order(turns), ["a", "io after a", "b", "io after b", "c", "io after c"]);
  });
});
