import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { aggregateMessage, duplicate, forbidden, formatFieldError, invalid, required } from "./fielderror.ts";
import { goQuote } from "./goquote.ts";

describe("goQuote", () => {
  // Each expectation is what Go's fmt.Sprintf("%q", s) prints.
  const cases: [string, string][] = [
    ["plain", '"plain"'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ["line\nbreak\ttab\r", '"line\\nbreak\\ttab\\r"'],
    ["\x07\b\f\v", '"\\a\\b\\f\\v"'],
    ["\x01\x7f", '"\\x01\\x7f"'],
    ["héllo wörld", '"héllo wörld"'],
    ["no\u00a0break", '"no\\u00a0break"'],
    ["zero\u200bwidth", '"zero\\u200bwidth"'],
    ["😀", '"😀"'],
    ["\u{e0001}", '"\\U000e0001"'],
  ];
  for (const [input, want] of cases) {
    it(`quotes ${JSON.stringify(input)} as Go does`, () => assert.equal(goQuote(input), want));
  }
});

describe("field errors", () => {
  it("word each type as k8s.io/apimachinery does", () => {
    assert.deepEqual(
      [
        invalid("spec.a", "x", "bad"),
        required("spec.b"),
        required("spec.c", "why"),
        forbidden("spec.d", "not here"),
        duplicate("spec.e[1]", "y"),
      ].map(formatFieldError),
      [
        'spec.a: Invalid value: "x": bad',
        "spec.b: Required value",
        "spec.c: Required value: why",
        "spec.d: Forbidden: not here",
        'spec.e[1]: Duplicate value: "y"',
      ],
    );
  });

  it("aggregate one error alone and several in brackets, each once", () => {
    const a = required("spec.a");
    const b = forbidden("spec.b", "no");
    assert.equal(aggregateMessage([a]), "spec.a: Required value");
    assert.equal(aggregateMessage([a, b, a]), "[spec.a: Required value, spec.b: Forbidden: no]");
  });
});
