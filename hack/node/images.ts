// The node's own images, built here (no registry is reachable): the pause image every pod
// sandbox runs, and kube-controller-manager's, which runs as a static pod as on a kubeadm
// cluster. Archives are cached beside the Kubernetes binaries they are made from.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { buildImage, type ImageSpec } from "../image/oci.ts";

const run = promisify(execFile);
const pauseSource = join(import.meta.dirname, "pause");

export const pauseImage = "localhost/pause:3.10";
/** A shell and the usual tools (tar for kubectl cp, nc) for test workloads: Debian's busybox-static. */
export const busyboxImage = "localhost/busybox:latest";
const busyboxBinary = "/bin/busybox";
export const controllerManagerImage = (version: string) => `localhost/kube-controller-manager:${version}`;

async function exists(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined)) !== undefined;
}

/** Writes `file` by temp file and rename, so a concurrent reader never sees half of it. */
async function writeAtomically(file: string, content: Buffer): Promise<void> {
  const partial = `${file}.${process.pid}.partial`;
  await writeFile(partial, content);
  await rename(partial, file);
}

async function cachedArchive(
  cacheDir: string,
  key: string,
  build: () => Promise<ImageSpec>,
): Promise<string> {
  const file = join(cacheDir, `${key}.oci.tar`);
  if (await exists(file)) return file;
  await mkdir(cacheDir, { recursive: true });
  await writeAtomically(file, buildImage(await build()).archive);
  return file;
}

/** The pause program: a tiny static Go binary from hack/node/pause. */
async function pauseBinary(cacheDir: string): Promise<Buffer> {
  const files = await Promise.all(["main.go", "go.mod"].map((f) => readFile(join(pauseSource, f))));
  const { stdout: goVersion } = await run("go", ["env", "GOVERSION"]);
  const hash = createHash("sha256").update(goVersion);
  for (const f of files) hash.update(f);
  const out = join(cacheDir, `pause-${hash.digest("hex").slice(0, 16)}`);
  if (!(await exists(out))) {
    await mkdir(cacheDir, { recursive: true });
    const partial = `${out}.${process.pid}.partial`;
    await run("go", ["build", "-trimpath", "-ldflags=-s -w", "-o", partial, "."], {
      cwd: pauseSource,
      env: { ...process.env, CGO_ENABLED: "0" },
    }).catch((err: { stderr?: string; message: string }) => {
      throw new Error(`building the pause program failed: ${err.stderr || err.message}`);
    });
    await rename(partial, out);
  }
  return await readFile(out);
}

/** Image archives for the node, built on first use: `{ pause, controllerManager, busybox }`. */
export async function nodeImageArchives(
  binDir: string,
  kubernetesVersion: string,
): Promise<{ pause: string; controllerManager: string; busybox: string }> {
  // binDir is <cache>/<key>/bin: the images live and die with the binaries.
  const cacheDir = join(dirname(binDir), "images");
  const pause = await pauseBinary(cacheDir);
  const pauseKey = `pause-${createHash("sha256").update(pause).digest("hex").slice(0, 16)}`;
  const busybox = await readFile(busyboxBinary).catch(() => {
    throw new Error(`${busyboxBinary} is missing: install Debian's busybox-static (hack/lib.sh does)`);
  });
  const { stdout: applets } = await run(busyboxBinary, ["--list"]);
  const busyboxKey = `busybox-${createHash("sha256").update(busybox).digest("hex").slice(0, 16)}`;
  const [pauseArchive, controllerManagerArchive, busyboxArchive] = await Promise.all([
    cachedArchive(cacheDir, pauseKey, async () => ({
      name: pauseImage,
      layers: [[{ path: "pause", type: "file", mode: 0o755, content: pause }]],
      config: { entrypoint: ["/pause"], user: "65535:65535" },
    })),
    cachedArchive(cacheDir, `kube-controller-manager-${kubernetesVersion}`, async () => ({
      name: controllerManagerImage(kubernetesVersion),
      layers: [
        [
          {
            path: "usr/local/bin/kube-controller-manager",
            type: "file",
            mode: 0o755,
            content: await readFile(join(binDir, "kube-controller-manager")),
          },
          { path: "tmp", type: "dir", mode: 0o1777 },
        ],
      ],
      config: { entrypoint: ["/usr/local/bin/kube-controller-manager"] },
    })),
    cachedArchive(cacheDir, busyboxKey, async () => ({
      name: busyboxImage,
      layers: [
        [
          { path: "bin/busybox", type: "file", mode: 0o755, content: busybox },
          ...applets
            .split("\n")
            .filter((applet) => applet && applet !== "busybox")
            .map((applet) => ({ path: `bin/${applet}`, type: "symlink" as const, target: "busybox" })),
          { path: "tmp", type: "dir", mode: 0o1777 },
        ],
      ],
      config: { entrypoint: ["/bin/sh"], env: ["PATH=/bin"] },
    })),
  ]);
  return { pause: pauseArchive, controllerManager: controllerManagerArchive, busybox: busyboxArchive };
}

/** Imports an OCI archive into containerd's `k8s.io` namespace, where kubelet finds images. */
export async function importImage(containerdSocket: string, archive: string): Promise<void> {
  await run("ctr", ["--address", containerdSocket, "-n", "k8s.io", "images", "import", archive], {
    maxBuffer: 4 * 1024 * 1024,
    timeout: 120_000,
  }).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`importing ${archive} into containerd failed: ${err.stderr || err.message}`);
  });
}
