import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { Holder, sameValue } from "./holder.ts";

describe("Holder", () => {
  it("tells listeners of changes only, by its equality rule, until they unsubscribe", () => {
    const holder = new Holder<{ n: number } | undefined>(undefined, { equal: isDeepStrictEqual });
    const seen: ({ n: number } | undefined)[] = [];
    const unsubscribe = holder.onChange((v) => seen.push(v));
    holder.set({ n: 1 });
    holder.set({ n: 1 });
    holder.set({ n: 2 });
    unsubscribe();
    holder.set({ n: 3 });
    assert.deepEqual(seen, [{ n: 1 }, { n: 2 }]);
    assert.deepEqual(holder.get(), { n: 3 });
  });

  it("compares identity with sameValue", () => {
    const holder = new Holder<{ n: number } | undefined>(undefined, { equal: sameValue });
    let changes = 0;
    holder.onChange(() => changes++);
    const value = { n: 1 };
    holder.set(value);
    holder.set(value);
    holder.set({ n: 1 });
    assert.equal(changes, 2);
  });

  it("refuses a value that fails validation and keeps the one it had", () => {
    const holder = new Holder(1, {
      equal: sameValue,
      validate: (v) => {
        if (v < 0) throw new Error("negative");
      },
    });
    let changes = 0;
    holder.onChange(() => changes++);
    assert.throws(() => holder.set(-1), /negative/);
    assert.equal(holder.get(), 1);
    assert.equal(changes, 0);
  });

  it("stores its own copy", () => {
    const holder = new Holder<number[]>([], {
      equal: isDeepStrictEqual,
      copy: (v) => Object.freeze([...v]) as number[],
    });
    const mine = [1];
    holder.set(mine);
    mine.push(2);
    assert.deepEqual(holder.get(), [1]);
    assert.ok(Object.isFrozen(holder.get()));
  });

  it("lets a listener unsubscribe while it is told", () => {
    const holder = new Holder(0, { equal: sameValue });
    const seen: string[] = [];
    const first = holder.onChange(() => {
      seen.push("first");
      first();
    });
    holder.onChange(() => seen.push("second"));
    holder.set(1);
    holder.set(2);
    assert.deepEqual(seen, ["first", "second", "second"]);
  });
});
