// The helm command for the chart's tests: the binary hack/build-helm.sh built in the set-up phase
// (tests cannot reach the Go module proxy), run with its config, cache and data in a temporary
// directory of its own so nothing outside the test is read or left behind.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const repoRoot = resolve(import.meta.dirname, "..", "..");
export const chartDir = join(repoRoot, "charts", "concierge");

export interface Helm {
  /** Runs helm; rejects with its stderr on a non-zero exit. */
  (args: string[], options?: { kubeconfig?: string }): Promise<string>;
  /** Removes the temporary home. */
  cleanup(): Promise<void>;
}

let binary: Promise<string> | undefined;

/** The path of the cached helm binary; fails, saying what to run, when it was not built. */
export function helmBinary(): Promise<string> {
  binary ??= run(join(repoRoot, "hack", "build-helm.sh"), {
    env: { ...process.env, CONCIERGE_HELM_NO_BUILD: "1" },
  }).then(
    ({ stdout }) => stdout.trim(),
    (err: { stderr?: string; message: string }) => {
      throw new Error(err.stderr?.trim() || err.message);
    },
  );
  return binary;
}

export async function newHelm(): Promise<Helm> {
  const bin = await helmBinary();
  const home = await mkdtemp(join(tmpdir(), "concierge-helm-"));
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: home,
    HELM_CACHE_HOME: join(home, "cache"),
    HELM_CONFIG_HOME: join(home, "config"),
    HELM_DATA_HOME: join(home, "data"),
  };
  const helm = (async (args, options = {}) => {
    const kube = options.kubeconfig ? ["--kubeconfig", options.kubeconfig] : [];
    try {
      const { stdout } = await run(bin, [...args, ...kube], {
        env,
        maxBuffer: 64 * 1024 * 1024,
        timeout: 600_000,
      });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`helm ${args.join(" ")} failed: ${e.stderr?.trim() || e.message}`);
    }
  }) as Helm;
  helm.cleanup = () => rm(home, { recursive: true, force: true });
  return helm;
}
