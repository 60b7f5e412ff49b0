// The real one-node cluster (hack/node/) that end-to-end tests run against: one per test run,
// started by global-setup.ts inside the namespaces the launcher made. A test file run on its own
// through the launcher (see README) starts one itself on first use.
import { type NodeCluster, startNodeCluster } from "../../hack/node/cluster.ts";
import { type InstalledConcierge, installConcierge } from "../../hack/node/install-concierge.ts";
import { nodeDirVariable } from "../../hack/node/namespaces.ts";

let shared: Promise<NodeCluster> | undefined;

/** Called by global-setup.ts, which owns the node's processes and stops them at the end. */
export function startSharedNode(): Promise<NodeCluster> {
  shared = startNodeCluster({ log: (m) => process.stderr.write(`# node: ${m}\n`) });
  return shared;
}

export function testNode(): Promise<NodeCluster> {
  if (!process.env[nodeDirVariable])
    return Promise.reject(
      new Error(
        "end-to-end tests need the real node: run them through the launcher, e.g. " +
          "node hack/node/launch.ts node --test --test-global-setup=test/harness/global-setup.ts <file>",
      ),
    );
  if (!shared) {
    shared = startSharedNode();
    const started = shared;
    process.once("beforeExit", () => void started.then((node) => node.stop()));
  }
  return shared;
}

let concierge: Promise<InstalledConcierge> | undefined;

/**
 * The Concierge installed on the run's node from its image (`npm run build:image`), with
 * `kubectl apply -f crds/ -f config/`: once per run, shared by every end-to-end suite.
 */
export async function testConcierge(): Promise<{ node: NodeCluster; concierge: InstalledConcierge }> {
  const node = await testNode();
  concierge ??= installConcierge(node, { log: (m) => process.stderr.write(`# node: ${m}\n`) });
  return { node, concierge: await concierge };
}
