import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { warningHeaders } from "./warning.ts";

describe("warningHeaders", () => {
  it("quotes each text once, escaping quotes and backslashes", () => {
    assert.deepEqual(warningHeaders(['unknown field "spec.foo"', "a\\b", 'unknown field "spec.foo"', ""]), [
      '299 - "unknown field \\"spec.foo\\""',
      '299 - "a\\\\b"',
    ]);
  });

  it("hands over UTF-8 bytes, as Go writes them", () => {
    const [h] = warningHeaders(['unknown field "spec.é"']);
    assert.equal(Buffer.from(h!, "latin1").toString("utf8"), '299 - "unknown field \\"spec.é\\""');
  });

  it("cuts every text to 256 runes once they pass 4096 in all, then drops the rest", () => {
    const texts = Array.from({ length: 40 }, (_, i) => `${i}`.padEnd(300, "x"));
    const headers = warningHeaders(texts);
    // 13 × 300 runes fit; the 14th turns truncation on; 16 × 256 runes reach 4096.
    assert.equal(headers.length, 16);
    for (const [i, h] of headers.entries()) assert.equal(h, `299 - "${`${i}`.padEnd(256, "x")}"`);
    const few = warningHeaders(texts.slice(0, 13));
    assert.equal(few.length, 13);
    assert.equal(few[0], `299 - "${"0".padEnd(300, "x")}"`);
  });
});
