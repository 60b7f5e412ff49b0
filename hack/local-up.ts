// `npm run cluster`: the one-node cluster with the Concierge installed from its image, for a
// person. It runs inside the node's namespaces (npm run cluster goes through hack/node/launch.ts),
// so the cluster's addresses are reachable only from there: on a terminal it opens a shell inside,
// with KUBECONFIG set and kubectl and pinniped on PATH, and stops everything when the shell exits;
// otherwise it waits for Ctrl-C or SIGTERM. Either way nothing is left behind.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { startNodeCluster } from "./node/cluster.ts";
import { installConcierge } from "./node/install-concierge.ts";

const repoRoot = join(import.meta.dirname, "..");
const log = (m: string) => process.stdout.write(`${m}\n`);
const cluster = await startNodeCluster({ log });
let stopping: Promise<void> | undefined;
const stop = () => {
  stopping ??= (async () => {
    log("stopping the cluster...");
    await cluster.stop();
  })();
  return stopping;
};
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => void stop().then(() => process.exit(0)));
}

try {
  await installConcierge(cluster, { log });
} catch (err) {
  log(`installing the Concierge failed: ${(err as Error).message}`);
  await stop();
  process.exit(1);
}
const env = {
  ...process.env,
  KUBECONFIG: cluster.kubeconfigPath,
  PATH: `${cluster.binDir}:${join(repoRoot, "bin")}:${process.env.PATH ?? ""}`,
  PS1: "(concierge node) \\w\\$ ",
};
log(
  [
    "",
    "A one-node Kubernetes cluster is running, with the Concierge installed from its image.",
    `  API server:  ${cluster.server} (reachable only inside the node's namespaces)`,
    `  kubeconfig:  ${cluster.kubeconfigPath}`,
    `  logs:        ${cluster.logDir}`,
    "Try: kubectl get nodes; kubectl get pods -A; kubectl get credentialissuer",
    "",
  ].join("\n"),
);
if (process.stdin.isTTY) {
  log("This is a shell inside the node; exit it to stop the cluster.");
  const shell = spawn("bash", ["--norc", "-i"], { stdio: "inherit", env });
  // The shell gets Ctrl-C itself; the cluster stops when it exits.
  process.removeAllListeners("SIGINT");
  process.on("SIGINT", () => {});
  const code = await new Promise<number>((resolve) => shell.once("exit", (c) => resolve(c ?? 0)));
  await stop();
  process.exit(code);
} else {
  log("Press Ctrl-C to stop it.");
  setInterval(() => {}, 1 << 30);
}
