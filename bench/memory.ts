// What users size a Concierge pod by: its memory idle, at peak under a standard load and after the
// load, and the CPU each request costs it, next to the goals of issue 16, in one run.
//
// The Concierge runs as its own process, from the same one-file bundle the container image runs
// (`--sources` runs server/main.ts instead), installed from config/ against a dedicated control
// plane as hack/run-local.ts installs it, with its ServiceAccount's token. Its memory is read from
// /proc (RSS, its anonymous part, the high-water mark) and its V8 heap from its own /metrics; its
// CPU from /proc. Logins go to a real TokenReview webhook with a new token each (so no cache
// answers them); the impersonation proxy is enabled (service type None), and its signer issues
// the credentials, as on a cluster whose signing key cannot be borrowed. The phases:
//
//   idle       10 s after it is ready, the proxy listening and an authenticator loaded
//   bursts     5 s of TokenCredentialRequests (8 in flight) then 5 s of proxied GETs (8 in flight)
//   CPU        TCRs through kube-apiserver's aggregator, and the same GET direct and through the
//              proxy at 1 and 8 in flight, in short interleaved rounds
//   watches    1,000 watches opened through the proxy (RSS per watch)
//   sustained  TCRs (8 in flight) and proxied GETs (8 in flight) for 30 s with the watches open
//   after      the watches cancelled; RSS every 5 s for 60 s
//
// Everything shares this machine: the clients, kube-apiserver and the Concierge compete for the
// same cores, so CPU per request is what the Concierge process used divided by what it served.
// The figures are printed, never asserted. CONCIERGE_BENCH_QUICK=1 (bench/quick.ts) runs every
// phase shorter (3 s idle, 2 s bursts, 200 watches, 8 s sustained, 15 s after).
//
// The Concierge gets the literal environment of the Deployment's container (config/07-deployment.yaml:
// NODE_OPTIONS, MALLOC_ARENA_MAX, ...), so the figures are those of the shipped settings; `--bare`
// leaves it out, `--env=NAME=VALUE` adds to or overrides it.
//
//   node bench/memory.ts [--sources] [--bare] [--env=NAME=VALUE ...] [--node-flag=--max-semi-space-size=1 ...]
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { get as httpGet, type IncomingMessage } from "node:http";
import type { ClientHttp2Session } from "node:http2";
import { constants } from "node:http2";
import { get as httpsGet } from "node:https";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse as parseYAML } from "yaml";
import { CertificateAuthority } from "../certs/ca.ts";
import { issueClientCertificate } from "../certs/issue.ts";
import { freePorts, startControlPlane } from "../hack/controlplane.ts";
import { bundleServer } from "../hack/image/build-concierge.ts";
import { installLocal } from "../hack/run-local.ts";
import { createLogger } from "../observability/logger.ts";
import { startTokenReviewWebhook } from "../test/harness/tokenreview-webhook.ts";
import {
  expectOK,
  findApiserverPid,
  kubectl,
  newTally,
  openSession,
  openWatch,
  percentile,
  processCPUSeconds,
  processMemory,
  request,
  round,
  type Tally,
} from "./lib.ts";
import { quickOr } from "./quick.ts";

const { values: flags } = parseArgs({
  options: {
    sources: { type: "boolean", default: false },
    "node-flag": { type: "string", multiple: true, default: [] },
    bare: { type: "boolean", default: false },
    env: { type: "string", multiple: true, default: [] },
    "sustained-seconds": { type: "string", default: quickOr("30", "8") },
    watches: { type: "string", default: quickOr("1000", "200") },
  },
  strict: true,
});
const sustainedMs = Number(flags["sustained-seconds"]) * 1000;
const watchCount = Number(flags.watches);
const idleSettleMs = quickOr(10_000, 3_000);
const burstMs = quickOr(5_000, 2_000);
const afterBurstsMs = quickOr(5_000, 2_000);
const rounds = quickOr(5, 2);
const roundMs = quickOr(500, 250);
const recoveryMs = quickOr(60_000, 15_000);
const recoveryStepMs = 5_000;
const watchSessions = 10;
const watchOpenBatch = 100;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const login = "login.concierge.pinniped.dev";
const tcrPath = `/apis/${login}/v1alpha1/tokencredentialrequests`;
const benchNamespace = "concierge-bench-memory";
const getPath = `/api/v1/namespaces/${benchNamespace}`;
const configMaps = `/api/v1/namespaces/${benchNamespace}/configmaps`;
const user = { username: "bench-user@example.com", groups: ["bench-developers", "readers", "on-call"] };
const issuerName = "pinniped-concierge-config";

const log = (m: string) => process.stderr.write(`[bench/memory] ${m}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

type Answer = { status: number; text: string };

/** The status and body of an answer. */
function answer(res: IncomingMessage): Promise<Answer> {
  return new Promise((resolve) => {
    let text = "";
    res.setEncoding("utf8");
    res.on("data", (c: string) => {
      text += c;
    });
    res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
  });
}

/** GET on the Concierge's plain-HTTP health listener, as the kubelet probes. */
function health(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    httpGet({ host: "127.0.0.1", port, path }, (res) => resolve(answer(res))).on("error", reject);
  });
}

/**
 * GET /metrics as Prometheus scrapes it: on the HTTPS port, with a token bound to
 * pinniped-concierge-metrics-reader (the serving certificate is not checked here).
 */
function scrape(port: number, token: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    httpsGet(
      {
        host: "127.0.0.1",
        port,
        path: "/metrics",
        rejectUnauthorized: false,
        headers: { authorization: `Bearer ${token}` },
      },
      (res) => resolve(answer(res)),
    ).on("error", reject);
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** The Deployment's container's environment variables with a literal value. */
async function deploymentEnv(): Promise<Record<string, string>> {
  const deployment = parseYAML(await readFile(join(root, "config", "07-deployment.yaml"), "utf8")) as {
    spec: {
      template: { spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } };
    };
  };
  const container = deployment.spec.template.spec.containers.find((c) => c.name === "pinniped-concierge");
  return Object.fromEntries(
    (container?.env ?? []).filter((e) => typeof e.value === "string").map((e) => [e.name, e.value!]),
  );
}

interface Sample {
  label: string;
  rss: number;
  anon: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

process.once("SIGINT", () => process.exit(130)); // the control plane's exit hook kills its children

const began = Date.now();
const dir = await mkdtemp(join(tmpdir(), "bench-memory-"));
const cp = await startControlPlane({ name: "bench-memory", log });
const webhook = await startTokenReviewWebhook();
let child: ChildProcess | undefined;
const sessions: ClientHttp2Session[] = [];
try {
  const [proxyPort] = (await freePorts(1)) as [number];
  const install = await installLocal({
    kubeconfigPath: cp.kubeconfigPath,
    binDir: cp.binDir,
    log: createLogger({ level: "error" }),
    configOverrides: { impersonationProxyServerPort: proxyPort },
  });
  const configPath = join(dir, "pinniped.yaml");
  // JSON is YAML.
  await writeFile(configPath, JSON.stringify(install.settings));
  let entry = join(root, "server", "main.ts");
  if (!flags.sources) {
    entry = join(dir, "server.mjs");
    await writeFile(entry, await bundleServer(root));
  }
  const logPath = join(dir, "concierge.log");
  const logFile = createWriteStream(logPath);
  const childEnv: Record<string, string> = {
    ...(flags.bare ? {} : await deploymentEnv()),
    ...Object.fromEntries(
      flags.env.map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]),
    ),
  };
  child = spawn(
    process.execPath,
    [...flags["node-flag"], entry, "--config", configPath, "--kubeconfig", install.kubeconfigPath],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...childEnv } },
  );
  child.stdout!.pipe(logFile);
  child.stderr!.pipe(logFile);
  const exited = new Promise<never>((_, reject) =>
    child!.once("exit", (code, signal) =>
      reject(new Error(`the Concierge exited (${code ?? signal}); its log is ${logPath}`)),
    ),
  );
  exited.catch(() => {});
  const pid = child.pid!;
  const startedAt = performance.now();
  const healthPort = install.config.healthPort;
  await Promise.race([
    exited,
    until("the Concierge to be ready", async () => (await health(healthPort, "/readyz")).status === 200),
  ]);
  const readySeconds = (performance.now() - startedAt) / 1000;
  const startupPeak = (await processMemory(pid))!.peak;

  const objects = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: benchNamespace } },
    {
      apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
      kind: "WebhookAuthenticator",
      metadata: { name: "bench" },
      spec: { endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } },
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "bench-memory-reader" },
      rules: [
        { apiGroups: [""], resources: ["namespaces"], verbs: ["get"] },
        { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "bench-memory-reader" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "bench-memory-reader" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user.username }],
    },
    // What scrapes /metrics, as a Prometheus would: a ServiceAccount bound to the reader role.
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "bench-metrics", namespace: "default" } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "bench-metrics" },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: "pinniped-concierge-metrics-reader",
      },
      subjects: [{ kind: "ServiceAccount", name: "bench-metrics", namespace: "default" }],
    },
  ];
  await kubectl(cp, ["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
  const scraperToken = (
    await kubectl(cp, ["create", "token", "bench-metrics", "-n", "default", "--duration=6h"])
  ).trim();
  await until("the CredentialIssuer", async () => {
    await kubectl(cp, ["get", "credentialissuer", issuerName]);
    return true;
  });
  await kubectl(cp, [
    "patch",
    "credentialissuer",
    issuerName,
    "--type=merge",
    "-p",
    JSON.stringify({
      spec: {
        impersonationProxy: {
          mode: "enabled",
          service: { type: "None" },
          externalEndpoint: `127.0.0.1:${proxyPort}`,
        },
      },
    }),
  ]);
  await kubectl(cp, [
    "wait",
    "--for=jsonpath={.status.phase}=Ready",
    "--timeout=90s",
    "webhookauthenticator/bench",
  ]);
  let proxyCAPEM = "";
  await until("the ImpersonationProxy strategy to be Listening", async () => {
    const issuer = JSON.parse(await kubectl(cp, ["get", "credentialissuer", issuerName, "-o", "json"])) as {
      status?: {
        strategies?: {
          type: string;
          reason: string;
          frontend?: { impersonationProxyInfo?: { certificateAuthorityData: string } };
        }[];
      };
    };
    const proxy = issuer.status?.strategies?.find((s) => s.type === "ImpersonationProxy");
    proxyCAPEM = Buffer.from(
      proxy?.frontend?.impersonationProxyInfo?.certificateAuthorityData ?? "",
      "base64",
    ).toString();
    return proxy?.reason === "Listening" && proxyCAPEM !== "";
  });

  const [caCert, caKey, adminCert, adminKey] = await Promise.all(
    [cp.pki.ca.cert, cp.pki.ca.key, cp.pki.admin.cert, cp.pki.admin.key].map((f) => readFile(f, "utf8")),
  );
  const aggregator = await openSession(cp.server, { ca: caCert!, cert: adminCert!, key: adminKey! }, log);
  sessions.push(aggregator);
  const tcrBody = (token: string) => ({
    apiVersion: `${login}/v1alpha1`,
    kind: "TokenCredentialRequest",
    spec: {
      token,
      authenticator: {
        apiGroup: "authentication.concierge.pinniped.dev",
        kind: "WebhookAuthenticator",
        name: "bench",
      },
    },
  });
  /** A login with a token the webhook has never seen; resolves with the credential. */
  const tcr = async () => {
    const token = randomUUID();
    webhook.users.set(token, user);
    try {
      const res = await request(aggregator, "POST", tcrPath, tcrBody(token));
      const credential = (
        JSON.parse(res.text) as {
          status?: { credential?: { clientCertificateData: string; clientKeyData: string } };
        }
      ).status?.credential;
      if (res.status !== 201 || !credential)
        throw new Error(`TokenCredentialRequest answered ${res.status}: ${res.text.slice(0, 400)}`);
      return credential;
    } finally {
      webhook.users.delete(token);
    }
  };
  const credential = await tcr();
  const clusterCA = CertificateAuthority.load(caCert!, caKey!);
  const directUser = await issueClientCertificate(clusterCA, user, 3_600_000);
  const direct = await openSession(
    cp.server,
    { ca: caCert!, cert: directUser.certPEM, key: directUser.keyPEM },
    log,
  );
  const proxyURL = `https://127.0.0.1:${proxyPort}`;
  const proxyTLS = { ca: proxyCAPEM, cert: credential.clientCertificateData, key: credential.clientKeyData };
  const viaProxy = await openSession(proxyURL, proxyTLS, log);
  sessions.push(direct, viaProxy);
  const getOp = (session: ClientHttp2Session) => async () => {
    const res = await request(session, "GET", getPath);
    if (res.status !== 200)
      throw new Error(`GET ${getPath} answered ${res.status}: ${res.text.slice(0, 400)}`);
  };
  const directGet = getOp(direct);
  const proxyGet = getOp(viaProxy);
  await directGet();
  await proxyGet();
  const apiserverPid = await findApiserverPid();
  const watched = { concierge: pid, apiserver: apiserverPid };
  log(`set up in ${((Date.now() - began) / 1000).toFixed(1)}s; measuring`);

  const metric = (text: string, name: string) =>
    Number(new RegExp(`^concierge_nodejs_${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  const sample = async (label: string): Promise<Sample> => {
    const [memory, metrics] = await Promise.all([
      processMemory(pid),
      scrape(install.config.aggregatedAPIServerPort, scraperToken),
    ]);
    if (!memory) throw new Error("the Concierge is gone");
    return {
      label,
      rss: memory.rss,
      anon: memory.anon,
      heapUsed: metric(metrics.text, "heap_size_used_bytes"),
      heapTotal: metric(metrics.text, "heap_size_total_bytes"),
      external: metric(metrics.text, "external_memory_bytes"),
    };
  };
  /** Resets the kernel's RSS high-water mark of the Concierge (clear_refs 5), so VmHWM is a phase's peak. */
  const resetPeak = () => writeFile(`/proc/${pid}/clear_refs`, "5").catch(() => {});
  const samples: Sample[] = [];

  // Idle.
  await sleep(idleSettleMs);
  const idle = await sample("idle");
  samples.push(idle);

  // Bursts.
  await resetPeak();
  const scratch = newTally();
  await round(tcr, 8, burstMs, scratch);
  await round(proxyGet, 8, burstMs, scratch);
  const burstPeak = (await processMemory(pid))!.peak;
  await sleep(afterBurstsMs);
  samples.push(await sample(`${afterBurstsMs / 1000} s after bursts`));

  // CPU per request and the proxy's throughput.
  const tcrTally = newTally();
  for (let i = 0; i < rounds; i++) await round(tcr, 8, 2 * roundMs, tcrTally, watched);
  const getTallies = new Map<number, [Tally, Tally]>();
  for (const concurrency of [1, 8]) {
    const tallies: [Tally, Tally] = [newTally(), newTally()];
    await round(directGet, concurrency, roundMs, newTally());
    await round(proxyGet, concurrency, roundMs, newTally());
    for (let i = 0; i < rounds; i++) {
      await round(directGet, concurrency, roundMs, tallies[0], watched);
      await round(proxyGet, concurrency, roundMs, tallies[1], watched);
    }
    getTallies.set(concurrency, tallies);
  }
  samples.push(await sample("after CPU rounds"));

  // Watches.
  const watchSessionList = await Promise.all(
    Array.from({ length: watchSessions }, () => openSession(proxyURL, proxyTLS, log)),
  );
  sessions.push(...watchSessionList);
  await sleep(1_000);
  const beforeWatches = await sample("before watches");
  samples.push(beforeWatches);
  const rv = (await expectOK(aggregator, "GET", configMaps)).metadata?.resourceVersion ?? "";
  const watches: ReturnType<typeof openWatch>[] = [];
  let established = 0;
  const failures = new Map<string, number>();
  while (watches.length < watchCount) {
    const batch: Promise<void>[] = [];
    for (let i = 0; i < watchOpenBatch && watches.length < watchCount; i++) {
      const w = openWatch(
        watchSessionList[watches.length % watchSessions]!,
        `${configMaps}?watch=1&resourceVersion=${rv}`,
        () => {},
      );
      watches.push(w);
      batch.push(
        w.opened.then(
          () => {
            established++;
          },
          (err: Error) => {
            failures.set(err.message, (failures.get(err.message) ?? 0) + 1);
          },
        ),
      );
    }
    await Promise.all(batch);
  }
  await sleep(1_000);
  const withWatches = await sample(`${established} watches open`);
  samples.push(withWatches);

  // Sustained load, the watches still open.
  await resetPeak();
  let sampledPeak = { rss: 0, anon: 0 };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const m = await processMemory(pid);
      if (m)
        sampledPeak = { rss: Math.max(sampledPeak.rss, m.rss), anon: Math.max(sampledPeak.anon, m.anon) };
      await sleep(200);
    }
  })();
  const sustained = { tcr: newTally(), get: newTally() };
  const cpuBefore = await processCPUSeconds(pid);
  const t0 = performance.now();
  await Promise.all([
    round(tcr, 8, sustainedMs, sustained.tcr),
    round(proxyGet, 8, sustainedMs, sustained.get),
  ]);
  const sustainedSeconds = (performance.now() - t0) / 1000;
  const sustainedCPU = ((await processCPUSeconds(pid)) ?? Number.NaN) - (cpuBefore ?? Number.NaN);
  sampling = false;
  await sampler;
  const sustainedPeak = (await processMemory(pid))!.peak;
  samples.push(await sample("end of sustained load"));

  // After the load.
  for (const w of watches) w.stream.close(constants.NGHTTP2_CANCEL);
  const recovery: { seconds: number; rss: number }[] = [];
  const loadEnded = performance.now();
  for (let t = recoveryStepMs; t <= recoveryMs; t += recoveryStepMs) {
    await sleep(loadEnded + t - performance.now());
    recovery.push({ seconds: t / 1000, rss: (await processMemory(pid))!.rss });
  }
  samples.push(await sample(`${recoveryMs / 1000} s after the load`));
  const backWithin = recovery.find((r) => r.rss <= 1.2 * idle.rss);

  // The report.
  const what = flags.sources ? "server/main.ts (sources)" : "the image's bundle (server.mjs)";
  const nodeFlags = flags["node-flag"].length > 0 ? flags["node-flag"].join(" ") : "none";
  const envText = Object.entries(childEnv)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  console.log(
    `node ${process.version}; the Concierge from ${what}, node flags: ${nodeFlags}; environment: ${envText || "none"}; ${availableParallelism()} CPUs; ` +
      `ready ${readySeconds.toFixed(1)} s after start, startup peak RSS ${mib(startupPeak)} MiB`,
  );
  console.log(
    "\nMemory of the Concierge process (RSS = VmRSS; anon = RssAnon; heap and external from its /metrics)",
  );
  console.log(
    `  ${"when".padEnd(26)} ${"RSS MiB".padStart(8)} ${"anon MiB".padStart(9)} ${"heap used".padStart(10)} ${"heap total".padStart(11)} ${"external".padStart(9)}`,
  );
  for (const s of samples) {
    console.log(
      `  ${s.label.padEnd(26)} ${mib(s.rss).padStart(8)} ${mib(s.anon).padStart(9)} ${mib(s.heapUsed).padStart(10)} ${mib(s.heapTotal).padStart(11)} ${mib(s.external).padStart(9)}`,
    );
  }
  console.log(
    `  RSS after ${recoveryMs / 1000} s, every ${recoveryStepMs / 1000} s: ${recovery.map((r) => mib(r.rss)).join(" ")} MiB`,
  );
  const perWatch = (withWatches.rss - beforeWatches.rss) / Math.max(established, 1);
  const tcrCPU = (1000 * (tcrTally.otherCPUSeconds.concierge ?? Number.NaN)) / tcrTally.count;
  const [direct1, proxy1] = getTallies.get(1)!;
  const [direct8, proxy8] = getTallies.get(8)!;
  const getCPU = (1000 * (proxy8.otherCPUSeconds.concierge ?? Number.NaN)) / proxy8.count;
  const rate = (t: Tally) => t.count / t.seconds;
  const p50 = (t: Tally) =>
    percentile(
      [...t.latenciesMs].sort((a, b) => a - b),
      50,
    );
  const idleMiB = idle.rss / 2 ** 20;
  const sustainedMiB = sustainedPeak / 2 ** 20;
  const throughputRatio = rate(proxy8) / rate(direct8);
  const overheadMs = p50(proxy1) - p50(direct1);
  const recoveredMiB = recovery.at(-1)!.rss / 2 ** 20;
  /** A figure, its goal and how far from it: measured / goal, met when at most (≤) or at least (≥) 1. */
  interface Row {
    name: string;
    value: string;
    goal?: { op: "≤" | "≥"; limit: number; unit: string; measured: number };
  }
  const rows: Row[] = [
    {
      name: "RSS idle",
      value: `${mib(idle.rss)} MiB`,
      goal: { op: "≤", limit: 80, unit: " MiB", measured: idleMiB },
    },
    { name: `RSS peak, ${burstMs / 1000}-s bursts`, value: `${mib(burstPeak)} MiB` },
    {
      name: `RSS peak, sustained ${sustainedMs / 1000} s + ${established} watches`,
      value: `${mib(sustainedPeak)} MiB (sampled ${mib(sampledPeak.rss)}, anon ${mib(sampledPeak.anon)})`,
      goal: { op: "≤", limit: 128, unit: " MiB", measured: sustainedMiB },
    },
    {
      name: `RSS ${recoveryMs / 1000} s after the load / idle`,
      value: backWithin
        ? `${(recoveredMiB / idleMiB).toFixed(2)}x, ≤ 1.2x within ${backWithin.seconds} s`
        : `${(recoveredMiB / idleMiB).toFixed(2)}x (${recoveredMiB.toFixed(1)} MiB), not ≤ 1.2x within ${recoveryMs / 1000} s`,
      goal: { op: "≤", limit: 1.2, unit: "x", measured: recoveredMiB / idleMiB },
    },
    {
      name: "RSS per open watch",
      value: `${(perWatch / 1024).toFixed(1)} KiB`,
      goal: { op: "≤", limit: 32, unit: " KiB", measured: perWatch / 1024 },
    },
    {
      name: "Concierge CPU per TCR, 8 in flight",
      value: `${tcrCPU.toFixed(2)} ms (${rate(tcrTally).toFixed(0)} TCR/s)`,
      goal: { op: "≤", limit: 0.8, unit: " ms", measured: tcrCPU },
    },
    {
      name: "Concierge CPU per proxied GET, 8 in flight",
      value: `${getCPU.toFixed(2)} ms`,
      goal: { op: "≤", limit: 0.3, unit: " ms", measured: getCPU },
    },
    {
      name: "proxy throughput / direct, 8 in flight",
      value: `${throughputRatio.toFixed(2)} (${rate(proxy8).toFixed(0)} vs ${rate(direct8).toFixed(0)} GET/s)`,
      goal: { op: "≥", limit: 0.75, unit: "", measured: throughputRatio },
    },
    {
      name: "proxy p50 overhead, 1 in flight",
      value: `${overheadMs.toFixed(2)} ms`,
      goal: { op: "≤", limit: 0.5, unit: " ms", measured: overheadMs },
    },
    {
      name: "sustained: TCR/s, GET/s, CPU ms per request",
      value:
        `${rate(sustained.tcr).toFixed(0)}, ${rate(sustained.get).toFixed(0)}, ` +
        `${((1000 * sustainedCPU) / (sustained.tcr.count + sustained.get.count)).toFixed(2)} (both kinds, ${sustainedSeconds.toFixed(0)} s)`,
    },
  ];
  console.log("\nAgainst the goals of issue 16 (ratio = measured / goal)");
  console.log(`  ${"".padEnd(46)} ${"measured".padEnd(56)} ${"goal".padEnd(11)} ratio`);
  for (const { name, value, goal } of rows) {
    const met = goal && (goal.op === "≤" ? goal.measured <= goal.limit : goal.measured >= goal.limit);
    const target = goal ? `${goal.op} ${goal.limit}${goal.unit}` : "";
    const ratio = goal ? `${(goal.measured / goal.limit).toFixed(2)} ${met ? "met" : "NOT met"}` : "";
    console.log(`  ${name.padEnd(46)} ${value.padEnd(56)} ${target.padEnd(11)} ${ratio}`);
  }
  if (established < watchCount || failures.size > 0) {
    console.log(
      `  watches established ${established}/${watchCount}` +
        (failures.size > 0 ? `; failures: ${[...failures].map(([m, n]) => `${n}× ${m}`).join("; ")}` : ""),
    );
  }
} catch (err) {
  const tail = await readFile(join(dir, "concierge.log"), "utf8").catch(() => "");
  log(`failed; the Concierge's last log lines:\n${tail.split("\n").slice(-30).join("\n")}`);
  throw err;
} finally {
  for (const session of sessions) session.destroy();
  if (child && child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((resolve) => child!.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child!.kill("SIGKILL"), 20_000);
    await gone;
    clearTimeout(timer);
  }
  await webhook.close();
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
}
