// Installs the Concierge's CRDs into a cluster and waits until the API serves them.
import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);
export const crdDir = resolve(dirname(fileURLToPath(import.meta.url)), "..", "crds");

export async function installCRDs(binDir: string, kubeconfig: string): Promise<void> {
  const files = (await readdir(crdDir)).filter((f) => f.endsWith(".yaml"));
  if (files.length === 0) throw new Error(`no CRD manifests in ${crdDir}; run npm run generate`);
  const kubectl = (args: string[]) =>
    execFileAsync(join(binDir, "kubectl"), ["--kubeconfig", kubeconfig, ...args]).catch(
      (err: { stderr?: string; message: string }) => {
        throw new Error(`kubectl ${args.join(" ")} failed: ${err.stderr || err.message}`);
      },
    );
  await kubectl(["apply", "--server-side", "--field-manager=concierge-install", "-f", crdDir]);
  await kubectl(["wait", "--for=condition=Established", "--timeout=60s", "-f", crdDir]);
  // The API server publishes a CRD's OpenAPI (what `kubectl explain` reads) a few seconds after
  // Established, longer when the schema has CEL rules; installed means explainable too.
  const { stdout } = await kubectl([
    "get",
    "-f",
    crdDir,
    "-o",
    'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}',
  ]);
  const deadline = Date.now() + 60_000;
  for (const crd of stdout.split("\n").filter(Boolean)) {
    for (;;) {
      const explained = await kubectl(["explain", crd]).then(
        () => true,
        () => false,
      );
      if (explained) break;
      if (Date.now() > deadline)
        throw new Error(`the API server did not publish the OpenAPI schema of ${crd}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
