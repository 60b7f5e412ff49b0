// The fault suite of issue 15: the Concierge installed from its image on the real node (two
// replicas, hack/node/install-concierge.ts), a steady stream of TokenCredentialRequests through
// kube-apiserver's aggregator, the Service and kube-proxy, and one fault at a time:
//
//   kill -9 pod        every process of one (non-leader) Concierge container killed; kubelet restarts it
//   kill -9 leader     the same for the Lease's holder; a live replica must renew the Lease
//   kube-apiserver     stopped without grace and started again
//   etcd               the same for etcd
//   Secrets deleted    the serving certificate's Secret (with its CA) and any CA Secret present
//   IdP down           the OIDC provider unreachable for 20 s (a JWT login stream meanwhile), then back
//   webhook down       the TokenReview webhook unreachable for 20 s, then back
//   rollout restart    `kubectl rollout restart` of the Deployment
//
// For each: seconds until it recovered (what that means is printed beside it), and the requests
// that failed from the fault until then. Goals: recovery ≤ 10 s, a new leader ≤ 20 s, 0 failed
// requests through a rolling restart or a pod kill (the other replica serves). While kube-apiserver
// or etcd is down, or the webhook is, requests cannot succeed: those failures are the outage's.
// Printed, never asserted. Takes a few minutes (a node, the image, the install);
// CONCIERGE_BENCH_QUICK=1 (bench/quick.ts) shortens the outages to 12 s and the margins.
//
//   npm run bench:faults        (node hack/node/launch.ts node bench/faults.ts)
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { promisify } from "node:util";
import { type NodeCluster, startNodeCluster } from "../hack/node/cluster.ts";
import { conciergeNamespace, installConcierge } from "../hack/node/install-concierge.ts";
import { KubeRestClient } from "../kube/rest.ts";
import { type ConciergePod, conciergePods, podReady } from "../test/harness/node.ts";
import { startOIDCProvider } from "../test/harness/oidc-provider.ts";
import { startTokenReviewWebhook } from "../test/harness/tokenreview-webhook.ts";
import { quickOr } from "./quick.ts";

const run = promisify(execFile);
const log = (m: string) => process.stderr.write(`# ${m}\n`);
const tcrPath = "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests";
// Longer than the webhook authenticator's 10 s success cache, so logins do reach the webhook.
const outageMs = quickOr(20_000, 12_000);
/** The login stream runs this long before a fault and after its recovery. */
const marginMs = quickOr(2_000, 1_000);
const webhookToken = "faults-webhook-token";

interface Lease {
  spec: { holderIdentity?: string; renewTime?: string; leaseTransitions?: number };
}
interface Answer {
  at: number;
  ok: boolean;
  error?: string;
}
interface Row {
  fault: string;
  recoveredSeconds: number | undefined;
  failed: number;
  total: number;
  /** Seconds from the fault to the first and the last failed request. */
  failing: [number, number] | undefined;
  what: string;
  errors: string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` is true; the seconds since `since`, or undefined after `timeoutMs`. */
async function until(check: () => Promise<boolean>, since: number, timeoutMs = 120_000) {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(250)) {
    if (await check().catch(() => false)) return (Date.now() - since) / 1000;
  }
  return undefined;
}

const tcr = (authenticator: { kind: string; name: string }, token: string) => ({
  apiVersion: "login.concierge.pinniped.dev/v1alpha1",
  kind: "TokenCredentialRequest",
  spec: { token, authenticator: { apiGroup: "authentication.concierge.pinniped.dev", ...authenticator } },
});

/** One TokenCredentialRequest: whether it got a credential, and why not. */
async function login(client: KubeRestClient, body: unknown): Promise<Answer> {
  try {
    const answer = await client.request<{ status?: { credential?: unknown; message?: string } }>({
      method: "POST",
      path: tcrPath,
      body,
      timeoutMs: 15_000,
    });
    if (answer.status?.credential) return { at: Date.now(), ok: true };
    return { at: Date.now(), ok: false, error: `no credential: ${answer.status?.message}` };
  } catch (err) {
    return { at: Date.now(), ok: false, error: (err as Error).message.split("\n")[0] };
  }
}

/** `workers` loops of logins until stopped; every answer is kept with its time. */
function stream(client: KubeRestClient, body: unknown, workers = 4) {
  const answers: Answer[] = [];
  let stopped = false;
  const loops = Array.from({ length: workers }, async () => {
    while (!stopped) answers.push(await login(client, body));
  });
  return {
    answers,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

const n: NodeCluster = await startNodeCluster({ log });
const cleanups: (() => Promise<unknown>)[] = [];
try {
  await installConcierge(n, { log });
  const client = new KubeRestClient(n.kubeConfig(), { maxSockets: 8 });
  cleanups.push(async () => client.close());
  const bridgeIP = n.node.bridgeIP;
  const webhook = await startTokenReviewWebhook({
    users: { [webhookToken]: { username: "walrus@example.com", groups: ["pinnipeds"] } },
    host: bridgeIP,
  });
  cleanups.push(() => webhook.close());
  const provider = await startOIDCProvider({ audiences: ["concierge-faults"], host: bridgeIP });
  cleanups.push(() => provider.close());
  const kubectl = (args: string[], input?: string) => n.kubectl(args, input);
  const untilStored = (manifest: object) =>
    until(() => kubectl(["apply", "-f", "-"], JSON.stringify(manifest)).then(() => true), Date.now());
  await untilStored({
    apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
    kind: "WebhookAuthenticator",
    metadata: { name: "faults" },
    spec: { endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } },
  });
  await untilStored({
    apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
    kind: "JWTAuthenticator",
    metadata: { name: "faults" },
    spec: {
      issuer: provider.issuer,
      audience: "concierge-faults",
      claims: { username: "username", groups: "groups" },
      tls: { certificateAuthorityData: Buffer.from(provider.caPEM).toString("base64") },
    },
  });
  const webhookLogin = tcr({ kind: "WebhookAuthenticator", name: "faults" }, webhookToken);
  const jwtLogin = tcr(
    { kind: "JWTAuthenticator", name: "faults" },
    await provider.mint({
      subject: "jane",
      audience: "concierge-faults",
      claims: { username: "jane", groups: ["seals"] },
      expiresIn: 3600,
    }),
  );
  const loginWorks = (body: unknown) => async () => (await login(client, body)).ok;
  for (const body of [webhookLogin, jwtLogin]) {
    if ((await until(loginWorks(body), Date.now())) === undefined)
      throw new Error("logins never worked after the install");
  }

  const pods = () => conciergePods(n);
  const twoReady = async () => {
    const all = await pods();
    return all.length === 2 && all.every(podReady);
  };
  const lease = async () =>
    JSON.parse(
      await kubectl(["get", "lease", "-n", conciergeNamespace, "pinniped-concierge", "-o", "json"]),
    ) as Lease;

  /** SIGKILL to every process of the pod's containers but the sandbox's pause. */
  const killPod = async (pod: ConciergePod) => {
    const ids = [pod.metadata.uid, pod.metadata.uid.replaceAll("-", "_")];
    let killed = 0;
    for (const pid of await readdir("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      const cgroup = await readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => "");
      if (!ids.some((id) => cgroup.includes(id))) continue;
      const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
      if (cmdline === "" || cmdline.startsWith("/pause")) continue;
      try {
        process.kill(Number(pid), "SIGKILL");
        killed++;
      } catch {
        // Gone already.
      }
    }
    if (killed === 0) throw new Error(`found no process of pod ${pod.metadata.name}`);
  };
  const restarts = (p: ConciergePod | undefined) => p?.status.containerStatuses?.[0]?.restartCount ?? 0;
  const reject = (port: string) => [
    "INPUT",
    "-p",
    "tcp",
    "--dport",
    port,
    "-j",
    "REJECT",
    "--reject-with",
    "tcp-reset",
  ];
  /** Refuses every connection to the URL's port on the node (pods reach it through the bridge). */
  const unreachable = async (url: string) => {
    const port = new URL(url).port;
    await run("iptables", ["-I", ...reject(port)]);
    return () => run("iptables", ["-D", ...reject(port)]);
  };
  /** Whether a TCP connection to the URL's host and port opens (from the node, as pods would). */
  const connects = (url: string) =>
    new Promise<boolean>((resolve) => {
      const socket = netConnect({ host: new URL(url).hostname, port: Number(new URL(url).port) });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
  /** The outage, and whether it held: no connection opened while it lasted. */
  const outage = async (url: string) => {
    const restore = await unreachable(url);
    const held = !(await connects(url));
    await sleep(outageMs);
    await restore();
    return held ? "unreachable confirmed" : "BUT the port still connected during the outage";
  };

  const rows: Row[] = [];
  /**
   * Runs `fault` during a login stream (the webhook's unless `body` says otherwise); it resolves to
   * the seconds until recovery and what recovered. Failures count from the fault until recovery
   * plus the margin, so a late one is not missed.
   */
  const measure = async (
    fault: string,
    inject: () => Promise<{ seconds: number | undefined; what: string }>,
    body: unknown = webhookLogin,
  ) => {
    log(`fault: ${fault}`);
    const s = stream(client, body);
    await sleep(marginMs);
    const began = Date.now();
    let result: { seconds: number | undefined; what: string };
    try {
      result = await inject();
    } catch (err) {
      result = { seconds: undefined, what: `the fault failed: ${(err as Error).message}` };
    }
    await sleep(marginMs);
    await s.stop();
    const window = s.answers.filter((a) => a.at >= began);
    const failed = window.filter((a) => !a.ok);
    const since = (a: Answer | undefined) => ((a?.at ?? began) - began) / 1000;
    rows.push({
      fault,
      recoveredSeconds: result.seconds,
      failed: failed.length,
      total: window.length,
      failing: failed.length > 0 ? [since(failed[0]), since(failed.at(-1))] : undefined,
      what: result.what,
      errors: [...new Set(failed.map((a) => a.error ?? ""))].slice(0, 3),
    });
    // Whatever the fault left behind settles before the next one.
    await until(twoReady, Date.now(), 180_000);
  };

  await measure("kill -9 pod", async () => {
    const holder = (await lease()).spec.holderIdentity;
    const victim = (await pods()).find((p) => p.metadata.name !== holder)!;
    const t0 = Date.now();
    await killPod(victim);
    let started = "";
    const seconds = await until(async () => {
      const p = (await pods()).find((q) => q.metadata.name === victim.metadata.name);
      started = p?.status.containerStatuses?.[0]?.state?.running?.startedAt ?? "";
      return restarts(p) > restarts(victim) && p !== undefined && podReady(p);
    }, t0);
    const restartedAfter = started ? `${Math.max(0, (Date.parse(started) - t0) / 1000).toFixed(0)} s` : "?";
    return {
      seconds,
      what: `the killed container restarted by kubelet (started ${restartedAfter} after the kill, to the second) and Ready again`,
    };
  });

  await measure("kill -9 leader", async () => {
    const before = (await lease()).spec;
    const victim = (await pods()).find((p) => p.metadata.name === before.holderIdentity);
    if (!victim) throw new Error(`the Lease's holder ${before.holderIdentity} is no pod`);
    const t0 = Date.now();
    await killPod(victim);
    // A live process renewed the Lease: the other replica took it, or the restarted container.
    let holder = "";
    const seconds = await until(async () => {
      const now = (await lease()).spec;
      holder = now.holderIdentity ?? "";
      return Date.parse(now.renewTime ?? "") > t0 + 1000;
    }, t0);
    const other = holder !== before.holderIdentity;
    const p = (await pods()).find((q) => q.metadata.name === victim.metadata.name);
    const started = p?.status.containerStatuses?.[0]?.state?.running?.startedAt;
    const restartedAfter = started ? `${Math.max(0, (Date.parse(started) - t0) / 1000).toFixed(0)} s` : "?";
    return {
      seconds,
      what: `Lease renewed by ${other ? "the other replica" : "the restarted leader (same pod name)"}; the killed container started again ${restartedAfter} after the kill`,
    };
  });

  for (const component of ["kube-apiserver", "etcd"] as const) {
    await measure(`${component} restart`, async () => {
      const t0 = Date.now();
      await n.restartControlPlane(component);
      const up = (Date.now() - t0) / 1000;
      const seconds = await until(loginWorks(webhookLogin), t0);
      return {
        seconds,
        what: `kube-apiserver ready after ${up.toFixed(1)} s, then a login through the aggregator`,
      };
    });
  }

  await measure("Secrets deleted", async () => {
    const names = (
      JSON.parse(await kubectl(["get", "secrets", "-n", conciergeNamespace, "-o", "json"])) as {
        items: { metadata: { name: string; uid: string } }[];
      }
    ).items.filter((s) => /serving-certificate|ca-certificate/.test(s.metadata.name));
    const t0 = Date.now();
    await kubectl(["delete", "secret", "-n", conciergeNamespace, ...names.map((s) => s.metadata.name)]);
    const seconds = await until(async () => {
      const now = (
        JSON.parse(await kubectl(["get", "secrets", "-n", conciergeNamespace, "-o", "json"])) as {
          items: { metadata: { name: string; uid: string } }[];
        }
      ).items;
      const recreated = names.every((s) =>
        now.some((m) => m.metadata.name === s.metadata.name && m.metadata.uid !== s.metadata.uid),
      );
      return recreated && (await loginWorks(webhookLogin)());
    }, t0);
    return {
      seconds,
      what: `${names.map((s) => s.metadata.name).join(", ")} recreated, then a login through the aggregator`,
    };
  });

  await measure(
    `IdP down ${outageMs / 1000} s`,
    async () => {
      const held = await outage(provider.issuer);
      const t0 = Date.now();
      const seconds = await until(loginWorks(jwtLogin), t0);
      const phase = (
        JSON.parse(await kubectl(["get", "jwtauthenticator", "faults", "-o", "json"])) as {
          status?: { phase?: string };
        }
      ).status?.phase;
      return {
        seconds,
        what: `${held}; after it was back: a JWT login; the JWTAuthenticator ${phase} (JWKS cached: logins go on)`,
      };
    },
    jwtLogin,
  );

  await measure(`webhook down ${outageMs / 1000} s`, async () => {
    const asked = webhook.requests.length;
    const held = await outage(webhook.url);
    const during = webhook.requests.length - asked;
    const seconds = await until(loginWorks(webhookLogin), Date.now());
    return {
      seconds,
      what: `${held}, ${during} reviews reached it meanwhile; after it was back: a webhook login`,
    };
  });

  await measure("rollout restart", async () => {
    const t0 = Date.now();
    await kubectl(["rollout", "restart", "-n", conciergeNamespace, "deployment/pinniped-concierge"]);
    await kubectl([
      "rollout",
      "status",
      "-n",
      conciergeNamespace,
      "deployment/pinniped-concierge",
      "--timeout=300s",
    ]);
    const seconds = await until(twoReady, t0, 300_000);
    return { seconds, what: "rollout complete, the two new replicas Ready, the old ones gone" };
  });

  console.log("fault                 recovered   failed requests   failing from-to   what recovered");
  for (const r of rows) {
    const seconds = r.recoveredSeconds === undefined ? "never" : `${r.recoveredSeconds.toFixed(1)} s`;
    const failing = r.failing ? `${r.failing[0].toFixed(1)}-${r.failing[1].toFixed(1)} s` : "";
    console.log(
      `${r.fault.padEnd(21)} ${seconds.padStart(9)}   ${`${r.failed} of ${r.total}`.padStart(15)}   ${failing.padStart(15)}   ${r.what}`,
    );
    for (const e of r.errors) console.log(`${" ".repeat(22)}e.g. ${e}`);
  }
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await n.stop();
}
