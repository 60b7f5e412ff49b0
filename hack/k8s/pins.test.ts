// The Kubernetes pins hack/build-k8s.sh builds from: one per release listed in hack/k8s/versions,
// each naming that release, and its staging modules on that release's minor. A hand edit that
// breaks this would otherwise show only as a build of the wrong binaries minutes later.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { listedVersions, selectedVersion } from "./releases.ts";

const pins = join(import.meta.dirname, "pins");

describe("hack/k8s pins", async () => {
  const versions = await listedVersions();

  it("lists each minor once, oldest first, from 1.30 up", () => {
    const minors = versions.map((v) => Number(v.split(".")[1]));
    assert.equal(minors[0], 30);
    assert.deepEqual(
      minors,
      minors.map((_, i) => 30 + i),
    );
  });

  it("builds a listed minor by default", async () => {
    const minor = (await readFile(join(import.meta.dirname, "default"), "utf8")).trim();
    assert.ok(
      versions.some((v) => v.startsWith(`${minor}.`)),
      `hack/k8s/default names ${minor}, not one of ${versions.join(", ")}`,
    );
  });

  it("selects the release CONCIERGE_K8S_VERSION names, or else the default minor's", async () => {
    const minor = (await readFile(join(import.meta.dirname, "default"), "utf8")).trim();
    assert.ok((await selectedVersion({})).startsWith(`${minor}.`));
    assert.equal(await selectedVersion({ CONCIERGE_K8S_VERSION: "1.30" }), versions[0]);
    assert.equal(await selectedVersion({ CONCIERGE_K8S_VERSION: `v${versions.at(-1)}` }), versions.at(-1));
    await assert.rejects(selectedVersion({ CONCIERGE_K8S_VERSION: "1.29" }), /not in hack\/k8s\/versions/);
  });

  it("has a .mod and .sum for each listed release and no other", async () => {
    const files = (await readdir(pins)).sort();
    const minors = versions.map((v) => v.split(".").slice(0, 2).join("."));
    assert.deepEqual(files, minors.flatMap((m) => [`${m}.mod`, `${m}.sum`]).sort());
  });

  for (const version of versions) {
    const [, minor, patch] = version.split(".");
    it(`pins k8s.io/kubernetes v${version} with every staging module on v0.${minor}`, async () => {
      const mod = await readFile(join(pins, `1.${minor}.mod`), "utf8");
      assert.match(mod, new RegExp(`^\\s+k8s\\.io/kubernetes v${version.replaceAll(".", "\\.")}$`, "m"));
      const replaces = [...mod.matchAll(/^\s+(k8s\.io\/\S+) => (\S+) (v\S+)$/gm)];
      assert.ok(replaces.length >= 30, `only ${replaces.length} replace lines`);
      for (const [line, from, to, v] of replaces) {
        assert.equal(to, from, line);
        assert.match(v!, new RegExp(`^v0\\.${minor}\\.\\d+$`), line);
        // A patch other than the release's own is allowed only where the pin explains it.
        if (v !== `v0.${minor}.${patch}`) assert.ok(mod.includes(`// ${from} v0.${minor}.${patch} is not served`), line);
      }
    });
  }
});
