// The demo (the README's first command, through hack/demo.sh): a real control plane, the
// Concierge running against it, and a user logging in with kubectl and the pinniped CLI, each
// step printed as the command it amounts to. Everything it starts is stopped at the end, and it
// exits non-zero if a step that should succeed does not (test/integration/demo.test.ts runs it).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { discardLogger } from "../observability/logger.ts";
import { apiServiceNames } from "../server/main.ts";
import { closeBrowser } from "../test/harness/browser.ts";
import { type KubectlResult, runKubectl } from "../test/harness/cluster.ts";
import { eventually } from "../test/harness/eventually.ts";
import { startOIDCProvider, type TestOIDCProvider } from "../test/harness/oidc-provider.ts";
import { agentSelector, type PlayedNode, playControlPlaneNode } from "../test/harness/play-node.ts";
import { runCommand } from "../test/harness/process.ts";
import { loginPrompt, type UserKubectlResult, userKubectl } from "../test/harness/user-kubectl.ts";
import { type ControlPlane, freePorts, startControlPlane } from "./controlplane.ts";
import { type LocalConcierge, runLocal } from "./run-local.ts";

const began = performance.now();
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
// The user has the pinniped CLI on PATH, as generated kubeconfigs expect; here it is the clone's.
process.env.PATH = `${join(repoRoot, "bin")}${delimiter}${process.env.PATH ?? ""}`;
const user = { username: "pinny", groups: ["sea-lions"] };
const dir = await mkdtemp(join(tmpdir(), "concierge-demo-"));
const userKubeconfig = join(dir, "pinny.kubeconfig");
const proxyKubeconfig = join(dir, "pinny-via-proxy.kubeconfig");
let proxyPort = 0;

const out = (text: string) => process.stdout.write(text);
/** What is printed names the temporary directory briefly (no token is ever printed). */
const redact = (text: string) => text.replaceAll(dir, "$DEMO_DIR");
const say = (text: string) => out(`\n\x1b[1m${text}\x1b[0m\n`);
const note = (text: string) => out(`   ${redact(text)}\n`);

let cp: ControlPlane | undefined;
let concierge: LocalConcierge | undefined;
let node: PlayedNode | undefined;
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
  say(
    "1. Starting a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on loopback",
  );
  cp = await startControlPlane({ name: "demo", log: note });
  must(await kubectl(["get", "namespaces"]), "listing namespaces");

  say(
    "2. Starting the Concierge as a local process, installed from config/ and running as its ServiceAccount",
  );
  [proxyPort] = (await freePorts(1)) as [number];
  concierge = await runLocal({
    kubeconfigPath: cp.kubeconfigPath,
    binDir: cp.binDir,
    // The demo shows what kubectl shows; the Concierge's JSON log lines would drown it.
    log: discardLogger(),
    identity: "demo",
    configOverrides: { impersonationProxyServerPort: proxyPort },
  });
  note(
    `its aggregated API listens on 127.0.0.1:${concierge.ports.aggregatedAPI}; kube-apiserver proxies to it`,
  );
  must(
    await kubectl([
      "wait",
      "--for=condition=Available",
      "--timeout=120s",
      ...apiServiceNames.map((n) => `apiservice/${n}`),
    ]),
    "waiting for the APIServices",
  );
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

  say("3. Playing the node, so that kube-cert-agent can borrow the cluster's signing key");
  note("There is no kubelet here: the demo plays the node, its kubelet and kube-controller-manager's");
  note("static pod (naming the control plane's CA files), and marks the agent's pods Running.");
  node = await playControlPlaneNode({
    kubeconfigPath: cp.kubeconfigPath,
    namespace: concierge.namespace,
    nodeName: "demo-node",
  });
  must(await kubectl(["get", "nodes"]), "listing nodes");
  must(await kubectl(["get", "pods", "-n", "kube-system"]), "listing kube-system pods");

  say(`4. Connecting an identity provider: an OpenID Connect provider that knows one user, ${user.username}`);
  provider = await startOIDCProvider({
    audiences: [],
    interactive: { users: { [user.username]: { groups: user.groups } } },
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
  note("waiting for kube-cert-agent to fetch the signing key through the played kubelet…");
  await eventually(
    "the KubeClusterSigningCertificate strategy",
    async () =>
      (await strategies()).some((s) => s.type === "KubeClusterSigningCertificate" && s.status === "Success"),
    { timeoutMs: 120_000 },
  );
  must(
    await kubectl(["get", "pods", "-n", concierge.namespace, "-l", agentSelector]),
    "listing the agent pods",
  );
  const issuers = must(await kubectl(["get", "credentialissuer"]), "listing CredentialIssuers");
  if (!issuers.includes("KubeClusterSigningCertificate")) {
    throw new Error("the CredentialIssuer's DEFAULTSTRATEGY is not KubeClusterSigningCertificate");
  }

  say(`5. Authorizing the group ${user.groups[0]}: read-only access (the built-in view ClusterRole)`);
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

  say(`6. Generating ${user.username}'s kubeconfig with the pinniped CLI (it discovers the Concierge)`);
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

  say(`7. Being ${user.username}: the first kubectl sends ${user.username} to the browser to log in`);
  const first = await kubectlAsUser(["auth", "whoami"]);
  must(first, "kubectl auth whoami");
  if (first.browserLogins !== 1) throw new Error("the first kubectl did not ask for a browser login");

  say("8. Later kubectl calls reuse the short-lived certificate the plugin cached: no login, no exchange");
  const listed = await kubectlAsUser(["get", "namespaces"]);
  must(listed, "listing namespaces as the user");
  if (listed.browserLogins !== 0) throw new Error("the second kubectl asked for a login again");
  const denied = await kubectlAsUser(["get", "secrets", "-n", "kube-system"]);
  if (denied.code === 0 || !/Forbidden/.test(denied.stderr)) {
    throw new Error("listing kube-system secrets as the user was not refused as Forbidden");
  }
  note("refused, as it should be: the view ClusterRole grants no Secrets");
  must(await pinniped(["whoami", "--kubeconfig", userKubeconfig]), "pinniped whoami");

  say("9. Managed clusters (EKS, AKS, GKE) have no signing key to borrow: the impersonation proxy");
  note("The Concierge can front the Kubernetes API itself. The operator turns its proxy on; here it");
  note(`listens on 127.0.0.1:${proxyPort}, where a cloud load balancer's address would be.`);
  const proxySpec = JSON.stringify({
    spec: {
      impersonationProxy: {
        mode: "enabled",
        service: { type: "None" },
        externalEndpoint: `127.0.0.1:${proxyPort}`,
      },
    },
  });
  must(
    await kubectl([
      "patch",
      "credentialissuer",
      "pinniped-concierge-config",
      "--type=merge",
      "-p",
      proxySpec,
    ]),
    "turning the impersonation proxy on",
  );
  await eventually(
    "the ImpersonationProxy strategy",
    async () => (await strategies()).some((s) => s.type === "ImpersonationProxy" && s.reason === "Listening"),
    { timeoutMs: 60_000 },
  );
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
  say(
    "Cleaning up: stopping the browser, the Concierge, the identity provider, the played node and the control plane",
  );
  const steps: [string, () => Promise<void> | undefined][] = [
    ["the browser", () => closeBrowser()],
    ["the Concierge", () => concierge?.stop()],
    ["the played node", () => node?.stop()],
    ["the identity provider", () => provider?.close()],
    ["the control plane", () => cp?.stop()],
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
