// What users size a Concierge pod by: its memory idle, at peak under a standard load and after the
// load, and the CPU each request costs it, next to the goals of issue 16, in one run.
//
// The Concierge runs as its own process, from the same one-file bundle the container image runs
// (`--sources` runs server/main.ts instead), installed from config/ against a dedicated control
// plane as hack/run-local.ts installs it, with its ServiceAccount's token. With `--pod` (npm run
// bench:memory-pod, inside the real node's namespaces) it is the image's container on the real
// node instead, installed with `kubectl apply -f crds/ -f config/` and scaled to one replica, and
// the container's cgroup memory (usage, and the working set the kubelet and `kubectl top` report)
// is printed next to the process's RSS, with the same goals (bench/memory-targets.ts). Its memory
// is read from /proc (RSS, its anonymous part, the high-water mark) and its V8 heap from its own
// /metrics; its CPU from /proc. Logins go to a real TokenReview webhook with a new token each (so no cache
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
// NODE_OPTIONS, LD_PRELOAD of jemalloc, ...), so the figures are those of the shipped settings; `--bare`
// leaves it out, `--env=NAME=VALUE` adds to or overrides it (in a pod: `kubectl set env`).
//
// At idle, at the end of the load and after it, it also prints where the memory is: file-backed and
// anonymous pages, threads, glibc's malloc arenas. `--heap-snapshot=DIR` writes a V8 heap snapshot
// of the idle process there and prints its objects summed by constructor (the snapshot itself
// grows the process, so the run stops there); `--idle-only` stops after idle as well. `--bundle`
// runs a bundle built before (another commit's, to compare old and new in one sitting).
//
//   node bench/memory.ts [--sources] [--bare] [--env=NAME=VALUE ...] [--node-flag=--max-semi-space-size=1 ...]
//     [--idle-only] [--heap-snapshot=DIR] [--bundle=server.mjs]
//   node hack/node/launch.ts node bench/memory.ts --pod [--env=NAME=VALUE ...] [--idle-only]
import { randomUUID } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import type { ClientHttp2Session } from "node:http2";
import { constants } from "node:http2";
import { get as httpsGet } from "node:https";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CertificateAuthority } from "../certs/ca.ts";
import { issueClientCertificate } from "../certs/issue.ts";
import { residency, summarizeHeapSnapshot, threadNames } from "./breakdown.ts";
import {
  expectOK,
  findApiserverPid,
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
import { type CgroupMemory, localTarget, podTarget } from "./memory-targets.ts";
import { quickOr } from "./quick.ts";

const { values: flags } = parseArgs({
  options: {
    sources: { type: "boolean", default: false },
    "node-flag": { type: "string", multiple: true, default: [] },
    bare: { type: "boolean", default: false },
    env: { type: "string", multiple: true, default: [] },
    "sustained-seconds": { type: "string", default: quickOr("30", "8") },
    watches: { type: "string", default: quickOr("1000", "200") },
    "idle-only": { type: "boolean", default: false },
    pod: { type: "boolean", default: false },
    bundle: { type: "string" },
    "heap-snapshot": { type: "string" },
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

/**
 * GET /metrics as Prometheus scrapes it: on the HTTPS port, with a token bound to
 * pinniped-concierge-metrics-reader (the serving certificate is not checked here).
 */
function scrape(at: { host: string; port: number }, token: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    httpsGet(
      {
        host: at.host,
        port: at.port,
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

interface Sample {
  label: string;
  rss: number;
  anon: number;
  /** In a pod: the container's cgroup usage and working set. */
  cgroup?: CgroupMemory;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

/** The process's memory by kind, and its threads by name. */
async function breakdown(pid: number, s: Sample): Promise<void> {
  const r = await residency(pid);
  const threads = [...(await threadNames(pid))].map(([name, n]) => (n > 1 ? `${name} ×${n}` : name));
  console.log(
    `${s.label}: RSS ${mib(s.rss)} MiB = ${mib(r.fileBacked)} file-backed + ${mib(r.anonymous)} anonymous (PSS ${mib(r.pss)}); ` +
      `V8 heap ${mib(s.heapUsed)} used of ${mib(s.heapTotal)}, external ${mib(s.external)} MiB; ` +
      `brk heap (glibc's main arena; empty under jemalloc) ${mib(r.mainArenaResident)} MiB, ${r.arenas} glibc arenas besides it (${mib(r.arenaResident)} MiB); ` +
      `${r.threads} threads: ${threads.join(", ")}`,
  );
}

/** Signals the process to write a heap snapshot into `dir`, waits for it and prints its largest groups. */
async function idleHeapSnapshot(pid: number, dir: string): Promise<void> {
  const before = new Set(await readdir(dir));
  process.kill(pid, "SIGUSR2");
  let text = "";
  await until("the heap snapshot", async () => {
    const file = (await readdir(dir)).find((f) => f.endsWith(".heapsnapshot") && !before.has(f));
    if (!file) return false;
    text = await readFile(join(dir, file), "utf8");
    // Written in chunks: complete once it parses.
    try {
      JSON.parse(text);
      log(`heap snapshot: ${join(dir, file)}`);
      return true;
    } catch {
      return false;
    }
  });
  const groups = summarizeHeapSnapshot(text);
  const total = groups.reduce((sum, g) => sum + g.selfSize, 0);
  console.log(
    `\nIdle V8 heap snapshot: ${mib(total)} MiB in ${groups.length} groups; the largest, by self size:`,
  );
  for (const g of groups.slice(0, 40))
    console.log(
      `  ${mib(g.selfSize).padStart(7)} MiB ${String(g.count).padStart(8)}  ${g.name.slice(0, 90)}`,
    );
}

process.once("SIGINT", () => process.exit(130)); // the control plane's exit hook kills its children

const began = Date.now();
const dir = await mkdtemp(join(tmpdir(), "bench-memory-"));
const snapshotDir = flags["heap-snapshot"];
const target = await (flags.pod ? podTarget : localTarget)({
  log,
  dir,
  root,
  env: Object.fromEntries(
    flags.env.map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]),
  ),
  bare: flags.bare,
  sources: flags.sources,
  bundle: flags.bundle,
  nodeFlags: flags["node-flag"],
  snapshotDir,
});
const { pid, webhook } = target;
const kubectl = target.kubectl;
const sessions: ClientHttp2Session[] = [];
try {
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
  await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
  const scraperToken = (
    await kubectl(["create", "token", "bench-metrics", "-n", "default", "--duration=6h"])
  ).trim();
  await until("the CredentialIssuer", async () => {
    await kubectl(["get", "credentialissuer", issuerName]);
    return true;
  });
  await kubectl([
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
          externalEndpoint: target.proxyEndpoint,
        },
      },
    }),
  ]);
  await kubectl([
    "wait",
    "--for=jsonpath={.status.phase}=Ready",
    "--timeout=90s",
    "webhookauthenticator/bench",
  ]);
  let proxyCAPEM = "";
  await until("the ImpersonationProxy strategy to be Listening", async () => {
    const issuer = JSON.parse(await kubectl(["get", "credentialissuer", issuerName, "-o", "json"])) as {
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

  const { ca: caCert, caKey, adminCert, adminKey } = target.pem;
  const aggregator = await openSession(target.server, { ca: caCert, cert: adminCert, key: adminKey }, log);
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
  const clusterCA = CertificateAuthority.load(caCert, caKey);
  const directUser = await issueClientCertificate(clusterCA, user, 3_600_000);
  const direct = await openSession(
    target.server,
    { ca: caCert, cert: directUser.certPEM, key: directUser.keyPEM },
    log,
  );
  const proxyURL = `https://${target.proxyEndpoint}`;
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
    const [memory, metrics, cgroup] = await Promise.all([
      processMemory(pid),
      scrape(target.metrics, scraperToken),
      target.cgroup?.memory(),
    ]);
    if (!memory) throw new Error("the Concierge is gone");
    return {
      label,
      rss: memory.rss,
      anon: memory.anon,
      ...(cgroup ? { cgroup } : {}),
      heapUsed: metric(metrics.text, "heap_size_used_bytes"),
      heapTotal: metric(metrics.text, "heap_size_total_bytes"),
      external: metric(metrics.text, "external_memory_bytes"),
    };
  };
  /** Resets the kernel's RSS high-water mark of the Concierge (clear_refs 5), so VmHWM is a phase's peak. */
  const resetPeak = async () => {
    await writeFile(`/proc/${pid}/clear_refs`, "5").catch(() => {});
    await target.cgroup?.resetPeak();
  };
  const samples: Sample[] = [];

  // Idle.
  await sleep(idleSettleMs);
  const idle = await sample("idle");
  samples.push(idle);

  await breakdown(pid, idle);
  if (snapshotDir !== undefined) await idleHeapSnapshot(pid, snapshotDir);
  else if (!flags["idle-only"]) await underLoad();

  /** Every phase after idle, and the report against the goals. */
  async function underLoad() {
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
    let sampledPeak = { rss: 0, anon: 0, workingSet: 0 };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [m, c] = await Promise.all([processMemory(pid), target.cgroup?.memory()]);
        if (m)
          sampledPeak = {
            rss: Math.max(sampledPeak.rss, m.rss),
            anon: Math.max(sampledPeak.anon, m.anon),
            workingSet: Math.max(sampledPeak.workingSet, c?.workingSet ?? 0),
          };
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
    const cgroupPeak = await target.cgroup?.peak();
    const endOfLoad = await sample("end of sustained load");
    samples.push(endOfLoad);
    await breakdown(pid, endOfLoad);

    // After the load.
    for (const w of watches) w.stream.close(constants.NGHTTP2_CANCEL);
    const recovery: { seconds: number; rss: number; workingSet?: number }[] = [];
    const loadEnded = performance.now();
    for (let t = recoveryStepMs; t <= recoveryMs; t += recoveryStepMs) {
      await sleep(loadEnded + t - performance.now());
      const c = await target.cgroup?.memory();
      recovery.push({
        seconds: t / 1000,
        rss: (await processMemory(pid))!.rss,
        ...(c ? { workingSet: c.workingSet } : {}),
      });
    }
    const after = await sample(`${recoveryMs / 1000} s after the load`);
    samples.push(after);
    await breakdown(pid, after);
    const backWithin = recovery.find((r) => r.rss <= 1.2 * idle.rss);

    // The report.
    console.log(
      `node ${process.version}; the Concierge as ${target.what}; ${availableParallelism()} CPUs; ` +
        (Number.isNaN(target.readySeconds) ? "" : `ready ${target.readySeconds.toFixed(1)} s after start, `) +
        `startup peak RSS ${mib(startupPeak)} MiB`,
    );
    console.log(
      "\nMemory of the Concierge process (RSS = VmRSS; anon = RssAnon; heap and external from its /metrics" +
        (target.cgroup ? "; the container's cgroup usage and working set = usage - inactive_file)" : ")"),
    );
    const cgroupColumns = (s?: Sample) =>
      !target.cgroup
        ? ""
        : s
          ? ` ${mib(s.cgroup?.usage ?? Number.NaN).padStart(9)} ${mib(s.cgroup?.workingSet ?? Number.NaN).padStart(8)}`
          : ` ${"cgroup".padStart(9)} ${"work set".padStart(8)}`;
    console.log(
      `  ${"when".padEnd(26)} ${"RSS MiB".padStart(8)} ${"anon MiB".padStart(9)} ${"heap used".padStart(10)} ${"heap total".padStart(11)} ${"external".padStart(9)}${cgroupColumns()}`,
    );
    for (const s of samples) {
      console.log(
        `  ${s.label.padEnd(26)} ${mib(s.rss).padStart(8)} ${mib(s.anon).padStart(9)} ${mib(s.heapUsed).padStart(10)} ${mib(s.heapTotal).padStart(11)} ${mib(s.external).padStart(9)}${cgroupColumns(s)}`,
      );
    }
    console.log(
      `  RSS after ${recoveryMs / 1000} s, every ${recoveryStepMs / 1000} s: ${recovery.map((r) => mib(r.rss)).join(" ")} MiB`,
    );
    if (target.cgroup)
      console.log(
        `  working set after ${recoveryMs / 1000} s, every ${recoveryStepMs / 1000} s: ${recovery.map((r) => mib(r.workingSet ?? Number.NaN)).join(" ")} MiB`,
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
      ...cgroupRows(),
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
    /** In a pod, the container's figures against the same goals as the process's RSS. */
    function cgroupRows(): Row[] {
      const idleCgroup = idle.cgroup;
      if (!idleCgroup || cgroupPeak === undefined) return [];
      const idleWS = idleCgroup.workingSet / 2 ** 20;
      const afterWS = (recovery.at(-1)?.workingSet ?? Number.NaN) / 2 ** 20;
      const wsBack = recovery.find((r) => (r.workingSet ?? Number.NaN) <= 1.2 * idleCgroup.workingSet);
      return [
        {
          name: "container working set idle",
          value: `${idleWS.toFixed(1)} MiB (cgroup usage ${mib(idleCgroup.usage)})`,
          goal: { op: "≤", limit: 80, unit: " MiB", measured: idleWS },
        },
        {
          name: "container memory peak, sustained load",
          value: `${mib(cgroupPeak)} MiB usage (working set sampled ${mib(sampledPeak.workingSet)})`,
          goal: { op: "≤", limit: 128, unit: " MiB", measured: cgroupPeak / 2 ** 20 },
        },
        {
          name: `container working set ${recoveryMs / 1000} s after / idle`,
          value: wsBack
            ? `${(afterWS / idleWS).toFixed(2)}x, ≤ 1.2x within ${wsBack.seconds} s`
            : `${(afterWS / idleWS).toFixed(2)}x (${afterWS.toFixed(1)} MiB), not ≤ 1.2x within ${recoveryMs / 1000} s`,
          goal: { op: "≤", limit: 1.2, unit: "x", measured: afterWS / idleWS },
        },
      ];
    }
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
  }
} catch (err) {
  log(`failed; the Concierge's last log lines:\n${await target.logTail()}`);
  throw err;
} finally {
  for (const session of sessions) session.destroy();
  await target.stop();
  await rm(dir, { recursive: true, force: true });
}
