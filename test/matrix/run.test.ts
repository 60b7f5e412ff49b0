import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pickVersions } from "../../hack/k8s/releases.ts";
import { firstLine } from "./reporter.ts";
import { counts, table } from "./run.ts";

const listed = ["1.30.14", "1.31.14", "1.37.2"];

describe("test:matrix runner", () => {
  it("picks minors by minor or full version, every listed one when none is named", () => {
    assert.deepEqual(pickVersions(listed, []), listed);
    assert.deepEqual(pickVersions(listed, ["1.37", "v1.30.14"]), ["1.37.2", "1.30.14"]);
    assert.throws(() => pickVersions(listed, ["1.29"]), /Kubernetes 1\.29 is not in hack\/k8s\/versions/);
    assert.throws(() => pickVersions(listed, ["1.3"]), /not in hack\/k8s\/versions/);
  });

  it("tables each check against each minor and lists each failure's first error line", () => {
    const results = [
      {
        version: "1.30.14",
        build: { ok: true, seconds: 412 },
        checks: [
          { name: "install", ok: false, error: "isIP is undeclared" },
          { name: "exec", ok: true },
        ],
      },
      {
        version: "1.31.14",
        build: { ok: false, seconds: 3, error: "hack/build-k8s.sh exited 1" },
        checks: [],
      },
      { version: "1.37.2", build: { ok: true, seconds: 0 }, checks: [{ name: "install", ok: true }] },
    ];
    assert.equal(
      table(results),
      [
        "| check     | 1.30 | 1.31 | 1.37   |",
        "|-----------|------|------|--------|",
        "| build (s) | 412  | FAIL | 0      |",
        "| install   | FAIL | -    | pass   |",
        "| exec      | pass | -    | absent |",
        "",
        "failures (first error line):",
        "1.30.14 install: isIP is undeclared",
        "1.31.14 build: hack/build-k8s.sh exited 1",
        "1.37.2 exec: not reported",
      ].join("\n"),
    );
    assert.deepEqual(counts(results), { passed: 2, failed: 3 });
  });

  it("reports the failing assertion's own first line, not the runner's wrapper", () => {
    const wrapped = Object.assign(new Error("test failed"), {
      code: "ERR_TEST_FAILURE",
      cause: new Error("\nkubectl exec: error: unable to upgrade connection\nmore"),
    });
    assert.equal(firstLine(wrapped), "kubectl exec: error: unable to upgrade connection");
    assert.equal(firstLine("plain"), "plain");
  });
});
