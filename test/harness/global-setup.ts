// node --test --test-global-setup: one loopback control plane for the local-process integration
// tests, and one real node (hack/node/) for the end-to-end tests, started side by side; only the
// one CONCIERGE_TEST_SHARED names when hack/test-run.ts runs the two kinds of file in two processes.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ControlPlane } from "../../hack/controlplane.ts";
import type { NodeCluster } from "../../hack/node/cluster.ts";
import { sharedVariable } from "../../hack/test-run.ts";
import { type ClusterHandoff, handoffVariable, startTestControlPlane } from "./cluster.ts";
import { startSharedNode, testConcierge } from "./node.ts";

let controlPlane: ControlPlane | undefined;
let node: NodeCluster | undefined;
let handoffDir: string | undefined;

export async function globalSetup(): Promise<void> {
  const began = Date.now();
  const seconds = () => ((Date.now() - began) / 1000).toFixed(1);
  const only = process.env[sharedVariable];
  const [cp, n] = await Promise.allSettled([
    only === "node"
      ? undefined
      : startTestControlPlane("tests").then((c) => {
          process.stderr.write(
            `# control plane for integration tests: ${c.server} (ready after ${seconds()}s)\n`,
          );
          return c;
        }),
    only === "control-plane"
      ? undefined
      : startSharedNode().then((c) => {
          process.stderr.write(`# real node for end-to-end tests: ${c.server} (ready after ${seconds()}s)\n`);
          return c;
        }),
  ]);
  if (cp.status === "fulfilled") controlPlane = cp.value;
  if (n.status === "fulfilled") node = n.value;
  if (cp.status === "rejected" || n.status === "rejected") {
    await globalTeardown();
    throw cp.status === "rejected" ? cp.reason : (n as PromiseRejectedResult).reason;
  }
  // The real node's group begins with files that need no install (the CLI's build takes a
  // minute): the default install (image build, import, kubectl apply) goes on meanwhile, and the
  // first testConcierge() waits for it. A failure reaches that caller; none is unhandled here.
  if (only === "node") void testConcierge().catch(() => undefined);
  // Without it, a suite that asks for the control plane (testCluster()) starts one of its own.
  if (!cp.value) return;
  handoffDir = await mkdtemp(join(tmpdir(), "concierge-handoff-"));
  const handoff: ClusterHandoff = {
    kubeconfigPath: cp.value.kubeconfigPath,
    binDir: cp.value.binDir,
    server: cp.value.server,
  };
  const file = join(handoffDir, "cluster.json");
  await writeFile(file, JSON.stringify(handoff));
  process.env[handoffVariable] = file;
}

export async function globalTeardown(): Promise<void> {
  await Promise.all([controlPlane?.stop(), node?.stop()]);
  if (handoffDir) await rm(handoffDir, { recursive: true, force: true });
}
