import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { checkImport, importsOf, roomGraph, scan } from "./layers.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

describe("the layering", () => {
  it("holds for every production file in the tree", () => {
    const { files, violations } = scan(root);
    assert.ok(files > 200, `only ${files} files scanned`);
    assert.deepEqual(
      violations.map((v) => `${v.from} → ${v.to}: ${v.reason}`),
      [],
    );
  });

  it("leaves the production rooms without cycles", () => {
    assert.deepEqual(roomGraph(scan(root).edges).cycles, []);
  });

  // Every import that broke this layering before kube/ existed (`node hack/layers.ts` on db4b274).
  const before: [string, string][] = [
    ["authenticators/goerrors.ts", "controllers/runtime/clock.ts"],
    ["authenticators/jwt/authenticator.ts", "controllers/runtime/clock.ts"],
    ["authenticators/jwt/jwks.ts", "controllers/runtime/clock.ts"],
    ["authenticators/webhook/authenticator.ts", "controllers/runtime/clock.ts"],
    ["authenticators/webhook/successcache.ts", "controllers/runtime/clock.ts"],
    ["cli/kubeconfig-discovery.ts", "controllers/runtime/rest.ts"],
    ["cli/kubeconfig.ts", "controllers/runtime/rest.ts"],
    ["cli/whoami.ts", "controllers/runtime/rest.ts"],
    ["impersonator/authz.ts", "controllers/runtime/clock.ts"],
    ["impersonator/authz.ts", "controllers/runtime/rest.ts"],
    ["impersonator/decider.ts", "controllers/runtime/clock.ts"],
    ["impersonator/decider.ts", "controllers/runtime/rest.ts"],
    ["impersonator/tokenclient.ts", "controllers/runtime/clock.ts"],
    ["impersonator/tokenclient.ts", "controllers/runtime/rest.ts"],
    ["impersonator/tokenreview.ts", "controllers/runtime/clock.ts"],
    ["impersonator/tokenreview.ts", "controllers/runtime/rest.ts"],
    ["server/testing.ts", "hack/pki.ts"],
  ];
  for (const [from, to] of before) {
    it(`refuses ${from} → ${to}`, () => {
      assert.ok(checkImport(from, to), "expected a violation");
    });
  }

  it("lets a room import itself and the floors below it", () => {
    assert.equal(
      checkImport("controllers/kubecertagent/reconciler.ts", "controllers/runtime/manager.ts"),
      undefined,
    );
    assert.equal(checkImport("controllers/apicerts/controllers.ts", "certs/servingcert.ts"), undefined);
    assert.equal(checkImport("impersonator/authz.ts", "kube/rest.ts"), undefined);
    assert.equal(checkImport("server/main.ts", "controllers/runtime/manager.ts"), undefined);
  });

  it("keeps rooms on one floor apart", () => {
    assert.match(checkImport("webhooks/validation.ts", "impersonator/types.ts") ?? "", /share floor 2/);
    assert.match(checkImport("cli/main.ts", "certs/ca.ts") ?? "", /share floor 1/);
  });

  it("keeps tools and tests out of production code", () => {
    assert.match(checkImport("server/main.ts", "hack/pki.ts") ?? "", /imports hack/);
    assert.match(checkImport("certs/issue.ts", "test/harness/tls.ts") ?? "", /imports a test/);
    assert.match(checkImport("certs/issue.ts", "certs/testing.ts") ?? "", /test support/);
    assert.match(checkImport("authenticators/jwt/testing.ts", "hack/pki.ts") ?? "", /imports hack/);
    assert.equal(checkImport("authenticators/jwt/testing.ts", "test/harness/tls.ts"), undefined);
  });

  it("lets tests and tools import anything", () => {
    assert.equal(checkImport("kube/rest.test.ts", "controllers/runtime/listwatch.ts"), undefined);
    assert.equal(checkImport("test/integration/x.test.ts", "hack/pki.ts"), undefined);
    assert.equal(checkImport("hack/demo.ts", "test/harness/cluster.ts"), undefined);
    assert.equal(checkImport("bench/tcr.ts", "server/aggregated.ts"), undefined);
  });

  it("names a folder that has no floor", () => {
    assert.match(checkImport("newroom/a.ts", "kube/rest.ts") ?? "", /in no layer/);
    assert.match(checkImport("server/a.ts", "newroom/b.ts") ?? "", /in no layer/);
  });
});

describe("importsOf", () => {
  it("reads static, type-only, re-exported, side-effect and dynamic imports", () => {
    const source = [
      `import { a } from "./a.ts";`,
      `import type { B } from "../b.ts";`,
      "import {",
      "  c,",
      "  type D,",
      `} from "./c.ts";`,
      `export { e } from "./e.ts";`,
      `export * from "./f.ts";`,
      `import "./g.ts";`,
      `const h = await import("./h.ts");`,
      `import x from "node:fs";`,
    ].join("\n");
    assert.deepEqual(importsOf(source), [
      "./a.ts",
      "../b.ts",
      "./c.ts",
      "./e.ts",
      "./f.ts",
      "./g.ts",
      "./h.ts",
      "node:fs",
    ]);
  });

  it("ignores imports in comments and strings that only mention one", () => {
    const source = [
      `// import { a } from "./a.ts";`,
      `/* import { b } from "./b.ts"; */`,
      `const text = "exported from the cluster";`,
    ].join("\n");
    assert.deepEqual(importsOf(source), []);
  });
});

describe("roomGraph", () => {
  it("stacks rooms and names cycles", () => {
    const graph = roomGraph([
      { from: "server/main.ts", to: "controllers/a.ts" },
      { from: "controllers/a.ts", to: "kube/rest.ts" },
      { from: "controllers/a.ts.test.ts", to: "server/main.ts" },
    ]);
    assert.deepEqual(graph.floors, [["kube"], ["controllers"], ["server"]]);
    assert.deepEqual(graph.cycles, []);
    const cyclic = roomGraph([
      { from: "a/x.ts", to: "b/y.ts" },
      { from: "b/y.ts", to: "a/z.ts" },
    ]);
    assert.deepEqual(cyclic.cycles, ["a → b → a"]);
  });
});
