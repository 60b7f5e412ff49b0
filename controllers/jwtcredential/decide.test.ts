import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decideKeys,
  keysFromSecretData,
  type RotationPolicy,
  rotationPolicy,
  type StoredKey,
  secretDataFor,
} from "./decide.ts";

const minute = 60_000;
const hour = 60 * minute;
const policy: RotationPolicy = {
  rotateAfterMs: 24 * hour,
  publishBeforeSigningMs: 5 * minute,
  retainAfterRetiredMs: 10 * minute,
};
const key = (kid: string, createdAtMs: number): StoredKey => ({
  kid,
  createdAtMs,
  privateKeyPEM: `pem ${kid}`,
});
const t0 = Date.parse("2026-01-01T00:00:00Z");

describe("decideKeys", () => {
  it("asks for a first key when there is none", () => {
    assert.deepEqual(decideKeys([], t0, policy), {
      add: true,
      remove: [],
      signing: undefined,
      published: [],
      nextChangeAtMs: t0,
    });
  });

  it("signs with a lone key at once and wakes when it is due for rotation", () => {
    const d = decideKeys([key("a", t0)], t0, policy);
    assert.deepEqual(d, {
      add: false,
      remove: [],
      signing: "a",
      published: ["a"],
      nextChangeAtMs: t0 + 24 * hour,
    });
  });

  it("walks one rotation with an injected clock: publish, then sign, then retire, then drop", () => {
    let keys = [key("a", t0)];
    // Due: a new key is asked for; the old one signs meanwhile.
    let d = decideKeys(keys, t0 + 24 * hour, policy);
    assert.equal(d.add, true);
    assert.equal(d.signing, "a");
    const bAt = t0 + 24 * hour;
    keys = [...keys, key("b", bAt)];
    // Published but not yet signing: a's tokens and b's key are both in the JWKS.
    d = decideKeys(keys, bAt + 1000, policy);
    assert.deepEqual(d, {
      add: false,
      remove: [],
      signing: "a",
      published: ["a", "b"],
      nextChangeAtMs: bAt + 5 * minute,
    });
    // b signs once it has been published long enough; a stays until its last token expired.
    d = decideKeys(keys, bAt + 5 * minute, policy);
    assert.deepEqual(d, {
      add: false,
      remove: [],
      signing: "b",
      published: ["a", "b"],
      nextChangeAtMs: bAt + 15 * minute,
    });
    d = decideKeys(keys, bAt + 15 * minute - 1, policy);
    assert.deepEqual(d.remove, []);
    d = decideKeys(keys, bAt + 15 * minute, policy);
    assert.deepEqual(d, {
      add: false,
      remove: ["a"],
      signing: "b",
      published: ["b"],
      nextChangeAtMs: bAt + 24 * hour,
    });
  });

  it("orders by creation time, not by the order in the Secret, and drops every expired old key at once", () => {
    const keys = [key("c", t0 + 2 * hour), key("a", t0), key("b", t0 + hour)];
    const d = decideKeys(keys, t0 + 3 * hour, policy);
    assert.equal(d.signing, "c");
    assert.deepEqual(d.remove, ["a", "b"]);
    assert.deepEqual(d.published, ["c"]);
  });

  it("retains a retired key for the longest token lifetime and some leeway", () => {
    const p = rotationPolicy(300);
    assert.equal(p.retainAfterRetiredMs, 300_000 + 5 * minute);
    assert.ok(p.publishBeforeSigningMs < p.rotateAfterMs);
  });
});

describe("the Secret's keys", () => {
  it("round-trips through the Secret's data", () => {
    const keys = [key("b", t0 + 1000), key("a", t0)];
    const { keys: read, problems } = keysFromSecretData(secretDataFor(keys));
    assert.deepEqual(problems, []);
    assert.deepEqual(read, [key("a", t0), key("b", t0 + 1000)]);
  });

  it("leaves out what does not parse, saying why", () => {
    const b64 = (v: unknown) => ({ "keys.json": Buffer.from(JSON.stringify(v)).toString("base64") });
    assert.deepEqual(keysFromSecretData(undefined), { keys: [], problems: [] });
    assert.deepEqual(keysFromSecretData({ "keys.json": "bm90IGpzb24=" }).problems, ["keys.json is not JSON"]);
    assert.deepEqual(keysFromSecretData(b64({})).problems, ['keys.json has no "keys" list']);
    const mixed = keysFromSecretData(
      b64({
        keys: [
          { kid: "x", createdAt: "yesterday", privateKeyPEM: "p" },
          { kid: "y", createdAt: "2026-01-01T00:00:00Z", privateKeyPEM: "p" },
        ],
      }),
    );
    assert.deepEqual(
      mixed.keys.map((k) => k.kid),
      ["y"],
    );
    assert.deepEqual(mixed.problems, ["keys.json keys[0] needs kid, createdAt (RFC 3339) and privateKeyPEM"]);
  });
});
