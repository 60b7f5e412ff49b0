import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { jemallocLibrary } from "./build-concierge.ts";

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "../..");

interface Built {
  digest: string;
  dir: string;
  archive: Buffer;
}

/** The build runs in its own process: it compresses ~130 MiB, which would stall this event loop. */
async function buildInto(dir: string): Promise<Built> {
  const { stdout } = await run(process.execPath, ["hack/image/build-concierge.ts", "--out", dir], {
    cwd: root,
    maxBuffer: 1024 * 1024,
  });
  const digest = /^digest\s+(sha256:[0-9a-f]{64})$/m.exec(stdout)?.[1];
  assert.ok(digest, `no digest in the build's output:\n${stdout}`);
  return { digest, dir, archive: readFileSync(join(dir, "pinniped-concierge.oci.tar")) };
}

/** The files of an image archive's blobs, by digest. */
function blobs(archive: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let offset = 0;
  while (offset + 512 <= archive.length) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.toString("utf8", 0, 100).replace(/\0.*$/s, "");
    const size = Number.parseInt(header.toString("ascii", 124, 136).replace(/\0.*$/s, ""), 8);
    const body = archive.subarray(offset + 512, offset + 512 + size);
    if (name.startsWith("blobs/sha256/") && size > 0) out.set(`sha256:${name.slice(13)}`, body);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** Every path in a layer (a gzipped tar) with its type flag, mode, owner and link target. */
function layerListing(layer: Buffer) {
  const raw = gunzipSync(layer);
  const entries = new Map<string, { type: string; mode: number; uid: number; link: string; size: number }>();
  let offset = 0;
  let longName: string | undefined;
  while (offset + 512 <= raw.length) {
    const header = raw.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) =>
      header.toString("utf8", start, start + length).replace(/\0.*$/s, "");
    const size = Number.parseInt(field(124, 12), 8);
    const type = field(156, 1);
    if (type === "x") {
      longName = /\d+ path=(.*)\n/.exec(raw.toString("utf8", offset + 512, offset + 512 + size))?.[1];
    } else {
      entries.set((longName ?? field(0, 100)).replace(/\/$/, ""), {
        type,
        mode: Number.parseInt(field(100, 8), 8),
        uid: Number.parseInt(field(108, 8), 8),
        link: field(157, 100),
        size,
      });
      longName = undefined;
    }
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

describe("the Concierge image", { timeout: 300_000 }, () => {
  let work: string;
  let first: Built;
  let second: Built;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "concierge-image-"));
    first = await buildInto(join(work, "a"));
    second = await buildInto(join(work, "b"));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("has the same digest and the same bytes when built twice from the same inputs", () => {
    assert.equal(first.digest, second.digest);
    assert.ok(first.archive.equals(second.archive));
    assert.deepEqual(
      readFileSync(join(first.dir, "pinniped-concierge.sbom.cdx.json")),
      readFileSync(join(second.dir, "pinniped-concierge.sbom.cdx.json")),
    );
  });

  it("runs as 65532 with both commands on PATH, labels from the commit, and no shell", () => {
    const files = blobs(first.archive);
    const manifest = JSON.parse(files.get(first.digest)!.toString()) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    const config = JSON.parse(files.get(manifest.config.digest)!.toString()) as {
      created: string;
      config: { User: string; Entrypoint: string[]; Env: string[]; Labels: Record<string, string> };
    };
    assert.equal(config.config.User, "65532:65532");
    assert.deepEqual(config.config.Entrypoint, ["/usr/local/bin/pinniped-concierge"]);
    assert.ok(config.config.Env.includes("PATH=/usr/local/bin:/usr/bin:/bin"));
    const labels = config.config.Labels;
    const commit = readFileSync(join(root, ".git/HEAD"), "utf8").trim();
    assert.match(labels["org.opencontainers.image.revision"]!, /^[0-9a-f]{40}(-dirty)?$/);
    if (/^[0-9a-f]{40}$/.test(commit))
      assert.ok(labels["org.opencontainers.image.revision"]!.startsWith(commit));
    assert.equal(
      labels["org.opencontainers.image.version"],
      (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version,
    );
    assert.ok(labels["org.opencontainers.image.source"]);
    assert.equal(labels["org.opencontainers.image.created"], config.created);
    assert.notEqual(config.created, "1970-01-01T00:00:00Z");

    const listing = new Map(manifest.layers.flatMap((layer) => [...layerListing(files.get(layer.digest)!)]));
    assert.equal(listing.get("usr/local/bin/pinniped-concierge")?.type, "2");
    assert.equal(
      listing.get("usr/local/bin/pinniped-concierge")?.link,
      "/usr/local/lib/pinniped-concierge/server.mjs",
    );
    assert.equal(listing.get("usr/local/bin/pinniped-concierge-kube-cert-agent")?.mode, 0o755);
    assert.equal(listing.get("usr/local/bin/node")?.mode, 0o755);
    assert.equal(listing.get("lib64/ld-linux-x86-64.so.2")?.type, "0");
    // The Deployment preloads the allocator by path: it must be where it says.
    const deployment = readFileSync(join(root, "config/07-deployment.yaml"), "utf8");
    const preload = /name: LD_PRELOAD\n\s+value: (\S+)/.exec(deployment)?.[1];
    assert.equal(preload, jemallocLibrary);
    assert.equal(listing.get(jemallocLibrary.slice(1))?.mode, 0o755);
    assert.ok((listing.get("etc/ssl/certs/ca-certificates.crt")?.size ?? 0) > 100_000);
    assert.equal(listing.get("home/nonroot")?.uid, 65532);
    assert.equal(listing.get("tmp")?.mode, 0o1777);
    for (const shell of ["bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"])
      assert.equal(listing.has(shell), false);
    assert.equal(
      [...listing.keys()].some((path) => path.includes("node_modules")),
      false,
      "the server is one bundled file",
    );

    const sbom = JSON.parse(readFileSync(join(first.dir, "pinniped-concierge.sbom.cdx.json"), "utf8")) as {
      metadata: { component: { version: string } };
      components: { name: string; purl?: string }[];
    };
    assert.equal(sbom.metadata.component.version, first.digest);
    const names = sbom.components.map((c) => c.name);
    for (const name of [
      "@kubernetes/client-node",
      "yaml",
      "node",
      "libc6",
      "libstdc++6",
      "libjemalloc2",
      "ca-certificates",
    ]) {
      assert.ok(names.includes(name), `the SBOM lists ${name}`);
    }
    assert.equal(names.includes("typescript"), false, "no development dependency in the SBOM");
  });

  it("runs the bundled server with no node_modules beside it: a bad config is reported, exit 1", async () => {
    const rootfs = join(work, "rootfs");
    const files = blobs(first.archive);
    const manifest = JSON.parse(files.get(first.digest)!.toString()) as { layers: { digest: string }[] };
    const app = gunzipSync(files.get(manifest.layers.at(-1)!.digest)!);
    writeFileSync(join(work, "app.tar"), app);
    await run("mkdir", ["-p", rootfs]);
    await run("tar", ["-xf", join(work, "app.tar"), "-C", rootfs]);
    // The host's node stands in for the image's, which is the same npm package's binary.
    const result = await run(
      process.execPath,
      [join(rootfs, "usr/local/lib/pinniped-concierge/server.mjs"), "--config", "/nonexistent/pinniped.yaml"],
      { cwd: work },
    ).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /could not read config file \/nonexistent\/pinniped\.yaml/);
  });
});
