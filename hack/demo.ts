// The demo: a real control plane, the Concierge's APIs installed, and what a
// cluster administrator sees. It grows as the Concierge does.
import { runKubectl } from "../test/harness/cluster.ts";
import { startControlPlane } from "./controlplane.ts";
import { installCRDs } from "./install.ts";

const say = (text: string) => process.stdout.write(`\n\x1b[1m${text}\x1b[0m\n`);

say(
  "1. Starting a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on loopback",
);
const cp = await startControlPlane({ name: "demo", log: (m) => process.stdout.write(`   ${m}\n`) });
const kubectl = async (args: string[], input?: string) => {
  process.stdout.write(`$ kubectl ${args.join(" ")}\n`);
  const res = await runKubectl(cp.binDir, cp.kubeconfigPath, args, input === undefined ? {} : { input });
  process.stdout.write(res.stdout + res.stderr);
  return res;
};

try {
  await kubectl(["get", "namespaces"]);

  say("2. Installing the Concierge's CustomResourceDefinitions (wire-compatible with upstream Pinniped)");
  await installCRDs(cp.binDir, cp.kubeconfigPath);
  await kubectl(["api-resources", "--categories=pinniped"]);

  say("3. An administrator declares how logins work: a CredentialIssuer and a JWTAuthenticator");
  await kubectl(
    ["apply", "-f", "-"],
    [
      "apiVersion: config.concierge.pinniped.dev/v1alpha1",
      "kind: CredentialIssuer",
      "metadata: {name: concierge-config}",
      "spec: {impersonationProxy: {mode: auto, service: {type: LoadBalancer}}}",
      "---",
      "apiVersion: authentication.concierge.pinniped.dev/v1alpha1",
      "kind: JWTAuthenticator",
      "metadata: {name: demo-issuer}",
      "spec: {issuer: 'https://issuer.example.com', audience: demo-cluster}",
    ].join("\n"),
  );
  await kubectl(["get", "pinniped"]);

  say("4. Nonsense is refused at apply time, with upstream's messages");
  await kubectl(
    ["apply", "-f", "-"],
    [
      "apiVersion: authentication.concierge.pinniped.dev/v1alpha1",
      "kind: JWTAuthenticator",
      "metadata: {name: plain-http}",
      "spec: {issuer: 'http://issuer.example.com', audience: demo-cluster}",
    ].join("\n"),
  );

  say("Next: the Concierge process fills in the status above; see the README for what exists today.");
} finally {
  say("Cleaning up: stopping the control plane");
  await cp.stop();
  process.stdout.write("   done: processes stopped, state directory removed\n");
}
