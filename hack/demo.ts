// The demo (the README's first command, through hack/demo.sh): a one-node cluster with a real
// kubelet, the Concierge installed on it from its image with kubectl apply, and a user logging
// in with kubectl and the pinniped CLI, each step printed as the command it amounts to. It runs
// inside network and mount namespaces of its own (npm run demo goes through
// hack/node/launch.ts); everything it starts is stopped at the end, and it exits non-zero if a
// step that should succeed does not (test/integration/demo.test.ts runs it).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { agentPodLabelSelector } from "../controllers/kubecertagent/agent.ts";
import { closeBrowser } from "../test/harness/browser.ts";
import { type KubectlResult, runKubectl } from "../test/harness/cluster.ts";
import { eventually } from "../test/harness/eventually.ts";
import { startOIDCProvider, type TestOIDCProvider } from "../test/harness/oidc-provider.ts";
import { runCommand } from "../test/harness/process.ts";
import { lbService, loadBalancerAddressArgs, proxyModeArgs } from "../test/harness/proxy-cloud.ts";
import { loginPrompt, type UserKubectlResult, userKubectl } from "../test/harness/user-kubectl.ts";
import { type NodeCluster, startNodeCluster } from "./node/cluster.ts";
import { conciergeNamespace, installConcierge } from "./node/install-concierge.ts";

const began = performance.now();
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
// The user has the pinniped CLI on PATH, as generated kubeconfigs expect; here it is the clone's.
process.env.PATH = `${join(repoRoot, "bin")}${delimiter}${process.env.PATH ?? ""}`;
const user = { username: "pinny", groups: ["sea-lions"] };
const dir = await mkdtemp(join(tmpdir(), "concierge-demo-"));
const userKubeconfig = join(dir, "pinny.kubeconfig");
const proxyKubeconfig = join(dir, "pinny-via-proxy.kubeconfig");
/** The address the demo gives the proxy's load balancer, playing the cloud (routed on the node). */
const loadBalancerIP = "10.89.0.10";

const out = (text: string) => process.stdout.write(text);
/** What is printed names the temporary directory briefly (no token is ever printed). */
const redact = (text: string) => text.replaceAll(dir, "$DEMO_DIR");
const say = (text: string) => out(`\n\x1b[1m${text}\x1b[0m\n`);
const note = (text: string) => out(`   ${redact(text)}\n`);

let cp: NodeCluster | undefined;
let provider: TestOIDCProvider | undefined;

/** kubectl as the admin; its output printed. */
async function kubectl(
  args: string[],
  opts: { input?: string; shown?: string; quiet?: boolean } = {},
): Promise<KubectlResult> {
  if (!opts.quiet) out(redact(`$ kubectl ${opts.shown ?? args.join(" ")}\n`));
  // Its own discovery cache, so that nothing is left in ~/.kube.
  const res = await runKubectl(
    cp!.binDir,
    cp!.kubeconfigPath,
    ["--cache-dir", join(dir, "kube-cache"), ...args],
    opts.input === undefined ? {} : { input: opts.input },
  );
  if (!opts.quiet) out(redact(res.stdout + res.stderr));
  return res;
}

/**
 * kubectl as the user, with the kubeconfig pinniped wrote. When the exec plugin prints its login
 * link, the user's browser (headless Chromium here) signs in at the identity provider.
 */
async function kubectlAsUser(args: string[], kubeconfig = userKubeconfig): Promise<UserKubectlResult> {
  out(redact(`$ kubectl --kubeconfig ${kubeconfig} ${args.join(" ")}\n`));
  const res = await userKubectl(args, {
    binDir: cp!.binDir,
    kubeconfig,
    cacheDir: join(dir, "kube-cache"),
    login: { username: user.username, password: "the demo's provider accepts any password" },
    onLoginURL: (url) => {
      out(`Log in by visiting this link:\n\n    ${url}\n\n`);
      note(
        `[the plugin waits; ${user.username}'s browser (headless Chromium) opens the link, signs in as ${user.username} and approves]`,
      );
    },
  });
  // The login link was shown when it appeared, in the order a person sees it.
  const loginLink = new RegExp(`${loginPrompt.source}\\n?`);
  out(redact(res.stdout + res.stderr.replace(loginLink, "")));
  return res;
}

async function pinniped(args: string[]): Promise<KubectlResult> {
  out(redact(`$ pinniped ${args.join(" ")}\n`));
  const res = await runCommand("pinniped", args);
  out(redact(res.stdout + res.stderr));
  return res;
}

/** Every CredentialIssuer's strategies, as the admin sees them (none while it cannot list). */
async function strategies(): Promise<{ type: string; status: string; reason: string }[]> {
  const res = await kubectl(["get", "credentialissuer", "-o", "json"], { quiet: true });
  if (res.code !== 0) return [];
  const issuers = JSON.parse(res.stdout) as {
    items: { status?: { strategies?: { type: string; status: string; reason: string }[] } }[];
  };
  return issuers.items.flatMap((i) => i.status?.strategies ?? []);
}

function must(res: KubectlResult, what: string): string {
  if (res.code !== 0) throw new Error(`${what} failed (exit ${res.code})`);
  return res.stdout;
}

try {
  say("1. Starting a one-node Kubernetes cluster: etcd, kube-apiserver, kube-scheduler, and a real node");
  note("containerd, kubelet and kube-proxy, in network and mount namespaces of the demo's own;");
  note("kube-controller-manager runs as a static pod on the node, as kubeadm sets it up");
  cp = await startNodeCluster({ log: note });
  must(await kubectl(["get", "nodes", "-o", "wide"]), "listing nodes");

  say("2. Installing the Concierge as a user would: its image, then kubectl apply -f crds/ -f config/");
  note("npm run build:image builds the image without a container engine; no registry is reachable");
  note("here, so it goes straight into the node's containerd (elsewhere: skopeo copy to a registry)");
  const installed = await installConcierge(cp, { log: note });
  out("$ kubectl apply -f crds/ -f config/\n");
  out(installed.applied);
  must(await kubectl(["get", "pods", "-A", "-o", "wide"]), "listing pods");
  note("two Concierge replicas, and the kube-cert-agent pod next to kube-controller-manager's static");
  note("pod: the Concierge execs into it through the kubelet to borrow the cluster's signing key");
  const apiServices = must(await kubectl(["get", "apiservices"], { quiet: true }), "listing APIServices");
  out("$ kubectl get apiservices | grep -e NAME -e concierge\n");
  out(
    apiServices
      .split("\n")
      .filter((line) => line.startsWith("NAME") || line.includes("concierge"))
      .map((line) => `${line}\n`)
      .join(""),
  );
  // Discovery may trail the APIService's Available condition by a moment.
  await eventually(
    "the login API in discovery",
    async () => {
      const res = await kubectl(["api-resources", "--api-group=login.concierge.pinniped.dev"], {
        quiet: true,
      });
      return res.stdout.includes("tokencredentialrequests") ? true : undefined;
    },
    { timeoutMs: 120_000 },
  );
  must(await kubectl(["api-resources", "--api-group=login.concierge.pinniped.dev"]), "listing the login API");

  say(`3. Connecting an identity provider: an OpenID Connect provider that knows one user, ${user.username}`);
  provider = await startOIDCProvider({
    audiences: [],
    interactive: { users: { [user.username]: { groups: user.groups } } },
    // The Concierge's pods reach it on the node's bridge.
    host: cp.node.bridgeIP,
  });
  note(`the provider (the oidc-provider package) serves ${provider.issuer} with a CA of the demo's own;`);
  note(`${user.username} is in group ${user.groups.join(", ")}; the CLI is its public client "pinniped-cli"`);
  const caBase64 = Buffer.from(provider.caPEM).toString("base64");
  const authenticator = [
    "apiVersion: authentication.concierge.pinniped.dev/v1alpha1",
    "kind: JWTAuthenticator",
    "metadata: {name: demo-oidc}",
    "spec:",
    `  issuer: ${provider.issuer}`,
    "  audience: pinniped-cli",
    "  claims: {username: username, groups: groups}",
    `  tls: {certificateAuthorityData: '${caBase64}'}`,
  ].join("\n");
  must(
    await kubectl(["apply", "-f", "-"], {
      input: authenticator,
      shown: `apply -f - <<EOF\n${authenticator.replace(caBase64, "<the provider's CA, base64>")}\nEOF`,
    }),
    "creating the JWTAuthenticator",
  );
  must(
    await kubectl([
      "wait",
      "--for=jsonpath={.status.phase}=Ready",
      "--timeout=60s",
      "jwtauthenticator/demo-oidc",
    ]),
    "waiting for the JWTAuthenticator",
  );
  must(await kubectl(["get", "jwtauthenticator"]), "listing JWTAuthenticators");
  note("kube-cert-agent has fetched the signing key through the kubelet:");
  await eventually(
    "the KubeClusterSigningCertificate strategy",
    async () =>
      (await strategies()).some((s) => s.type === "KubeClusterSigningCertificate" && s.status === "Success"),
    { timeoutMs: 120_000 },
  );
  must(
    await kubectl(["get", "pods", "-n", conciergeNamespace, "-l", agentPodLabelSelector]),
    "listing the agent pods",
  );
  const issuers = must(await kubectl(["get", "credentialissuer"]), "listing CredentialIssuers");
  if (!issuers.includes("KubeClusterSigningCertificate")) {
    throw new Error("the CredentialIssuer's DEFAULTSTRATEGY is not KubeClusterSigningCertificate");
  }

  say(`4. Authorizing the group ${user.groups[0]}: read-only access (the built-in view ClusterRole)`);
  must(
    await kubectl([
      "create",
      "clusterrolebinding",
      "sea-lions-view",
      "--clusterrole=view",
      "--group=sea-lions",
    ]),
    "creating the ClusterRoleBinding",
  );

  say(`5. Generating ${user.username}'s kubeconfig with the pinniped CLI (it discovers the Concierge)`);
  must(
    await pinniped([
      "get",
      "kubeconfig",
      "--kubeconfig",
      cp.kubeconfigPath,
      // The demo plays the browser itself, rather than opening one on your desktop.
      "--oidc-skip-browser",
      "--credential-cache",
      join(dir, "credentials.yaml"),
      "--oidc-session-cache",
      join(dir, "sessions.yaml"),
      "-o",
      userKubeconfig,
    ]),
    "pinniped get kubeconfig",
  );
  const generated = parse(await readFile(userKubeconfig, "utf8")) as {
    users: { user: { exec: { args: string[] } } }[];
  };
  const exec = generated.users[0]!.user.exec;
  // Screenfuls of base64 that say nothing to a reader.
  const args = exec.args.map((a) =>
    a.startsWith("--concierge-ca-bundle-data=")
      ? "--concierge-ca-bundle-data=<the cluster's CA, base64>"
      : a.startsWith("--ca-bundle-data=")
        ? "--ca-bundle-data=<the provider's CA, base64>"
        : a,
  );
  note(
    "its user runs the CLI as a kubectl exec plugin: an OIDC login, then a certificate from the Concierge:",
  );
  out(
    redact(stringify({ exec: { ...exec, args } }))
      .split("\n")
      .map((line) => (line ? `     ${line}\n` : ""))
      .join(""),
  );

  say(`6. Being ${user.username}: the first kubectl sends ${user.username} to the browser to log in`);
  const first = await kubectlAsUser(["auth", "whoami"]);
  must(first, "kubectl auth whoami");
  if (first.browserLogins !== 1) throw new Error("the first kubectl did not ask for a browser login");

  say("7. Later kubectl calls reuse the short-lived certificate the plugin cached: no login, no exchange");
  const listed = await kubectlAsUser(["get", "namespaces"]);
  must(listed, "listing namespaces as the user");
  if (listed.browserLogins !== 0) throw new Error("the second kubectl asked for a login again");
  const denied = await kubectlAsUser(["get", "secrets", "-n", "kube-system"]);
  if (denied.code === 0 || !/Forbidden/.test(denied.stderr)) {
    throw new Error("listing kube-system secrets as the user was not refused as Forbidden");
  }
  note("refused, as it should be: the view ClusterRole grants no Secrets");
  must(await pinniped(["whoami", "--kubeconfig", userKubeconfig]), "pinniped whoami");

  say("8. Managed clusters (EKS, AKS, GKE) have no signing key to borrow: the impersonation proxy");
  note("The Concierge can front the Kubernetes API itself. The operator turns its proxy on, behind a");
  note("LoadBalancer Service. The demo plays the cloud: it gives the load balancer an address, and");
  note("kube-proxy on the node routes that address to the Concierge's pods.");
  must(await kubectl(proxyModeArgs("enabled")), "turning the impersonation proxy on");
  await eventually(
    "the proxy's LoadBalancer Service",
    async () =>
      (await kubectl(["get", "service", "-n", conciergeNamespace, lbService], { quiet: true })).code === 0,
    { timeoutMs: 60_000 },
  );
  must(await kubectl(loadBalancerAddressArgs(loadBalancerIP)), "giving the load balancer its address");
  await eventually(
    "the ImpersonationProxy strategy",
    async () => (await strategies()).some((s) => s.type === "ImpersonationProxy" && s.reason === "Listening"),
    { timeoutMs: 120_000 },
  );
  must(await kubectl(["get", "service", "-n", conciergeNamespace, lbService]), "showing the load balancer");
  must(
    await kubectl([
      "get",
      "credentialissuer",
      "-o",
      "custom-columns=STRATEGY:.status.strategies[*].type,STATUS:.status.strategies[*].reason",
    ]),
    "listing the strategies",
  );
  must(
    await pinniped([
      "get",
      "kubeconfig",
      "--kubeconfig",
      cp.kubeconfigPath,
      "--concierge-mode",
      "ImpersonationProxy",
      "--oidc-skip-browser",
      "--credential-cache",
      join(dir, "credentials.yaml"),
      "--oidc-session-cache",
      join(dir, "sessions.yaml"),
      "-o",
      proxyKubeconfig,
    ]),
    "pinniped get kubeconfig for the proxy",
  );
  note("the same login through the proxy: the plugin still has pinny's ID token, so no browser;");
  note("every request now goes to the proxy, which forwards it impersonating pinny:");
  const viaProxy = await kubectlAsUser(["auth", "whoami"], proxyKubeconfig);
  must(viaProxy, "kubectl auth whoami through the proxy");
  if (viaProxy.browserLogins !== 0) throw new Error("the proxy kubeconfig asked for a browser login again");
  must(await kubectlAsUser(["get", "namespaces"], proxyKubeconfig), "listing namespaces through the proxy");
} catch (err) {
  process.exitCode = 1;
  say(`The demo failed: ${redact((err as Error).message)}`);
} finally {
  say("Cleaning up: stopping the browser, the identity provider and the cluster");
  const steps: [string, () => Promise<void> | undefined][] = [
    ["the browser", () => closeBrowser()],
    ["the identity provider", () => provider?.close()],
    ["the cluster", () => cp?.stop()],
    ["the temporary directory", () => rm(dir, { recursive: true, force: true })],
  ];
  for (const [what, step] of steps) {
    await step()?.catch((err: unknown) => {
      process.exitCode = 1;
      note(`stopping ${what} failed: ${(err as Error).message}`);
    });
  }
  note(`done in ${Math.round((performance.now() - began) / 1000)} s: processes stopped, state removed`);
}
