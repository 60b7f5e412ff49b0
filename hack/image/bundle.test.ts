import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { bundleServer } from "./build-concierge.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("the server's bundle", () => {
  it("holds none of @kubernetes/client-node and what it pulls in (+78 MiB RSS when loaded)", async () => {
    const text = (await bundleServer(root)).toString("utf8");
    // esbuild heads each bundled module with a `// node_modules/<package>/<file>` comment.
    const packages = new Set(
      [...text.matchAll(/^\/\/ node_modules\/((?:@[^/]+\/)?[^/]+)\//gm)].map((m) => m[1]),
    );
    assert.ok(packages.has("yaml"), `the bundle's packages are found: ${[...packages].join(", ")}`);
    for (const name of ["@kubernetes/client-node", "undici", "ws", "js-yaml", "jsonpath-plus", "socks"]) {
      assert.equal(packages.has(name), false, `${name} is in the server's bundle`);
    }
  });

  it("imports node:http through require(), not as an ES module (which loads Node's undici: +13.6 MiB RSS)", async () => {
    const text = (await bundleServer(root)).toString("utf8");
    assert.doesNotMatch(text, /^import\b[^;]*from "(node:)?http";/m);
    assert.match(text, /__require\("node:http"\)/);
  });
});
