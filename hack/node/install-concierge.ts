// Installs the Concierge on a real node as a user would: its image into containerd (no registry
// is reachable here), then `kubectl apply` of crds/ and config/, then waits until it serves:
// the Deployment rolled out, the aggregated APIs Available, and the kube-cert-agent pod Running.
import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { agentPodLabelSelector } from "../../controllers/kubecertagent/agent.ts";
import type { NodeCluster } from "./cluster.ts";

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, "..", "..");
export const conciergeNamespace = "pinniped-concierge";
/** Where `npm run build:image` writes the archive. */
export const conciergeImageArchive = join(repoRoot, ".build", "image", "pinniped-concierge.oci.tar");

/** Builds the Concierge's image with `npm run build:image` (hack/image/build-concierge.ts). */
export async function buildConciergeImage(): Promise<string> {
  await run(process.execPath, [join(repoRoot, "hack", "image", "build-concierge.ts")], {
    cwd: repoRoot,
    maxBuffer: 16 * 1024 * 1024,
    timeout: 600_000,
  }).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`building the Concierge image failed: ${err.stderr?.trim() || err.message}`);
  });
  if (!(await stat(conciergeImageArchive).catch(() => undefined)))
    throw new Error(`npm run build:image wrote no ${conciergeImageArchive}`);
  return conciergeImageArchive;
}

export interface InstalledConcierge {
  namespace: string;
  /** What `kubectl apply` printed. */
  applied: string;
  /** Seconds from apply to the last wait. */
  readySeconds: number;
}

export async function installConcierge(
  cluster: NodeCluster,
  options: { archive?: string; log?: (m: string) => void } = {},
): Promise<InstalledConcierge> {
  const log = options.log ?? (() => {});
  const archive = options.archive ?? (await buildConciergeImage());
  await cluster.importImage(archive);
  log("Concierge image imported into containerd");
  const began = Date.now();
  const applied = await cluster.kubectl([
    "apply",
    "-f",
    join(repoRoot, "crds"),
    "-f",
    join(repoRoot, "config"),
  ]);
  await conciergeServing(cluster);
  const readySeconds = (Date.now() - began) / 1000;
  log(`Concierge ready ${readySeconds.toFixed(1)}s after kubectl apply`);
  return { namespace: conciergeNamespace, applied, readySeconds };
}

/**
 * Waits until an installed Concierge serves: its Deployment rolled out, its aggregated APIs
 * Available, and its kube-cert-agent pod Ready (for an install named or grouped otherwise too).
 */
export async function conciergeServing(
  cluster: NodeCluster,
  { namespace = conciergeNamespace, appName = "pinniped-concierge", apiGroupSuffix = "pinniped.dev" } = {},
): Promise<void> {
  const wait = (args: string[]) => cluster.kubectl(["wait", "--timeout=180s", ...args]);
  await cluster.kubectl(["rollout", "status", "-n", namespace, `deployment/${appName}`, "--timeout=180s"]);
  await wait([
    "--for=condition=Available",
    `apiservice/v1alpha1.login.concierge.${apiGroupSuffix}`,
    `apiservice/v1alpha1.identity.concierge.${apiGroupSuffix}`,
  ]);
  // The agent pod appears once the leader has found kube-controller-manager's static pod.
  for (const deadline = Date.now() + 180_000; ; ) {
    const pods = await cluster.kubectl([
      "get",
      "pods",
      "-n",
      namespace,
      "-l",
      agentPodLabelSelector,
      "-o",
      "name",
    ]);
    if (pods.trim()) break;
    if (Date.now() > deadline)
      throw new Error("no kube-cert-agent pod appeared within 180 s of installing the Concierge");
    await new Promise((r) => setTimeout(r, 500));
  }
  await wait(["--for=condition=Ready", "pod", "-n", namespace, "-l", agentPodLabelSelector]);
}
