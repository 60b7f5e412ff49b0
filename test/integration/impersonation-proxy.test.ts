// The impersonation proxy end to end, on a cluster that looks managed: no control-plane node,
// so kube-cert-agent cannot borrow a signing key and the proxy is the only way in. The whole
// Concierge runs as a local process (hack/run-local.ts) against a dedicated control plane; the
// test plays the cloud (a TCP relay in front of the proxy that cuts idle connections, and the
// LoadBalancer Service's ingress) and a worker node whose pod kubectl can exec into, attach to,
// port-forward to, copy from and follow the logs of (test/harness/play-pod.ts).
//
// The user logs in with `pinniped get kubeconfig` → `pinniped login static`, which exchanges the
// token through the proxy; the certificate comes from the proxy's own signer, and every kubectl
// command below goes through the proxy with it.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { type AddressInfo, connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { type ControlPlane, freePorts } from "../../hack/controlplane.ts";
import { type LocalConcierge, runLocal } from "../../hack/run-local.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { runKubectl, startTestControlPlane } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import { startLoadBalancer, type TestLoadBalancer } from "../harness/load-balancer.ts";
import { type PlayedNode, type PlayedPod, playNode, playPod } from "../harness/play-pod.ts";
import { runCommand } from "../harness/process.ts";
import { startTokenReviewWebhook, type TokenReviewWebhook } from "../harness/tokenreview-webhook.ts";

const pinnipedBin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "pinniped");
const concierge = "pinniped-concierge";
const issuerName = "pinniped-concierge-config";
const token = "impersonation-proxy-test-token";
const user = { username: "pinny", groups: ["seals"] };
const ns = "proxy-e2e";
/**
 * The played load balancer cuts connections idle this long; quiet sessions must outlive it.
 * kubectl 1.34 pings on its own every 5 s in SPDY sessions and WebSocket execs, so they have room
 * even on a loaded machine, but only every 10 s inside a WebSocket port-forward's tunnel: that one
 * survives only through the proxy's own pings (every 2 s here).
 */
const lbIdleTimeoutMs = 8_000;
const spdy = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false", KUBECTL_PORT_FORWARD_WEBSOCKETS: "false" };

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

/** An echo server on 127.0.0.1: what the pod's port 7000 reaches through port-forward. */
async function startEchoServer(): Promise<{ port: number; server: Server }> {
  const server = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

/** Sends `text` to 127.0.0.1:port and resolves with what comes back first. */
function echoOnce(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(text));
    socket.setTimeout(10_000, () => reject(new Error("no echo within 10 s")));
    let got = "";
    socket.on("data", (c: Buffer) => {
      got += c;
      if (got.length >= text.length) {
        socket.destroy();
        resolve(got);
      }
    });
    socket.on("error", reject);
  });
}

describe("impersonation proxy, end to end with kubectl, on a cluster without a borrowable signing key", () => {
  let cp: ControlPlane;
  let dir: string;
  let local: LocalConcierge;
  let webhook: TokenReviewWebhook;
  let lb: TestLoadBalancer;
  let node: PlayedNode;
  let pod: PlayedPod;
  let echo: { port: number; server: Server };
  let proxyPort: number;
  let generated: string;
  let credentialCache: string;
  const logs = memoryLogger("info");

  const admin = (args: string[], input?: string) =>
    runKubectl(cp.binDir, cp.kubeconfigPath, args, input === undefined ? {} : { input });
  const adminOK = async (args: string[], input?: string) => {
    const res = await admin(args, input);
    assert.equal(res.code, 0, `kubectl ${args.join(" ")}: ${res.stderr}`);
    return res.stdout;
  };
  const kubectlBin = () => join(cp.binDir, "kubectl");
  /** kubectl as pinny, through the proxy, with the kubeconfig pinniped generated. */
  const asUser = (args: string[], env: NodeJS.ProcessEnv = {}, input?: string) =>
    runCommand(kubectlBin(), ["--kubeconfig", generated, "--cache-dir", join(dir, "cache"), ...args], {
      env,
      input,
      timeoutMs: 90_000,
    });
  const userOK = async (args: string[], env: NodeJS.ProcessEnv = {}, input?: string) => {
    const res = await asUser(args, env, input);
    assert.equal(res.code, 0, `kubectl ${args.join(" ")} through the proxy: ${res.stderr}`);
    return res.stdout;
  };
  const strategy = async () => {
    const out = await adminOK(["get", "credentialissuer", issuerName, "-o", "json"]);
    const strategies = (
      JSON.parse(out) as {
        status?: {
          strategies?: {
            type: string;
            status: string;
            reason: string;
            message: string;
            frontend?: { impersonationProxyInfo?: { endpoint: string; certificateAuthorityData: string } };
          }[];
        };
      }
    ).status?.strategies;
    return strategies?.find((s) => s.type === "ImpersonationProxy");
  };
  const proxyCA = async () => {
    const s = await strategy();
    return Buffer.from(
      s?.frontend?.impersonationProxyInfo?.certificateAuthorityData ?? "",
      "base64",
    ).toString();
  };
  /** A raw HTTPS request to the proxy (through the played load balancer). */
  const proxyRequest = (
    path: string,
    opts: {
      method?: string;
      headers?: Record<string, string>;
      body?: string;
      ca: string;
      cert?: string;
      key?: string;
    },
  ) =>
    new Promise<{ code: number; body: string; contentType: string | undefined }>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: lb.port,
          path,
          method: opts.method ?? "GET",
          ca: opts.ca,
          ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
          headers: { ...(opts.body ? { "content-type": "application/json" } : {}), ...opts.headers },
        },
        (res) => {
          let body = "";
          res.on("data", (c: Buffer) => {
            body += c;
          });
          res.on("end", () =>
            resolve({ code: res.statusCode ?? 0, body, contentType: res.headers["content-type"] }),
          );
        },
      );
      req.on("error", reject);
      req.end(opts.body);
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "proxy-e2e-"));
    credentialCache = join(dir, "credentials.yaml");
    generated = join(dir, "pinny.kubeconfig");
    cp = await startTestControlPlane("proxy-e2e");
    webhook = await startTokenReviewWebhook({ users: { [token]: user } });
    [proxyPort] = (await freePorts(1)) as [number];
    lb = await startLoadBalancer({
      target: { host: "127.0.0.1", port: proxyPort },
      idleTimeoutMs: lbIdleTimeoutMs,
    });
    local = await runLocal({
      kubeconfigPath: cp.kubeconfigPath,
      binDir: cp.binDir,
      log: logs.log,
      identity: "proxy-e2e",
      leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      // Pings well inside the played load balancer's idle timeout, as the README advises.
      configOverrides: {
        impersonationProxyServerPort: proxyPort,
        impersonationProxy: { pingIntervalSeconds: 2 },
      },
    });

    // A worker node (no control-plane label) and a pod on it.
    node = await playNode({ kubeconfigPath: cp.kubeconfigPath, nodeName: "proxy-e2e-worker" });
    echo = await startEchoServer();
    await adminOK(["create", "namespace", ns]);
    pod = await playPod({
      kubeconfigPath: cp.kubeconfigPath,
      kubelet: node.kubelet,
      nodeName: node.nodeName,
      namespace: ns,
      name: "app",
      ports: { 7000: echo.port },
    });

    await adminOK(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
            kind: "WebhookAuthenticator",
            metadata: { name: "corp" },
            spec: { endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } },
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "Role",
            metadata: { name: "seals", namespace: ns },
            rules: [
              { apiGroups: [""], resources: ["pods", "pods/log"], verbs: ["get", "list", "watch"] },
              {
                apiGroups: [""],
                resources: ["pods/exec", "pods/attach", "pods/portforward"],
                verbs: ["get", "create"],
              },
              { apiGroups: [""], resources: ["configmaps"], verbs: ["*"] },
            ],
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name: "seals", namespace: ns },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "seals" },
            subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "seals" }],
          },
        ],
      }),
    );
    await adminOK([
      "wait",
      "--for=jsonpath={.status.phase}=Ready",
      "--timeout=60s",
      "webhookauthenticator/corp",
    ]);

    // The operator turns the proxy on, behind a load balancer whose address DNS gives clients.
    await adminOK([
      "patch",
      "credentialissuer",
      issuerName,
      "--type=merge",
      "-p",
      JSON.stringify({
        spec: {
          impersonationProxy: {
            mode: "enabled",
            service: { type: "LoadBalancer" },
            externalEndpoint: lb.address,
          },
        },
      }),
    ]);
    // The test plays the cloud: the load balancer gets its address.
    const service = "pinniped-concierge-impersonation-proxy-load-balancer";
    await eventually(
      "the LoadBalancer Service",
      async () => (await admin(["get", "service", service, "-n", concierge])).code === 0,
    );
    await adminOK([
      "patch",
      "service",
      service,
      "-n",
      concierge,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: "127.0.0.1" }] } } }),
    ]);
    await eventually("the ImpersonationProxy strategy to be Listening", async () => {
      const s = await strategy();
      return s?.status === "Success" && s.reason === "Listening";
    });
  });

  after(async () => {
    await local?.stop();
    await node?.stop();
    await pod?.stop().catch(() => {});
    await webhook?.close();
    await lb?.close();
    echo?.server.close();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("pinniped get kubeconfig picks the impersonation proxy when no signing key can be borrowed", async () => {
    const s = await strategy();
    assert.equal(s?.frontend?.impersonationProxyInfo?.endpoint, `https://${lb.address}`);
    const res = await runCommand(
      pinnipedBin,
      [
        "get",
        "kubeconfig",
        // Kubeconfigs name `pinniped` on PATH by default; this suite runs the clone's.
        "--pinniped-cli-path",
        pinnipedBin,
        "--kubeconfig",
        cp.kubeconfigPath,
        "--static-token",
        token,
        "--credential-cache",
        credentialCache,
        "-o",
        generated,
      ],
      { timeoutMs: 90_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /discovered Concierge operating in impersonation proxy mode/);
    assert.match(res.stderr, /validated connection to the cluster/);
    const kc = parse(await readFile(generated, "utf8"));
    assert.equal(kc.clusters[0].cluster.server, `https://${lb.address}`);
    assert.ok(kc.users[0].user.exec.args.includes(`--concierge-endpoint=https://${lb.address}`));
  });

  it("login exchanges the token through the proxy for a certificate from the proxy's own signer", async () => {
    const who = JSON.parse(await userOK(["auth", "whoami", "-o", "json"])) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    assert.equal(who.status.userInfo.username, user.username);
    assert.deepEqual(who.status.userInfo.groups.sort(), [...user.groups, "system:authenticated"].sort());
    const cache = parse(await readFile(credentialCache, "utf8")) as {
      credentials: { credential: { clientCertificateData: string } }[];
    };
    const cert = new X509Certificate(cache.credentials[0]!.credential.clientCertificateData);
    assert.match(cert.issuer, /Pinniped Impersonation Proxy Signer CA/);
  });

  it("get, list, create, patch and delete go through as the user; a forbidden request is denied", async () => {
    await userOK(["create", "configmap", "one", "-n", ns, "--from-literal=k=v"]);
    await userOK(["patch", "configmap", "one", "-n", ns, "--type=merge", "-p", '{"data":{"k":"w"}}']);
    assert.equal(await userOK(["get", "configmap", "one", "-n", ns, "-o", "jsonpath={.data.k}"]), "w");
    assert.match(await userOK(["get", "configmaps", "-n", ns, "-o", "name"]), /configmap\/one/);
    await userOK(["delete", "configmap", "one", "-n", ns]);
    const denied = await asUser(["get", "secrets", "-n", ns]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /User "pinny" cannot list resource "secrets"/);
  });

  it("watch events arrive through the proxy", async () => {
    const watch = background(kubectlBin(), [
      "--kubeconfig",
      generated,
      "get",
      "configmaps",
      "-n",
      ns,
      "--watch-only",
      "-o",
      "name",
    ]);
    try {
      // kubectl opens its watch only after its login and discovery, and --watch-only misses what
      // came before: create markers until one shows, so a loaded machine cannot lose the first event.
      let markers = 0;
      await eventually(
        "the watch to be established",
        async () => {
          markers += 1;
          await adminOK(["create", "configmap", `marker-${markers}`, "-n", ns]);
          return watch.out().includes("configmap/marker-");
        },
        { intervalMs: 1_000 },
      );
      for (const name of ["w1", "w2", "w3"]) {
        await adminOK(["create", "configmap", name, "-n", ns]);
        await eventually(
          `the watch event for ${name}`,
          async () => watch.out().includes(`configmap/${name}`),
          {
            timeoutMs: 30_000,
          },
        );
      }
    } finally {
      await watch.stop();
    }
  });

  it("logs -f streams a line logged after it started", async () => {
    pod.log("first line");
    const follow = background(kubectlBin(), ["--kubeconfig", generated, "logs", "-f", "app", "-n", ns]);
    try {
      await eventually("the existing log", async () => follow.out().includes("first line"), {
        timeoutMs: 15_000,
      });
      pod.log("a line from later");
      await eventually("the followed line", async () => follow.out().includes("a line from later"), {
        timeoutMs: 10_000,
      });
    } finally {
      await follow.stop();
    }
  });

  for (const [protocol, env] of [
    ["WebSocket", {}],
    ["SPDY/3.1", spdy],
  ] as const) {
    it(`exec with stdin works over ${protocol}`, async () => {
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
          timeoutMs: 15_000,
        });
      } finally {
        clearInterval(typing);
      }
      attach.child.stdin!.end();
      assert.equal(await attach.exited, 0, attach.err());
    });

    it(`port-forward reaches the pod's port over ${protocol}`, async () => {
      const pf = background(
        kubectlBin(),
        ["--kubeconfig", generated, "port-forward", "-n", ns, "pod/app", ":7000"],
        env,
      );
      try {
        const local = await eventually(
          "port-forward to listen",
          async () => Number(/Forwarding from 127\.0\.0\.1:(\d+) -> 7000/.exec(pf.out())?.[1]) || undefined,
        );
        assert.equal(await echoOnce(local, "through the proxy"), "through the proxy");
      } finally {
        await pf.stop();
      }
    });
  }

  it("cp copies files out of and into the pod", async () => {
    await writeFile(join(pod.filesDir, "tmp", "from-pod.txt"), "contents from the pod\n");
    const out = join(dir, "copied.txt");
    await userOK(["cp", `${ns}/app:/tmp/from-pod.txt`, out]);
    assert.equal(await readFile(out, "utf8"), "contents from the pod\n");
    const upload = join(dir, "upload.txt");
    await writeFile(upload, "contents for the pod\n");
    await userOK(["cp", upload, `${ns}/app:/tmp/to-pod.txt`]);
    assert.equal(await readFile(join(pod.filesDir, "tmp", "to-pod.txt"), "utf8"), "contents for the pod\n");
  });

  it(`quiet execs and port-forwards, WebSocket and SPDY, outlive the load balancer's ${lbIdleTimeoutMs / 1000} s idle timeout`, async () => {
    const cutsBefore = lb.idleCuts();
    const sessions = (
      [
        ["WebSocket", {}],
        ["SPDY/3.1", spdy],
      ] as const
    ).map(([protocol, env]) => ({
      protocol,
      shell: background(
        kubectlBin(),
        ["--kubeconfig", generated, "exec", "-i", "app", "-n", ns, "--", "cat"],
        env,
      ),
      pf: background(
        kubectlBin(),
        ["--kubeconfig", generated, "port-forward", "-n", ns, "pod/app", ":7000"],
        env,
      ),
    }));
    const diagnostics = () =>
      `idle cuts ${lb.idleCuts() - cutsBefore}; ${sessions
        .map((s) => `${s.protocol}: exec stderr: ${s.shell.err()}; port-forward stderr: ${s.pf.err()}`)
        .join("; ")}`;
    try {
      const ports = await Promise.all(
        sessions.map((s) =>
          eventually(
            `${s.protocol} port-forward to listen`,
            async () =>
              Number(/Forwarding from 127\.0\.0\.1:(\d+) -> 7000/.exec(s.pf.out())?.[1]) || undefined,
          ),
        ),
      );
      for (const [i, s] of sessions.entries()) {
        assert.equal(await echoOnce(ports[i]!, "before"), "before");
        s.shell.child.stdin!.write("before\n");
        await eventually(`the first ${s.protocol} echo`, async () => s.shell.out().includes("before\n"), {
          timeoutMs: 10_000,
        });
      }

      await new Promise((r) => setTimeout(r, lbIdleTimeoutMs * 2 + 1_000));

      for (const [i, s] of sessions.entries()) {
        s.shell.child.stdin!.write("after the quiet\n");
        await eventually(
          `the ${s.protocol} exec echo after the quiet`,
          async () => s.shell.out().includes("after the quiet\n"),
          { timeoutMs: 10_000 },
        ).catch((err: Error) => assert.fail(`${err.message}: ${diagnostics()}`));
        const afterEcho = await echoOnce(ports[i]!, "after").catch(
          (err: Error) => `${err.message}: ${diagnostics()}`,
        );
        assert.equal(afterEcho, "after", `${s.protocol} port-forward`);
      }
      assert.equal(
        lb.idleCuts(),
        cutsBefore,
        `the load balancer cut a connection for idleness: ${diagnostics()}`,
      );
    } finally {
      for (const s of sessions) {
        s.shell.child.stdin!.end();
        await s.shell.exited;
        await s.pf.stop();
      }
    }
  });

  it("--as is honoured only with an RBAC impersonate grant, and the original user is kept", async () => {
    // kubectl's discovery, refused first, words a 403 as "unknown" (as it does against
    // kube-apiserver itself), so the message is checked on a raw request.
    const denied = await asUser(["get", "configmaps", "-n", ns, "--as=bob"]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Forbidden/);
    const cache = parse(await readFile(credentialCache, "utf8")) as {
      credentials: { credential: { clientCertificateData: string; clientKeyData: string } }[];
    };
    const { clientCertificateData: cert, clientKeyData: key } = cache.credentials[0]!.credential;
    const raw = await proxyRequest(`/api/v1/namespaces/${ns}/configmaps`, {
      ca: await proxyCA(),
      cert,
      key,
      headers: { "Impersonate-User": "bob" },
    });
    assert.equal(raw.code, 403, raw.body);
    assert.match(
      JSON.parse(raw.body).message,
      /^users "bob" is forbidden: User "pinny" cannot impersonate resource "users" in API group "" at the cluster scope/,
    );
    await adminOK([
      "create",
      "clusterrole",
      "impersonate-bob",
      "--verb=impersonate",
      "--resource=users",
      "--resource-name=bob",
    ]);
    await adminOK([
      "create",
      "clusterrolebinding",
      "seals-impersonate-bob",
      "--clusterrole=impersonate-bob",
      "--group=seals",
    ]);
    const who = JSON.parse(
      await eventually("the impersonate grant to apply", async () => {
        const res = await asUser(["auth", "whoami", "--as=bob", "-o", "json"]);
        return res.code === 0 ? res.stdout : undefined;
      }),
    ) as { status: { userInfo: { username: string; extra?: Record<string, string[]> } } };
    assert.equal(who.status.userInfo.username, "bob");
    const original =
      who.status.userInfo.extra?.["original-user-info.impersonation-proxy.concierge.pinniped.dev"];
    assert.ok(original, JSON.stringify(who.status.userInfo));
    assert.equal(JSON.parse(original[0]!).username, user.username);
  });

  it("a ServiceAccount token passes through as the ServiceAccount", async () => {
    await adminOK(["create", "serviceaccount", "robot", "-n", ns]);
    const saToken = (await adminOK(["create", "token", "robot", "-n", ns])).trim();
    const caFile = join(dir, "proxy-ca.crt");
    await writeFile(caFile, await proxyCA());
    const res = await runCommand(
      kubectlBin(),
      [
        "--server",
        `https://${lb.address}`,
        "--certificate-authority",
        caFile,
        "--token",
        saToken,
        "auth",
        "whoami",
        "-o",
        "json",
        "--kubeconfig",
        "/dev/null",
      ],
      { timeoutMs: 90_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    const info = JSON.parse(res.stdout).status.userInfo;
    assert.equal(info.username, `system:serviceaccount:${ns}:robot`);
    assert.ok(info.uid, "the ServiceAccount's UID survives (pass-through, not impersonation)");
  });

  it("anonymous callers get what kube-apiserver gives system:anonymous; a client-sent Impersonate-User grants nothing", async () => {
    // This cluster allows anonymous authentication (kube-apiserver's default), so the proxy
    // forwards callers without credentials as system:anonymous, as upstream does.
    const ca = await proxyCA();
    const healthz = await proxyRequest("/healthz", { ca });
    assert.deepEqual([healthz.code, healthz.body], [200, "ok"]);
    const anon = await proxyRequest("/api/v1/namespaces/kube-system/pods/does-not-matter", { ca });
    assert.equal(anon.code, 403, anon.body);
    assert.equal(
      JSON.parse(anon.body).message,
      'pods "does-not-matter" is forbidden: User "system:anonymous" cannot get resource "pods" in API group "" ' +
        'in the namespace "kube-system": decision made by impersonation-proxy.concierge.pinniped.dev',
    );
    const escalate = await proxyRequest("/api/v1/namespaces", {
      ca,
      headers: { "Impersonate-User": "system:admin" },
    });
    assert.equal(escalate.code, 403, escalate.body);
    assert.match(
      JSON.parse(escalate.body).message,
      /User "system:anonymous" cannot impersonate resource "users"/,
    );

    const who = await proxyRequest("/apis/identity.concierge.pinniped.dev/v1alpha1/whoamirequests", {
      method: "POST",
      ca,
      body: JSON.stringify({ apiVersion: "identity.concierge.pinniped.dev/v1alpha1", kind: "WhoAmIRequest" }),
    });
    assert.equal(who.code, 201, who.body);
    assert.equal(JSON.parse(who.body).status.kubernetesUserInfo.user.username, "system:anonymous");

    const tcr = await proxyRequest("/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests", {
      method: "POST",
      ca,
      body: JSON.stringify({
        apiVersion: "login.concierge.pinniped.dev/v1alpha1",
        kind: "TokenCredentialRequest",
        spec: {
          token: "not-a-known-token",
          authenticator: {
            apiGroup: "authentication.concierge.pinniped.dev",
            kind: "WebhookAuthenticator",
            name: "corp",
          },
        },
      }),
    });
    assert.equal(tcr.code, 201, tcr.body);
    assert.equal(JSON.parse(tcr.body).status.message, "authentication failed");

    // pinny's own certificate with a header asking to be system:admin: refused, not escalated.
    const cache = parse(await readFile(credentialCache, "utf8")) as {
      credentials: { credential: { clientCertificateData: string; clientKeyData: string } }[];
    };
    const { clientCertificateData: cert, clientKeyData: key } = cache.credentials[0]!.credential;
    const asAdmin = await proxyRequest("/api/v1/namespaces/kube-system/secrets", {
      ca,
      cert,
      key,
      headers: { "Impersonate-User": "system:admin", "Impersonate-Group": "system:masters" },
    });
    assert.equal(asAdmin.code, 403, asAdmin.body);
    assert.match(JSON.parse(asAdmin.body).message, /cannot impersonate/);
  });

  it("the cluster admin's certificate: credential ID kept, refusals in kube-apiserver's exact bytes", async () => {
    const ca = await proxyCA();
    const cert = await readFile(cp.pki.admin.cert, "utf8");
    const key = await readFile(cp.pki.admin.key, "utf8");
    const asAdmin = (path: string, headers: Record<string, string> = {}, method = "GET", body?: string) =>
      proxyRequest(path, { ca, cert, key, headers, method, ...(body ? { body } : {}) });
    const whoami = (headers: Record<string, string> = {}) =>
      asAdmin(
        "/apis/identity.concierge.pinniped.dev/v1alpha1/whoamirequests",
        headers,
        "POST",
        JSON.stringify({ apiVersion: "identity.concierge.pinniped.dev/v1alpha1", kind: "WhoAmIRequest" }),
      );

    // WhoAmI through the proxy names the certificate as kube-apiserver does.
    const fingerprint = `X509SHA256=${createHash("sha256").update(new X509Certificate(cert).raw).digest("hex")}`;
    const me = await whoami();
    assert.equal(me.code, 201, me.body);
    assert.deepEqual(JSON.parse(me.body).status.kubernetesUserInfo.user.extra, {
      "authentication.kubernetes.io/credential-id": [fingerprint],
    });

    // Impersonating system:anonymous: upstream's "non-resource request while impersonating
    // anonymous" expectations, byte for byte.
    const asAnonymous = { "Impersonate-User": "system:anonymous" };
    const who = await whoami(asAnonymous);
    assert.equal(who.code, 201, who.body);
    const anonymous = JSON.parse(who.body).status.kubernetesUserInfo.user;
    assert.equal(anonymous.username, "system:anonymous");
    assert.deepEqual(anonymous.groups, ["system:unauthenticated"]);
    assert.match(
      anonymous.extra["original-user-info.impersonation-proxy.concierge.pinniped.dev"][0],
      /^\{"username":"kubernetes-admin",.*"extra":\{"authentication.kubernetes.io\/credential-id":\["X509SHA256=/,
    );
    const healthz = await asAdmin("/healthz", asAnonymous);
    assert.deepEqual([healthz.code, healthz.body], [200, "ok"]);
    const log = await asAdmin("/healthz/log", asAnonymous);
    assert.equal(log.code, 403);
    assert.equal(
      log.body,
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden: User \\"system:anonymous\\" cannot get path \\"/healthz/log\\": decision made by impersonation-proxy.concierge.pinniped.dev","reason":"Forbidden","details":{},"code":403}\n',
    );

    // A UID without a user: kube-apiserver's plain-text 500.
    const uidOnly = await asAdmin("/api/v1/namespaces/foo/secrets/bar", {
      "iMperSONATE-uid": "some-awesome-uid",
    });
    assert.equal(uidOnly.code, 500);
    assert.equal(uidOnly.contentType, "text/plain; charset=utf-8");
    assert.equal(
      uidOnly.body,
      'Internal Server Error: "/api/v1/namespaces/foo/secrets/bar": requested [{UID  some-awesome-uid  authentication.k8s.io/v1  }] without impersonating a user\n',
    );

    // A reserved extra key: the Status with its cause.
    const reserved = await asAdmin(`/api/v1/namespaces/${concierge}/secrets/x`, {
      "Impersonate-User": "other-user-to-impersonate",
      "Impersonate-Group": "system:masters",
      "Impersonate-Extra-something.impersonation-proxy.concierge.pinniped.dev": "super sneaky value",
    });
    assert.equal(reserved.code, 500);
    assert.equal(
      reserved.body,
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Internal error occurred: unimplemented functionality - unable to act as current user","reason":"InternalError","details":{"causes":[{"message":"unimplemented functionality - unable to act as current user"}]},"code":500}\n',
    );
  });

  it("a serving CA rotation keeps the kubeconfig made before it working throughout", async () => {
    const before = await proxyCA();
    await adminOK([
      "annotate",
      "secret",
      "pinniped-concierge-impersonation-proxy-ca-certificate",
      "-n",
      concierge,
      "concierge.pinniped.dev/rotate=e2e",
    ]);
    const bundle = await eventually("the published bundle to hold the new and the old CA", async () => {
      const pem = await proxyCA();
      return pem !== before && pem.includes(before.trim()) ? pem : undefined;
    });
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 2);
    // The kubeconfig still holds only the old CA; the proxy now serves the new chain.
    const old = parse(await readFile(generated, "utf8"));
    assert.equal(
      Buffer.from(old.clusters[0].cluster["certificate-authority-data"], "base64").toString(),
      before,
    );
    for (let i = 0; i < 3; i++) {
      assert.match(await userOK(["get", "configmaps", "-n", ns, "-o", "name"]), /configmap\/w1/);
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  it("auto mode turns the proxy off when a control-plane node appears and on when it goes", async () => {
    await adminOK([
      "patch",
      "credentialissuer",
      issuerName,
      "--type=merge",
      "-p",
      '{"spec":{"impersonationProxy":{"mode":"auto"}}}',
    ]);
    await eventually(
      "still Listening in auto mode without control-plane nodes",
      async () => (await strategy())?.reason === "Listening",
    );
    await adminOK(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name: "proxy-e2e-control-plane",
          labels: { "node-role.kubernetes.io/control-plane": "" },
        },
      }),
    );
    await eventually(
      "Disabled once a control-plane node exists",
      async () => (await strategy())?.reason === "Disabled",
    );
    const refused = await asUser(["get", "configmaps", "-n", ns]);
    assert.notEqual(refused.code, 0, "the proxy still answered after it was turned off");
    await adminOK(["delete", "node", "proxy-e2e-control-plane"]);
    await eventually("Listening again", async () => (await strategy())?.reason === "Listening");
    await eventually(
      "kubectl through the proxy again",
      async () => (await asUser(["get", "configmaps", "-n", ns])).code === 0,
    );
  });

  it("disabling stops the proxy and removes its Service and serving Secret, keeping the CAs", async () => {
    await adminOK([
      "patch",
      "credentialissuer",
      issuerName,
      "--type=merge",
      "-p",
      '{"spec":{"impersonationProxy":{"mode":"disabled"}}}',
    ]);
    await eventually("Disabled", async () => (await strategy())?.reason === "Disabled");
    await eventually(
      "the Service gone",
      async () =>
        (
          await admin([
            "get",
            "service",
            "pinniped-concierge-impersonation-proxy-load-balancer",
            "-n",
            concierge,
          ])
        ).code !== 0,
    );
    const secrets = await adminOK(["get", "secrets", "-n", concierge, "-o", "name"]);
    assert.doesNotMatch(secrets, /impersonation-proxy-tls-serving-certificate/);
    assert.match(secrets, /impersonation-proxy-ca-certificate/);
    assert.match(secrets, /impersonation-proxy-signer-ca-certificate/);
  });
});
