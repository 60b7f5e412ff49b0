import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { groupOf } from "./test-run.ts";

const root = join(import.meta.dirname, "..");
const group = async (file: string) => groupOf(await readFile(join(root, file), "utf8"));

test("npm test's groups: the shared real node's files and the CLI's builds together, the rest beside them", async () => {
  assert.equal(await group("test/integration/helm-node.test.ts"), "real node");
  assert.equal(await group("test/integration/real-node.test.ts"), "real node");
  // Both run build:cli, which rewrites .build/cli: never at the same time.
  assert.equal(await group("test/integration/cli-static.test.ts"), "real node");
  assert.equal(await group("test/integration/cli-build.test.ts"), "real node");
  // A node of its own.
  assert.equal(await group("test/integration/demo.test.ts"), "local");
  assert.equal(await group("test/integration/crds.test.ts"), "local");
  assert.equal(await group("hack/test-run.test.ts"), "local");
});
