// The impersonation proxy of the Concierge installed from its image on the real node, with real
// workloads: the test plays only the cloud, writing the proxy's LoadBalancer Service's
// `status.loadBalancer.ingress`, and kube-proxy on the node routes that address to the Concierge's
// pods. Through it, as a user logged in with `pinniped login static`: exec and attach over
// WebSocket and SPDY, logs and cp with a busybox pod run by the real kubelet. Auto mode follows
// the node's control-plane label.
//
// The component-level suite (impersonation-proxy.test.ts) keeps the rest for now: port-forward
// (through the real kubelet it hung here; not yet understood), idle cuts by a played load
// balancer, CA rotation, anonymous and nested impersonation.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { controlPlaneLabel, type NodeCluster } from "../../hack/node/cluster.ts";
import { busyboxImage } from "../../hack/node/images.ts";
import { conciergeNamespace } from "../../hack/node/install-concierge.ts";
import { uniqueName } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import { testConcierge } from "../harness/node.ts";
import { runCommand } from "../harness/process.ts";
import { startTokenReviewWebhook, type TokenReviewWebhook } from "../harness/tokenreview-webhook.ts";

const pinnipedBin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "pinniped");
const issuerName = "pinniped-concierge-config";
const lbService = "pinniped-concierge-impersonation-proxy-load-balancer";
/** The cloud's address for the proxy's load balancer: in the range the node routes to the bridge. */
const loadBalancerIP = "10.89.0.20";
const user = { username: "pinny-proxy", groups: ["proxy-seals"] };
const spdy = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false", KUBECTL_PORT_FORWARD_WEBSOCKETS: "false" };

interface Strategy {
  type: string;
  status: string;
  reason: string;
  frontend?: { impersonationProxyInfo?: { endpoint: string } };
}

/** A long-running kubectl whose output the test reads as it comes. */
function background(command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child: ChildProcess = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => {
    stdout += c;
  });
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c;
  });
  const exited = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 1)));
  return {
    child,
    out: () => stdout,
    err: () => stderr,
    exited,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

describe("impersonation proxy of the in-cluster Concierge, behind a LoadBalancer Service kube-proxy routes", () => {
  let n: NodeCluster;
  let dir: string;
  let webhook: TokenReviewWebhook;
  let generated: string;
  const ns = uniqueName("proxy-node");
  const authenticator = uniqueName("proxy-node");
  const token = `token-${authenticator}`;

  const strategy = async () =>
    (
      JSON.parse(await n.kubectl(["get", "credentialissuer", issuerName, "-o", "json"])) as {
        status?: { strategies?: Strategy[] };
      }
    ).status?.strategies?.find((s) => s.type === "ImpersonationProxy");
  const kubectlBin = () => join(n.binDir, "kubectl");
  const asUser = (args: string[], env: NodeJS.ProcessEnv = {}, input?: string) =>
    runCommand(kubectlBin(), ["--kubeconfig", generated, "--cache-dir", join(dir, "cache"), ...args], {
      env,
      ...(input === undefined ? {} : { input }),
      timeoutMs: 90_000,
    });
  const userOK = async (args: string[], env: NodeJS.ProcessEnv = {}, input?: string) => {
    const res = await asUser(args, env, input);
    assert.equal(res.code, 0, `kubectl ${args.join(" ")} through the proxy: ${res.stderr}`);
    return res.stdout;
  };
  const setMode = (mode: "enabled" | "auto" | "disabled") =>
    n.kubectl([
      "patch",
      "credentialissuer",
      issuerName,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { impersonationProxy: { mode, service: { type: "LoadBalancer" } } } }),
    ]);

  /** Plays the cloud: the proxy's LoadBalancer Service gets its address. */
  const giveLoadBalancerAddress = () =>
    n.kubectl([
      "patch",
      "service",
      "-n",
      conciergeNamespace,
      lbService,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: loadBalancerIP }] } } }),
    ]);

  before(async () => {
    ({ node: n } = await testConcierge());
    dir = await mkdtemp(join(tmpdir(), "proxy-node-"));
    generated = join(dir, "user.kubeconfig");
    webhook = await startTokenReviewWebhook({ users: { [token]: user }, host: n.node.bridgeIP });
    await n.kubectl(["create", "namespace", ns]);
    await n.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
            kind: "WebhookAuthenticator",
            metadata: { name: authenticator },
            spec: { endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } },
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "Role",
            metadata: { name: "proxy-seals", namespace: ns },
            rules: [
              { apiGroups: [""], resources: ["pods", "pods/log"], verbs: ["get", "list", "watch"] },
              {
                apiGroups: [""],
                resources: ["pods/exec", "pods/attach", "pods/portforward"],
                verbs: ["get", "create"],
              },
            ],
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name: "proxy-seals", namespace: ns },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "proxy-seals" },
            subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: user.groups[0] }],
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
                  // Echoes stdin, for attach.
                  command: ["sh", "-c", "echo first line; exec cat"],
                  stdin: true,
                },
              ],
            },
          },
        ],
      }),
    );
    await n.kubectl([
      "wait",
      "--for=jsonpath={.status.phase}=Ready",
      "--timeout=60s",
      `webhookauthenticator/${authenticator}`,
    ]);
    await n.kubectl(["wait", "--for=condition=Ready", "--timeout=120s", "-n", ns, "pod/app"]);

    // The operator turns the proxy on behind a LoadBalancer; the test, as the cloud, gives it an address.
    await setMode("enabled");
    await eventually(
      "the LoadBalancer Service",
      () => n.kubectl(["get", "service", "-n", conciergeNamespace, lbService]),
      {
        timeoutMs: 60_000,
      },
    );
    await giveLoadBalancerAddress();
    await eventually(
      "the ImpersonationProxy strategy to be Listening",
      async () => {
        const s = await strategy();
        return s?.status === "Success" && s.reason === "Listening";
      },
      { timeoutMs: 120_000 },
    );
  });

  after(async () => {
    if (n) {
      await n.kubectl(["label", "node", n.nodeName, `${controlPlaneLabel}=`, "--overwrite"]).catch(() => "");
      await setMode("auto").catch(() => "");
      await n
        .kubectl(["delete", "webhookauthenticator", authenticator, "--ignore-not-found"])
        .catch(() => "");
      await n.kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
    }
    await webhook?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("pinniped get kubeconfig points at the load balancer's address, and the login goes through the proxy", async () => {
    assert.equal((await strategy())?.frontend?.impersonationProxyInfo?.endpoint, `https://${loadBalancerIP}`);
    const res = await runCommand(
      pinnipedBin,
      [
        "get",
        "kubeconfig",
        // Kubeconfigs name `pinniped` on PATH by default; this suite runs the clone's.
        "--pinniped-cli-path",
        pinnipedBin,
        "--kubeconfig",
        n.kubeconfigPath,
        "--concierge-mode",
        "ImpersonationProxy",
        "--concierge-authenticator-type",
        "webhook",
        "--concierge-authenticator-name",
        authenticator,
        "--static-token",
        token,
        "--credential-cache",
        join(dir, "credentials.yaml"),
        "-o",
        generated,
      ],
      { timeoutMs: 90_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    const kc = parse(await readFile(generated, "utf8"));
    assert.equal(kc.clusters[0].cluster.server, `https://${loadBalancerIP}`);
    const who = JSON.parse(await userOK(["auth", "whoami", "-o", "json"])) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    assert.equal(who.status.userInfo.username, user.username);
  });

  it("logs through the proxy and the real kubelet", async () => {
    assert.match(await userOK(["logs", "app", "-n", ns]), /^first line$/m);
  });

  for (const [protocol, env] of [
    ["WebSocket", {}],
    ["SPDY/3.1", spdy],
  ] as const) {
    it(`exec with stdin over ${protocol} into a pod the real kubelet runs`, async () => {
      assert.equal(
        await userOK(["exec", "app", "-n", ns, "--", "echo", "hello", "seal"], env),
        "hello seal\n",
      );
      const big = "x".repeat(200_000);
      assert.equal(await userOK(["exec", "-i", "app", "-n", ns, "--", "cat"], env, big), big);
    });

    it(`attach reaches the container's stdin and stdout over ${protocol}`, async () => {
      const attach = background(
        kubectlBin(),
        ["--kubeconfig", generated, "attach", "-i", "app", "-n", ns],
        env,
      );
      const typed = `typed over ${protocol}`;
      // Only output written after the attach began reaches it: keep typing until it shows.
      const typing = setInterval(() => attach.child.stdin!.write(`${typed}\n`), 500);
      try {
        await eventually("the attached echo", async () => attach.out().includes(typed), {
          timeoutMs: 30_000,
        });
      } finally {
        clearInterval(typing);
        await attach.stop();
      }
    });
  }

  it("cp copies files into and out of the pod", async () => {
    const upload = join(dir, "upload.txt");
    await writeFile(upload, "contents for the pod\n");
    await userOK(["cp", upload, `${ns}/app:/tmp/to-pod.txt`]);
    const back = join(dir, "back.txt");
    await userOK(["cp", `${ns}/app:/tmp/to-pod.txt`, back]);
    assert.equal(await readFile(back, "utf8"), "contents for the pod\n");
  });

  it("auto mode turns the proxy off while the node is labelled control-plane and on when the label goes", async () => {
    await setMode("auto");
    await eventually(
      "auto mode with a control-plane node: the proxy off",
      async () => (await strategy())?.reason === "Disabled",
      {
        timeoutMs: 60_000,
      },
    );
    await n.kubectl(["label", "node", n.nodeName, `${controlPlaneLabel}-`]);
    try {
      // The proxy comes back behind a new LoadBalancer Service, which the cloud gives an address.
      await eventually(
        "auto mode without a control-plane node: the proxy's Service again",
        () => n.kubectl(["get", "service", "-n", conciergeNamespace, lbService]),
        { timeoutMs: 120_000 },
      );
      await giveLoadBalancerAddress();
      await eventually(
        "auto mode without a control-plane node: the proxy Listening",
        async () => {
          const s = await strategy();
          return s?.status === "Success" && s.reason === "Listening";
        },
        { timeoutMs: 120_000 },
      );
      // kube-proxy programs the new Service's load-balancer rules a moment after it gets its address.
      const logs = await eventually(
        "a request through the proxy again",
        () => userOK(["logs", "app", "-n", ns]),
        {
          timeoutMs: 60_000,
        },
      );
      assert.match(logs, /^first line$/m);
    } finally {
      await n.kubectl(["label", "node", n.nodeName, `${controlPlaneLabel}=`, "--overwrite"]);
    }
    await eventually(
      "the label back: the proxy off again",
      async () => (await strategy())?.reason === "Disabled",
      {
        timeoutMs: 60_000,
      },
    );
  });
});
