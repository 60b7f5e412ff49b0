import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { buildImage, type ImageSpec } from "./oci.ts";

const longPath = `opt/${"deep/".repeat(30)}file.txt`;
const spec: ImageSpec = {
  name: "localhost/example:1",
  layers: [
    [
      { path: "usr/bin/tool", type: "file", content: "#!/bin/false\n", mode: 0o755 },
      { path: longPath, type: "file", content: "far down" },
      { path: "bin/tool", type: "symlink", target: "/usr/bin/tool" },
    ],
    [{ path: "home/nonroot", type: "dir", uid: 65532, gid: 65532, mode: 0o700 }],
  ],
  config: {
    entrypoint: ["/usr/bin/tool"],
    user: "65532:65532",
    labels: { "org.opencontainers.image.version": "1" },
  },
};

function untar(archive: Buffer, dir: string): void {
  const file = join(dir, "archive.tar");
  writeFileSync(file, archive);
  execFileSync("tar", ["-xf", file, "-C", dir]);
}

describe("buildImage", () => {
  it("gives the same digest for the same inputs", () => {
    assert.equal(buildImage(spec).digest, buildImage(spec).digest);
    assert.notEqual(buildImage(spec).digest, buildImage({ ...spec, config: { user: "0" } }).digest);
  });

  it("writes an OCI layout whose blobs match their digests, and layers GNU tar reads with owners and modes", () => {
    const image = buildImage(spec);
    const dir = mkdtempSync(join(tmpdir(), "oci-test-"));
    try {
      untar(image.archive, dir);
      const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
      assert.equal(index.manifests[0].digest, image.digest);
      assert.equal(index.manifests[0].annotations["io.containerd.image.name"], "localhost/example:1");
      const blob = (digest: string) => readFileSync(join(dir, "blobs", "sha256", digest.slice(7)));
      const manifest = JSON.parse(blob(image.digest).toString());
      const config = JSON.parse(blob(manifest.config.digest).toString());
      assert.deepEqual(config.config.Entrypoint, ["/usr/bin/tool"]);
      assert.equal(config.rootfs.diff_ids.length, 2);
      const listings = manifest.layers.map((layer: { digest: string }, i: number) => {
        const raw = gunzipSync(blob(layer.digest));
        const file = join(dir, `layer${i}.tar`);
        writeFileSync(file, raw);
        return execFileSync("tar", ["--numeric-owner", "-tvf", file], { encoding: "utf8" });
      });
      assert.match(listings[0], /-rwxr-xr-x 0\/0 +13 1970-01-01 00:00 usr\/bin\/tool/);
      assert.match(listings[0], /lrwxrwxrwx 0\/0 .* bin\/tool -> \/usr\/bin\/tool/);
      assert.ok(listings[0].includes(longPath), "a path over 100 bytes survives through a PAX header");
      assert.match(listings[1], /drwx------ 65532\/65532 .* home\/nonroot\//);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses paths that climb out of the image and entries listed twice", () => {
    assert.throws(
      () => buildImage({ ...spec, layers: [[{ path: "../etc/passwd", type: "file" }]] }),
      /clean relative/,
    );
    assert.throws(
      () =>
        buildImage({
          ...spec,
          layers: [
            [
              { path: "a", type: "file" },
              { path: "/a", type: "file" },
            ],
          ],
        }),
      /twice/,
    );
  });
});
