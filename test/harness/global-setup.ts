// node --test --test-global-setup: one real control plane for the whole run.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ControlPlane } from "../../hack/controlplane.ts";
import { type ClusterHandoff, handoffVariable, startTestControlPlane } from "./cluster.ts";

let controlPlane: ControlPlane | undefined;
let handoffDir: string | undefined;

export async function globalSetup(): Promise<void> {
  const began = Date.now();
  controlPlane = await startTestControlPlane("tests");
  handoffDir = await mkdtemp(join(tmpdir(), "concierge-handoff-"));
  const handoff: ClusterHandoff = {
    kubeconfigPath: controlPlane.kubeconfigPath,
    binDir: controlPlane.binDir,
    server: controlPlane.server,
  };
  const file = join(handoffDir, "cluster.json");
  await writeFile(file, JSON.stringify(handoff));
  process.env[handoffVariable] = file;
  process.stderr.write(
    `# control plane for integration tests: ${controlPlane.server} (ready ${((Date.now() - began) / 1000).toFixed(1)}s after setup began)\n`,
  );
}

export async function globalTeardown(): Promise<void> {
  await controlPlane?.stop();
  if (handoffDir) await rm(handoffDir, { recursive: true, force: true });
}
