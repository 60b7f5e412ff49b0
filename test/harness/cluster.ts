// The real control plane that integration tests run against: one per test run,
// started by global-setup.ts (or, when a test file runs on its own, by the first
// caller here), with the CRDs from crds/ installed.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { type ControlPlane, type ControlPlaneOptions, startControlPlane } from "../../hack/controlplane.ts";
import { installCRDs } from "../../hack/install.ts";

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestCluster {
  readonly kubeconfigPath: string;
  readonly binDir: string;
  readonly server: string;
  /** A fresh client-node KubeConfig for the cluster admin. */
  kubeConfig(): KubeConfig;
  /** Runs the real kubectl of the pinned release; never throws on a non-zero exit. */
  kubectl(args: string[], opts?: { input?: string; kubeconfig?: string }): Promise<KubectlResult>;
  newNamespace(prefix?: string): Promise<string>;
  uniqueName(prefix: string): string;
}

/** What global-setup.ts hands to the test files through CONCIERGE_TEST_CLUSTER. */
export interface ClusterHandoff {
  kubeconfigPath: string;
  binDir: string;
  server: string;
}

export const handoffVariable = "CONCIERGE_TEST_CLUSTER";

export function runKubectl(
  binDir: string,
  kubeconfig: string,
  args: string[],
  opts: { input?: string } = {},
): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      join(binDir, "kubectl"),
      ["--kubeconfig", kubeconfig, ...args],
      { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    // A kubectl that exits without reading its stdin must not fail the write (EPIPE).
    child.stdin?.on("error", () => {});
    child.stdin?.end(opts.input ?? "");
  });
}

export type KubectlOptions = { input?: string; kubeconfig?: string };

export interface DedicatedKubectl {
  /** Never throws on a non-zero exit. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** Asserts exit 0 and resolves to stdout. */
  ok(args: string[], opts?: KubectlOptions): Promise<string>;
}

/**
 * kubectl on a cluster (a control plane, the real node) as its admin, unless a kubeconfig is
 * given, with a discovery cache under `dir`: kubectl caches API groups for hours, and suites add
 * groups. `target` is read at each call, as suites set it in `before`.
 */
export function dedicatedKubectl(
  target: () => { cluster: { binDir: string; kubeconfigPath: string }; dir: string },
): DedicatedKubectl {
  const kubectl = (args: string[], opts: KubectlOptions = {}) => {
    const { cluster, dir } = target();
    return runKubectl(
      cluster.binDir,
      opts.kubeconfig ?? cluster.kubeconfigPath,
      ["--cache-dir", join(dir, "cache"), ...args],
      opts,
    );
  };
  const ok = async (args: string[], opts?: KubectlOptions) => {
    const res = await kubectl(args, opts);
    assert.equal(res.code, 0, `kubectl ${args.join(" ")}: ${res.stderr}`);
    return res.stdout;
  };
  return { kubectl, ok };
}

function clusterFrom(handoff: ClusterHandoff): TestCluster {
  return {
    ...handoff,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromFile(handoff.kubeconfigPath);
      return kc;
    },
    kubectl(args, opts = {}) {
      return runKubectl(handoff.binDir, opts.kubeconfig ?? handoff.kubeconfigPath, args, opts);
    },
    async newNamespace(prefix = "test") {
      const name = uniqueName(prefix);
      const res = await runKubectl(handoff.binDir, handoff.kubeconfigPath, ["create", "namespace", name]);
      if (res.code !== 0) throw new Error(`creating namespace ${name} failed: ${res.stderr}`);
      return name;
    },
    uniqueName,
  };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** Starts a control plane and installs what every integration test expects to find. */
export async function startTestControlPlane(
  name: string,
  options: Omit<ControlPlaneOptions, "name"> = {},
): Promise<ControlPlane> {
  const cp = await startControlPlane({ ...options, name });
  try {
    await installCRDs(cp.binDir, cp.kubeconfigPath);
  } catch (err) {
    await cp.stop();
    throw err;
  }
  return cp;
}

let shared: Promise<TestCluster> | undefined;

export function testCluster(): Promise<TestCluster> {
  shared ??= (async () => {
    const file = process.env[handoffVariable];
    if (file) return clusterFrom(JSON.parse(await readFile(file, "utf8")) as ClusterHandoff);
    const cp = await startTestControlPlane("adhoc");
    process.once("beforeExit", () => void cp.stop());
    return clusterFrom(cp);
  })();
  return shared;
}
