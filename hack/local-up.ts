// `npm run cluster`: a local control plane for a person, until Ctrl-C.
import { join, resolve } from "node:path";
import { startControlPlane } from "./controlplane.ts";
import { installCRDs } from "./install.ts";

const dir = resolve(
  process.env.CONCIERGE_LOCAL_UP_DIR ?? join(import.meta.dirname, "..", ".cache", "local-up"),
);
const cp = await startControlPlane({ name: "local", dir });
await installCRDs(cp.binDir, cp.kubeconfigPath);
const kubectl = join(cp.binDir, "kubectl");
process.stdout.write(
  [
    "",
    "A local Kubernetes control plane is running (etcd, kube-apiserver, kube-controller-manager).",
    `  API server:  ${cp.server}`,
    `  kubeconfig:  ${cp.kubeconfigPath}`,
    `  logs:        ${dir}/*.log`,
    "Try:",
    `  ${kubectl} --kubeconfig ${cp.kubeconfigPath} get ns`,
    `  ${kubectl} --kubeconfig ${cp.kubeconfigPath} get credentialissuer,jwtauthenticator,webhookauthenticator`,
    "Press Ctrl-C to stop it.",
    "",
  ].join("\n"),
);
const keepAlive = setInterval(() => {}, 1 << 30);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stdout.write("\nstopping the control plane...\n");
    clearInterval(keepAlive);
    void cp.stop().then(() => process.exit(0));
  });
}
