// The compatibility smoke that `npm run test:matrix` (test/matrix/run.ts) runs on each Kubernetes
// minor in hack/k8s/versions, on the real node built from that minor's binaries: the Concierge
// installed from its image, both authenticator kinds, TokenCredentialRequest through the
// aggregator, `kubectl auth whoami` with the kubeconfig the pinniped CLI writes, the admission
// webhook, and the impersonation proxy's exec and port-forward over WebSocket and SPDY. Each `it`
// is one column of the matrix table, so a check does not depend on another's side effects; they
// share the install and the objects `setup` makes once.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { NodeCluster } from "../../hack/node/cluster.ts";
import { busyboxImage } from "../../hack/node/images.ts";
import { uniqueName } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import { type AuthenticatorRef, loginOnNode } from "../harness/login.ts";
import { testConcierge } from "../harness/node.ts";
import { startOIDCProvider, type TestOIDCProvider } from "../harness/oidc-provider.ts";
import { runCommand } from "../harness/process.ts";
import { giveLoadBalancerAddress, proxyListening, setProxyMode } from "../harness/proxy-cloud.ts";
import { startTokenReviewWebhook, type TokenReviewWebhook } from "../harness/tokenreview-webhook.ts";

const pinnipedBin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "pinniped");
const group = "authentication.concierge.pinniped.dev";
/** The cloud's address for the proxy's load balancer: in the range the node routes to the bridge. */
const loadBalancerIP = "10.89.0.21";
const audience = "smoke-cluster";
const webhookUser = { username: "pinny-webhook", groups: ["smoke-seals"] };
const jwtUser = { username: "pinny-jwt", groups: ["smoke-seals"] };
// kubectl 1.30 sends port-forward over SPDY unless told otherwise (WebSocket became its default in
// 1.31), so each protocol is asked for explicitly; where kube-apiserver cannot take a WebSocket
// port-forward, kubectl falls back to SPDY, as it would for a user.
const protocols = [
  ["WebSocket", { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "true", KUBECTL_PORT_FORWARD_WEBSOCKETS: "true" }],
  ["SPDY", { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false", KUBECTL_PORT_FORWARD_WEBSOCKETS: "false" }],
] as const;
/** A check that hangs fails on its own instead of holding up the other minors. */
const check = { timeout: 300_000 };

interface Fixture {
  n: NodeCluster;
  dir: string;
  ns: string;
  webhook: TokenReviewWebhook;
  oidc: TestOIDCProvider;
  webhookAuthenticator: string;
  jwtAuthenticator: string;
  token: string;
}

let fixture: Promise<Fixture> | undefined;
const cleanups: (() => Promise<unknown>)[] = [];

/** The install and the objects every check uses, made once by whichever check runs first. */
function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    const { node: n } = await testConcierge();
    const dir = await mkdtemp(join(tmpdir(), "smoke-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ns = uniqueName("smoke");
    const webhookAuthenticator = uniqueName("smoke-webhook");
    const jwtAuthenticator = uniqueName("smoke-jwt");
    const token = `token-${webhookAuthenticator}`;
    // Pods reach the test's servers on the bridge: the node's own address, their gateway.
    const webhook = await startTokenReviewWebhook({ users: { [token]: webhookUser }, host: n.node.bridgeIP });
    cleanups.push(() => webhook.close());
    const oidc = await startOIDCProvider({ audiences: [audience], host: n.node.bridgeIP });
    cleanups.push(() => oidc.close());
    cleanups.push(() =>
      n.kubectl([
        "delete",
        `webhookauthenticator/${webhookAuthenticator}`,
        `jwtauthenticator/${jwtAuthenticator}`,
        "--ignore-not-found",
      ]),
    );
    cleanups.push(() => n.kubectl(["delete", "namespace", ns, "--wait=false"]));
    await n.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: `${group}/v1alpha1`,
            kind: "WebhookAuthenticator",
            metadata: { name: webhookAuthenticator },
            spec: { endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } },
          },
          {
            apiVersion: `${group}/v1alpha1`,
            kind: "JWTAuthenticator",
            metadata: { name: jwtAuthenticator },
            spec: {
              issuer: oidc.issuer,
              audience,
              claims: { username: "username", groups: "groups" },
              tls: { certificateAuthorityData: Buffer.from(oidc.caPEM).toString("base64") },
            },
          },
          { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
        ],
      }),
    );
    await n.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "Role",
            metadata: { name: "smoke-seals", namespace: ns },
            rules: [
              { apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] },
              { apiGroups: [""], resources: ["pods/exec", "pods/portforward"], verbs: ["get", "create"] },
            ],
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name: "smoke-seals", namespace: ns },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "smoke-seals" },
            subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "smoke-seals" }],
          },
          {
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: "app", namespace: ns },
            spec: {
              terminationGracePeriodSeconds: 0,
              containers: [
                {
                  name: "app",
                  image: busyboxImage,
                  imagePullPolicy: "Never",
                  // What port-forward reaches: a page on port 7000.
                  command: [
                    "sh",
                    "-c",
                    "mkdir -p /tmp/www && echo smoke page > /tmp/www/index.html && exec httpd -f -p 7000 -h /tmp/www",
                  ],
                },
              ],
            },
          },
        ],
      }),
    );
    for (const kind of ["webhookauthenticator", "jwtauthenticator"]) {
      const name = kind === "jwtauthenticator" ? jwtAuthenticator : webhookAuthenticator;
      await n.kubectl(["wait", "--for=jsonpath={.status.phase}=Ready", "--timeout=90s", `${kind}/${name}`]);
    }
    await n.kubectl(["wait", "--for=condition=Ready", "--timeout=120s", "-n", ns, "pod/app"]);
    return { n, dir, ns, webhook, oidc, webhookAuthenticator, jwtAuthenticator, token };
  })();
  return fixture;
}

/** A TokenCredentialRequest through the aggregator, as the admin; its certificate as a kubeconfig. */
function login(
  f: Fixture,
  kind: AuthenticatorRef["kind"],
  authenticator: string,
  token: string,
): Promise<string> {
  return loginOnNode(f.n, token, { kind, name: authenticator }, join(f.dir, `${authenticator}.kubeconfig`));
}

/** kubectl as a user; rejects with kubectl's own error on a non-zero exit. */
async function asUser(
  f: Fixture,
  kubeconfig: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<string> {
  const res = await runCommand(
    join(f.n.binDir, "kubectl"),
    ["--kubeconfig", kubeconfig, "--cache-dir", join(f.dir, "cache"), ...args],
    { env, timeoutMs: 90_000 },
  );
  assert.equal(res.code, 0, `kubectl ${args.join(" ")}: ${res.stderr.trim()}`);
  return res.stdout;
}

async function whoami(f: Fixture, kubeconfig: string): Promise<{ username: string; groups: string[] }> {
  const out = await asUser(f, kubeconfig, ["auth", "whoami", "-o", "json"]);
  return (JSON.parse(out) as { status: { userInfo: { username: string; groups: string[] } } }).status
    .userInfo;
}

/** `pinniped get kubeconfig` for the webhook user's static token, in the given mode. */
async function pinnipedKubeconfig(f: Fixture, mode: "TokenCredentialRequestAPI" | "ImpersonationProxy") {
  const out = join(f.dir, `${mode}.kubeconfig`);
  const res = await runCommand(
    pinnipedBin,
    [
      "get",
      "kubeconfig",
      // Kubeconfigs name `pinniped` on PATH by default; this suite runs the clone's.
      "--pinniped-cli-path",
      pinnipedBin,
      "--kubeconfig",
      f.n.kubeconfigPath,
      "--concierge-mode",
      mode,
      "--concierge-authenticator-type",
      "webhook",
      "--concierge-authenticator-name",
      f.webhookAuthenticator,
      "--static-token",
      f.token,
      "--credential-cache",
      join(f.dir, `${mode}-credentials.yaml`),
      "-o",
      out,
    ],
    { timeoutMs: 90_000 },
  );
  assert.equal(res.code, 0, `pinniped get kubeconfig: ${res.stderr.trim()}`);
  return out;
}

let proxyKubeconfig: Promise<string> | undefined;

/** The impersonation proxy on, behind a LoadBalancer Service whose address the test gives as the cloud. */
function proxy(f: Fixture): Promise<string> {
  proxyKubeconfig ??= (async () => {
    cleanups.push(() => setProxyMode(f.n, "auto"));
    await setProxyMode(f.n, "enabled");
    await giveLoadBalancerAddress(f.n, loadBalancerIP);
    await eventually("the ImpersonationProxy strategy to be Listening", () => proxyListening(f.n), {
      timeoutMs: 120_000,
    });
    const kubeconfig = await pinnipedKubeconfig(f, "ImpersonationProxy");
    // kube-proxy programs the Service's load-balancer rules a moment after it gets its address.
    await eventually("a request through the proxy", () => whoami(f, kubeconfig), { timeoutMs: 60_000 });
    return kubeconfig;
  })();
  return proxyKubeconfig;
}

/** A long-running kubectl whose output the test reads as it comes. */
function background(command: string, args: string[], env: NodeJS.ProcessEnv) {
  const child: ChildProcess = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => {
    stdout += c;
  });
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c;
  });
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  return {
    out: () => stdout,
    err: () => stderr,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

describe("compatibility smoke", () => {
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  it("install: the Concierge from its image, with the CRDs, Ready behind the aggregator", check, async () => {
    const { n } = await setup();
    const resources = await n.kubectl([
      "api-resources",
      "--api-group=login.concierge.pinniped.dev",
      "-o",
      "name",
    ]);
    assert.match(resources, /^tokencredentialrequests\.login\.concierge\.pinniped\.dev$/m);
  });

  it("admission webhook: refuses a bad JWTAuthenticator and warns about a doubtful one", check, async () => {
    const f = await setup();
    const name = uniqueName("smoke-admission");
    const apply = (spec: Record<string, unknown>) =>
      runCommand(join(f.n.binDir, "kubectl"), ["--kubeconfig", f.n.kubeconfigPath, "apply", "-f", "-"], {
        input: JSON.stringify({
          apiVersion: `${group}/v1alpha1`,
          kind: "JWTAuthenticator",
          metadata: { name },
          spec: { issuer: "https://issuer.example.com", audience: "smoke", ...spec },
        }),
      });
    try {
      const refused = await apply({ audiences: ["cli"] });
      assert.notEqual(refused.code, 0, refused.stdout);
      assert.match(refused.stderr, /denied the request: spec\.audienceMatchPolicy: Required value/);
      const warned = await apply({ issuer: "https://issuer.example.com/?tenant=seals" });
      assert.equal(warned.code, 0, warned.stderr);
      assert.match(warned.stderr, /^Warning: spec\.issuer: /m);
    } finally {
      await f.n.kubectl(["delete", "jwtauthenticator", name, "--ignore-not-found"]);
    }
  });

  it(
    "WebhookAuthenticator: a TokenCredentialRequest through the aggregator, then its certificate",
    check,
    async () => {
      const f = await setup();
      const kubeconfig = await login(f, "WebhookAuthenticator", f.webhookAuthenticator, f.token);
      const who = await whoami(f, kubeconfig);
      assert.equal(who.username, webhookUser.username);
      assert.ok(who.groups.includes("smoke-seals"), who.groups.join(", "));
    },
  );

  it(
    "JWTAuthenticator: a TokenCredentialRequest through the aggregator, then its certificate",
    check,
    async () => {
      const f = await setup();
      const token = await f.oidc.mint({ subject: "smoke-subject", audience, claims: jwtUser });
      const kubeconfig = await login(f, "JWTAuthenticator", f.jwtAuthenticator, token);
      const who = await whoami(f, kubeconfig);
      assert.equal(who.username, jwtUser.username);
      assert.ok(who.groups.includes("smoke-seals"), who.groups.join(", "));
    },
  );

  it(
    "pinniped CLI: kubectl auth whoami with the kubeconfig pinniped get kubeconfig writes",
    check,
    async () => {
      const f = await setup();
      const kubeconfig = await pinnipedKubeconfig(f, "TokenCredentialRequestAPI");
      assert.equal((await whoami(f, kubeconfig)).username, webhookUser.username);
    },
  );

  for (const [protocol, env] of protocols) {
    it(`impersonation proxy: exec over ${protocol}`, check, async () => {
      const f = await setup();
      const kubeconfig = await proxy(f);
      assert.equal(
        await asUser(f, kubeconfig, ["exec", "app", "-n", f.ns, "--", "echo", "hello", "seal"], env),
        "hello seal\n",
      );
    });
  }

  for (const [protocol, env] of protocols) {
    it(`impersonation proxy: port-forward over ${protocol}`, check, async () => {
      const f = await setup();
      const kubeconfig = await proxy(f);
      const pf = background(
        join(f.n.binDir, "kubectl"),
        ["--kubeconfig", kubeconfig, "port-forward", "-n", f.ns, "pod/app", ":7000"],
        env,
      );
      try {
        const local = await eventually(
          "port-forward to listen",
          () => Number(/Forwarding from 127\.0\.0\.1:(\d+) -> 7000/.exec(pf.out())?.[1]) || undefined,
          { timeoutMs: 60_000 },
        ).catch((err: Error) => {
          throw new Error(`${err.message}; kubectl said: ${pf.err().trim()}`);
        });
        const page = await fetch(`http://127.0.0.1:${local}/`, { signal: AbortSignal.timeout(60_000) });
        assert.equal(await page.text(), "smoke page\n");
      } finally {
        await pf.stop();
      }
    });
  }
});
