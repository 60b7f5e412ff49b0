import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { chartFiles, repoRoot, valueDocs, valuesTable } from "./gen-chart.ts";

describe("the chart's generated parts", () => {
  it("are what hack/gen-chart.ts makes of crds/ and values.yaml (run npm run generate)", () => {
    for (const [path, text] of chartFiles()) {
      assert.equal(readFileSync(join(repoRoot, path), "utf8"), text, `${path} is stale`);
    }
  });

  it("documents nested keys, first keys of a map and multi-line comments, and refuses an undocumented key", () => {
    const docs = valueDocs(`# A header.

# -- The first key.
first: 1
image:
  # -- Where from,
  # over two lines.
  repository: r
  # -- A map, shown whole.
  extra: {a: [1, "b|c"]}
`);
    assert.deepEqual(docs, [
      { key: "first", default: "1", description: "The first key." },
      { key: "image.repository", default: '"r"', description: "Where from, over two lines." },
      { key: "image.extra", default: '{"a":[1,"b|c"]}', description: "A map, shown whole." },
    ]);
    assert.match(valuesTable(docs), /\| `image.extra` \| `\{"a":\[1,"b\\\|c"\]\}` \| A map, shown whole. \|/);
    assert.throws(
      () => valueDocs("# -- Documented.\na: 1\nb: 2\n"),
      /b in values.yaml has no "# -- description"/,
    );
  });
});
