// The impersonation proxy's cost next to talking to kube-apiserver directly, measured in one run.
// A dedicated control plane (etcd, kube-apiserver, kube-controller-manager) is started; the proxy
// runs in a child process (this file again, with `proxy` as its argument) so that its RSS, heap,
// CPU and open file descriptors are its own and not mixed with the clients'. The proxy is the
// real one: startImpersonationProxy with createRequestDecider, a serving certificate and a client
// CA minted by certs/, the control plane's admin kubeconfig for TokenReviews and
// SubjectAccessReviews, and the token of a ServiceAccount that may only impersonate as its
// upstream credential. One user identity is used on both paths: a client certificate from the
// cluster CA (direct) and one from the proxy's client CA (proxy), with RBAC to read namespaces
// and watch ConfigMaps.
//
//   1. GET /api/v1/namespaces/default at 1 and 8 in flight over one keep-alive HTTP/2 connection,
//      direct and through the proxy, in short interleaved rounds so noise hits both alike, next
//      to the SubjectAccessReview the proxy makes for each such request, timed alone.
//   2. Watch event latency: one watch on ConfigMaps direct and one through the proxy; ConfigMaps
//      are created one at a time (the next once both watches saw the previous one).
//   3. Many watches through the proxy over a few HTTP/2 sessions: the proxy process's RSS, heap
//      and file descriptors before, at each step and after cancelling them all, and whether each
//      watch was established (200 headers) and delivered an event.
//
// Everything shares this machine, so the proxy's rows include the clients' cost and compete with
// kube-apiserver for the same cores. About a minute after about 10 s of control plane start-up;
// everything is stopped at the end, and it exits.
//
//   node bench/impersonation-proxy.ts   (Node 24; node_modules/.bin/node where the system node is older)
import { readdir, readFile, readlink } from "node:fs/promises";
import { type ClientHttp2Session, constants } from "node:http2";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { CertificateAuthority } from "../certs/ca.ts";
import { type IssuedCertificate, issueClientCertificate, issueServingCertificate } from "../certs/issue.ts";
import { type ControlPlane, startControlPlane } from "../hack/controlplane.ts";
import { createRequestDecider } from "../impersonator/decider.ts";
import { startImpersonationProxy } from "../impersonator/server.ts";
import { ProxyTLSHolder } from "../impersonator/tlsholder.ts";
import type { ProxyTLS } from "../impersonator/types.ts";
import { KubeRestClient } from "../kube/rest.ts";
import { Logger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import {
  BenchChild,
  expectOK,
  findApiserverPid,
  kubectl,
  newTally,
  openSession,
  openWatch,
  percentile,
  processRSS,
  request,
  round,
  type Tally,
  type WatchEvent,
} from "./lib.ts";
import { quickOr } from "./quick.ts";

const warmupMs = quickOr(300, 150);
const rounds = quickOr(5, 2);
const roundMs = quickOr(500, 250);
const concurrencies = [1, 8] as const;
const watchEvents = 200;
const watchSteps = [200, 1000] as const;
const watchSessions = 10;
// Watches are opened this many at a time, as a fleet of reconnecting clients would, not all at once.
const watchOpenBatch = 100;
// Issue 16's goals for the proxy.
const goalThroughputRatio = 0.75;
const goalP50OverheadMs = 0.5;
const goalCPUPerGETMs = 0.3;

const namespace = "concierge-bench";
const watchNamespace = "concierge-bench-watch";
const serviceAccount = "impersonation-proxy";
const user = { username: "bench-user@example.com", groups: ["bench-developers"] };
const getPath = "/api/v1/namespaces/default";

interface ChildConfig {
  kubeconfigPath: string;
  upstreamURL: string;
  upstreamCAPEM: string;
  tls: ProxyTLS;
  token: string;
}

interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
}

type ToChild = { type: "start"; config: ChildConfig } | { type: "memory" } | { type: "stop" };
type FromChild = { type: "ready"; port: number } | { type: "memory"; memory: Memory };

/** The child: the proxy alone, answering the parent's questions about its memory. */
async function runProxyChild(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const send = (message: FromChild) => process.send!(message);
  let stop: (() => Promise<void>) | undefined;
  process.on("message", (message: ToChild) => {
    void (async () => {
      if (message.type === "start") {
        const { config } = message;
        const kc = new KubeConfig();
        kc.loadFromFile(config.kubeconfigPath);
        const client = new KubeRestClient(kc);
        // Info level into nowhere: the audit line of every request is formatted as in
        // production, then dropped.
        const log = new Logger({ level: "info", sink: () => {} });
        const metrics = new Metrics();
        const proxy = await startImpersonationProxy({
          port: 0,
          host: "127.0.0.1",
          tls: new ProxyTLSHolder(config.tls),
          decide: createRequestDecider({ client, proxyToken: () => config.token, log, metrics }),
          upstream: { url: config.upstreamURL, caPEM: config.upstreamCAPEM },
          log,
          metrics,
        });
        stop = async () => {
          await proxy.close();
          client.close?.();
        };
        send({ type: "ready", port: proxy.port });
      } else if (message.type === "memory") {
        // Twice: the first collection's finalizers free more for the second.
        gc?.();
        gc?.();
        const { rss, heapUsed, external } = process.memoryUsage();
        send({ type: "memory", memory: { rss, heapUsed, external } });
      } else {
        await stop?.();
        process.exit(0);
      }
    })();
  });
}

async function openFDs(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  return (await readdir(`/proc/${pid}/fd`).catch(() => undefined))?.length;
}

/**
 * A process's established TCP connections by the remote port (upstream) and the local port
 * (accepted), from its socket inodes and /proc/net/tcp (Linux; the bench only uses 127.0.0.1).
 */
async function tcpConnections(
  pid: number | undefined,
  remotePort: number,
  localPort: number,
): Promise<{ upstream: number; accepted: number } | undefined> {
  if (pid === undefined) return undefined;
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => "")));
  const inodes = new Set(links.map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1]).filter((i) => i !== undefined));
  const table = await readFile("/proc/net/tcp", "utf8").catch(() => "");
  const port = (address: string) => Number.parseInt(address.split(":")[1] ?? "", 16);
  let upstream = 0;
  let accepted = 0;
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    // local, remote, state (01 = ESTABLISHED), ..., inode (the tenth field)
    if (fields.length < 10 || fields[3] !== "01" || !inodes.has(fields[9]!)) continue;
    if (port(fields[2]!) === remotePort) upstream++;
    else if (port(fields[1]!) === localPort) accepted++;
  }
  return { upstream, accepted };
}

const sortedCopy = (values: number[]) => [...values].sort((a, b) => a - b);

async function setUpRBAC(cp: ControlPlane): Promise<string> {
  const role = (name: string, rules: unknown[], kind = "ClusterRole", ns?: string) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind,
    metadata: ns ? { name, namespace: ns } : { name },
    rules,
  });
  const binding = (name: string, roleKind: string, subject: unknown, ns?: string) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: ns ? "RoleBinding" : "ClusterRoleBinding",
    metadata: ns ? { name, namespace: ns } : { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: roleKind, name },
    subjects: [subject],
  });
  const userSubject = { apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user.username };
  const objects = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } },
    { apiVersion: "v1", kind: "Namespace", metadata: { name: watchNamespace } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: serviceAccount, namespace } },
    role("bench-impersonator", [
      { apiGroups: [""], resources: ["users", "groups", "serviceaccounts"], verbs: ["impersonate"] },
      { apiGroups: ["authentication.k8s.io"], resources: ["*"], verbs: ["impersonate"] },
    ]),
    binding("bench-impersonator", "ClusterRole", { kind: "ServiceAccount", name: serviceAccount, namespace }),
    role("bench-namespace-reader", [{ apiGroups: [""], resources: ["namespaces"], verbs: ["get"] }]),
    binding("bench-namespace-reader", "ClusterRole", userSubject),
    role(
      "bench-configmap-watcher",
      [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"] }],
      "Role",
      watchNamespace,
    ),
    binding("bench-configmap-watcher", "Role", userSubject, watchNamespace),
  ];
  await kubectl(cp, ["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
  const token = await kubectl(cp, ["create", "token", "-n", namespace, serviceAccount, "--duration=1h"]);
  return token.trim();
}

class ProxyChild extends BenchChild<ToChild, FromChild> {
  constructor() {
    super(fileURLToPath(import.meta.url), "proxy", [...process.execArgv, "--expose-gc"]);
  }

  async memory(): Promise<Memory> {
    const answer = await this.ask({ type: "memory" });
    if (answer.type !== "memory") throw new Error(`unexpected answer ${answer.type}`);
    return answer.memory;
  }
}

let apiserverPid: number | undefined;
let proxyPid: number | undefined;
const watched = () => ({ apiserver: apiserverPid, proxy: proxyPid });

const log = (m: string) => process.stderr.write(`[bench/proxy] ${m}\n`);
const ms = (v: number) => v.toFixed(2).padStart(7);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const kib = (bytes: number) => (bytes / 1024).toFixed(1);

async function main(): Promise<void> {
  process.once("SIGINT", () => process.exit(130)); // the control plane's exit hook kills its children
  const began = Date.now();
  const cp = await startControlPlane({ name: "bench-proxy", log });
  let child: ProxyChild | undefined;
  const sessions: ClientHttp2Session[] = [];
  try {
    const [caCert, caKey, adminCert, adminKey] = await Promise.all(
      [cp.pki.ca.cert, cp.pki.ca.key, cp.pki.admin.cert, cp.pki.admin.key].map((f) => readFile(f, "utf8")),
    );
    const clusterCA = CertificateAuthority.load(caCert!, caKey!);
    const servingCA = await CertificateAuthority.create("bench proxy serving CA", 3_600_000);
    const clientCA = await CertificateAuthority.create("bench proxy client CA", 3_600_000);
    const [serving, directUser, proxyUser, token] = await Promise.all([
      issueServingCertificate(servingCA, { dnsNames: ["localhost"], ips: ["127.0.0.1"] }, 3_600_000),
      issueClientCertificate(clusterCA, user, 3_600_000),
      issueClientCertificate(clientCA, user, 3_600_000),
      setUpRBAC(cp),
    ]);

    child = new ProxyChild();
    proxyPid = child.process.pid;
    const ready = await child.ask({
      type: "start",
      config: {
        kubeconfigPath: cp.kubeconfigPath,
        upstreamURL: cp.server,
        upstreamCAPEM: caCert!,
        tls: { certPEM: serving.certPEM, keyPEM: serving.keyPEM, clientCAPEMs: [clientCA.certPEM] },
        token,
      },
    });
    if (ready.type !== "ready") throw new Error(`unexpected answer ${ready.type}`);
    const proxyURL = `https://127.0.0.1:${ready.port}`;
    const apiserverPort = Number(new URL(cp.server).port);
    apiserverPid = await findApiserverPid();
    const sample = async (label: string) => {
      const [memory, rss, fds, conns, apiserverRSS, apiserverFDs] = await Promise.all([
        child!.memory(),
        processRSS(proxyPid),
        openFDs(proxyPid),
        tcpConnections(proxyPid, apiserverPort, ready.port),
        processRSS(apiserverPid),
        openFDs(apiserverPid),
      ]);
      return { label, memory, rss: rss ?? memory.rss, fds, conns, apiserverRSS, apiserverFDs };
    };
    const idle = await sample("idle, started");

    const asUser = (cert: IssuedCertificate, ca: string) => ({ ca, cert: cert.certPEM, key: cert.keyPEM });
    const admin = await openSession(cp.server, { ca: caCert!, cert: adminCert!, key: adminKey! }, log);
    const direct = await openSession(cp.server, asUser(directUser, caCert!), log);
    const viaProxy = await openSession(proxyURL, asUser(proxyUser, servingCA.certPEM), log);
    sessions.push(admin, direct, viaProxy);
    const getNamespace = (session: ClientHttp2Session) => async () => {
      const res = await request(session, "GET", getPath);
      if (res.status !== 200)
        throw new Error(`GET ${getPath} answered ${res.status}: ${res.text.slice(0, 400)}`);
    };
    // What the decider asks before forwarding the proxied GET (authz.ts), timed alone.
    const subjectAccessReview = {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        user: user.username,
        groups: [...user.groups, "system:authenticated"],
        resourceAttributes: { verb: "get", version: "v1", resource: "namespaces", name: "default" },
      },
    };
    const sarOp = async () => {
      const res = await request(
        admin,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        subjectAccessReview,
      );
      if (res.status !== 201 || !res.text.includes('"allowed":true'))
        throw new Error(`SubjectAccessReview answered ${res.status}: ${res.text.slice(0, 400)}`);
    };
    const stages = [
      { name: "direct (kube-apiserver)", op: getNamespace(direct) },
      { name: "proxy", op: getNamespace(viaProxy) },
      { name: "SAR alone (admin)", op: sarOp },
    ];
    // Both paths must work before anything is timed.
    for (const stage of stages) await stage.op();
    log(`set up in ${((Date.now() - began) / 1000).toFixed(1)}s; measuring`);

    // 1. Request latency and throughput.
    const measureStarted = performance.now();
    const results = new Map<number, Tally[]>();
    for (const concurrency of concurrencies) {
      const tallies = stages.map(newTally);
      const scratch = newTally();
      for (const stage of stages) await round(stage.op, concurrency, warmupMs, scratch, watched());
      for (let i = 0; i < rounds; i++) {
        for (const [j, stage] of stages.entries())
          await round(stage.op, concurrency, roundMs, tallies[j]!, watched());
      }
      results.set(concurrency, tallies);
    }

    // 2. Watch event latency, one ConfigMap at a time.
    const configMaps = `/api/v1/namespaces/${watchNamespace}/configmaps`;
    const listRV = async () => (await expectOK(admin, "GET", configMaps)).metadata?.resourceVersion ?? "";
    const watchPath = (rv: string) => `${configMaps}?watch=1&resourceVersion=${rv}`;
    const arrivals = [new Map<string, number>(), new Map<string, number>()];
    const waiters = new Map<string, () => void>();
    const onEvent = (path: number) => (event: WatchEvent, at: number) => {
      const name = event.object.metadata?.name;
      if (event.type !== "ADDED" || !name) return;
      arrivals[path]!.set(name, at);
      if (arrivals[0]!.has(name) && arrivals[1]!.has(name)) waiters.get(name)?.();
    };
    const rv = await listRV();
    const latencyWatches = [
      openWatch(direct, watchPath(rv), onEvent(0)),
      openWatch(viaProxy, watchPath(rv), onEvent(1)),
    ];
    await Promise.all(latencyWatches.map((w) => w.opened));
    const eventLatencies: number[][] = [[], []];
    for (let i = 0; i < watchEvents; i++) {
      const name = `latency-${i}`;
      const seen = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no event for ${name} on both watches within 10 s`)),
          10_000,
        );
        waiters.set(name, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const t0 = performance.now();
      await expectOK(admin, "POST", configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name } });
      await seen;
      for (const path of [0, 1]) eventLatencies[path]!.push(arrivals[path]!.get(name)! - t0);
    }
    for (const w of latencyWatches) w.stream.close(constants.NGHTTP2_CANCEL);
    const measuredSeconds = (performance.now() - measureStarted) / 1000;

    // 3. Many watches through the proxy.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const watchSessionList = await Promise.all(
      Array.from({ length: watchSessions }, () =>
        openSession(proxyURL, asUser(proxyUser, servingCA.certPEM), log),
      ),
    );
    sessions.push(...watchSessionList);
    const samples = [idle, await sample("before")];
    const probeRV = await listRV();
    const many: ReturnType<typeof openWatch>[] = [];
    const probeArrivals: number[] = [];
    const probeName = "fan-out-probe";
    const onProbe = (event: WatchEvent, at: number) => {
      if (event.type === "ADDED" && event.object.metadata?.name === probeName) probeArrivals.push(at);
    };
    const openFailures = new Map<string, number>();
    let established = 0;
    const openSeconds: number[] = [];
    for (const target of watchSteps) {
      const t0 = performance.now();
      while (many.length < target) {
        const batch: Promise<void>[] = [];
        for (let i = 0; i < watchOpenBatch && many.length < target; i++) {
          const w = openWatch(watchSessionList[many.length % watchSessions]!, watchPath(probeRV), onProbe);
          many.push(w);
          batch.push(
            w.opened.then(
              () => {
                established++;
              },
              (err: Error) => {
                openFailures.set(err.message, (openFailures.get(err.message) ?? 0) + 1);
              },
            ),
          );
        }
        await Promise.all(batch);
      }
      openSeconds.push((performance.now() - t0) / 1000);
      samples.push(await sample(`${target} open`));
    }
    const probeStarted = performance.now();
    await expectOK(admin, "POST", configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: probeName },
    });
    const probeDeadline = performance.now() + 15_000;
    while (probeArrivals.length < established && performance.now() < probeDeadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const fanOut = probeArrivals.map((at) => at - probeStarted).sort((a, b) => a - b);
    for (const w of many) w.stream.close(constants.NGHTTP2_CANCEL);
    // Time for the cancellations to reach the proxy and for it to close its upstream connections.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    samples.push(await sample("all cancelled"));

    // The report.
    console.log(
      `node ${process.version}; ${rounds} × ${roundMs} ms per cell, interleaved, after ${warmupMs} ms warm-up; ` +
        `phases 1–2 took ${measuredSeconds.toFixed(0)} s on a machine with ${availableParallelism()} CPUs`,
    );
    console.log(
      "\n1. GET /api/v1/namespaces/default, one keep-alive HTTP/2 connection, same user (client certificate).",
    );
    console.log(
      "   The proxy authorizes each request with a SubjectAccessReview, answered from its 10 s decision\n" +
        "   cache after the first (the same user and request each time, as with TokenReviews), then sends\n" +
        "   it upstream as a stream on a shared HTTP/2 session, as the impersonation ServiceAccount with\n" +
        "   Impersonate-User/Group headers, and writes an info-level audit line (formatted, dropped).",
    );
    console.log("   CPU ms/req: proxy process | kube-apiserver | bench clients (this process).");
    for (const concurrency of concurrencies) {
      const [d, p, sar] = results.get(concurrency)!;
      console.log(`\n   ${concurrency} in flight`);
      console.log(
        `   ${"path".padEnd(24)} ${"req/s".padStart(7)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)}  ${"CPU ms/req".padStart(22)}`,
      );
      for (const [name, t] of [
        [stages[0]!.name, d!],
        [stages[1]!.name, p!],
        [stages[2]!.name, sar!],
      ] as const) {
        const sorted = t.latenciesMs.sort((a, b) => a - b);
        const per = (s: number) => ((1000 * s) / t.count).toFixed(2);
        const cpu = `${name === "proxy" ? per(t.otherCPUSeconds.proxy ?? 0) : "-"} | ${per(t.otherCPUSeconds.apiserver ?? 0)} | ${per(t.cpuSeconds)}`;
        console.log(
          `   ${name.padEnd(24)} ${(t.count / t.seconds).toFixed(0).padStart(7)} ${ms(percentile(sorted, 50))} ${ms(percentile(sorted, 99))}  ${cpu.padStart(22)}`,
        );
      }
      const added = (q: number) => percentile(p!.latenciesMs, q) - percentile(d!.latenciesMs, q);
      console.log(
        `   proxy adds ${added(50).toFixed(2)} ms at p50, ${added(99).toFixed(2)} ms at p99; ` +
          `throughput proxy/direct ${((100 * (p!.count / p!.seconds)) / (d!.count / d!.seconds)).toFixed(0)}%`,
      );
    }

    const [d1, p1] = results.get(1)!;
    const [d8, p8] = results.get(8)!;
    console.log(
      "\n   Goals (issue 16), this run:\n" +
        `   throughput proxy/direct at 8 in flight ${(p8!.count / p8!.seconds / (d8!.count / d8!.seconds)).toFixed(2)} (goal ≥ ${goalThroughputRatio});` +
        ` p50 overhead at 1 in flight ${(percentile(p1!.latenciesMs, 50) - percentile(d1!.latenciesMs, 50)).toFixed(2)} ms (goal ≤ ${goalP50OverheadMs} ms);` +
        ` proxy CPU per GET at 8 in flight ${((1000 * (p8!.otherCPUSeconds.proxy ?? 0)) / p8!.count).toFixed(2)} ms (goal ≤ ${goalCPUPerGETMs} ms)`,
    );

    console.log(
      `\n2. Watch event latency: ${watchEvents} ConfigMaps created one at a time (admin, HTTP/2), ms from sending the\n` +
        "   create to the ADDED event arriving on a watch opened by the user (same HTTP/2 connections as 1).",
    );
    console.log(
      `   ${"path".padEnd(24)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"max ms".padStart(7)}`,
    );
    const [directEvents, proxyEvents] = eventLatencies.map(sortedCopy) as [number[], number[]];
    for (const [name, sorted] of [
      ["direct (kube-apiserver)", directEvents],
      ["proxy", proxyEvents],
    ] as const) {
      console.log(
        `   ${name.padEnd(24)} ${ms(percentile(sorted, 50))} ${ms(percentile(sorted, 99))} ${ms(sorted.at(-1)!)}`,
      );
    }
    const perEvent = eventLatencies[1]!.map((v, i) => v - eventLatencies[0]![i]!).sort((a, b) => a - b);
    console.log(
      `   proxy minus direct, per event: p50 ${percentile(perEvent, 50).toFixed(2)} ms, p99 ${percentile(perEvent, 99).toFixed(2)} ms`,
    );

    console.log(
      `\n3. Concurrent watches through the proxy over ${watchSessions} HTTP/2 sessions, opened ${watchOpenBatch} at a time.\n` +
        "   The proxy runs in a child process, so RSS and fds are its alone; heap is after two forced GCs.\n" +
        "   upstream/clients: the proxy's established TCP connections to kube-apiserver (watches, pooled\n" +
        "   SubjectAccessReview and forwarding keep-alives) and from the bench's HTTP/2 sessions.\n" +
        "   Per-watch deltas are from 'before' (after 1 and 2, so the pools are warm), not from 'idle'.",
    );
    console.log(
      `   ${"step".padEnd(14)} ${"RSS MiB".padStart(8)} ${"heap MiB".padStart(9)} ${"ext MiB".padStart(8)} ${"fds".padStart(6)} ${"upstream".padStart(9)} ${"clients".padStart(8)}  ${"kube-apiserver RSS MiB, fds".padStart(28)}`,
    );
    for (const s of samples) {
      const apiserver = `${s.apiserverRSS === undefined ? "-" : mib(s.apiserverRSS)}, ${s.apiserverFDs ?? "-"}`;
      console.log(
        `   ${s.label.padEnd(14)} ${mib(s.rss).padStart(8)} ${mib(s.memory.heapUsed).padStart(9)} ${mib(s.memory.external).padStart(8)} ${String(s.fds ?? "-").padStart(6)} ${String(s.conns?.upstream ?? "-").padStart(9)} ${String(s.conns?.accepted ?? "-").padStart(8)}  ${apiserver.padStart(28)}`,
      );
    }
    const base = samples[1]!;
    for (const [i, target] of watchSteps.entries()) {
      const s = samples[i + 2]!;
      console.log(
        `   per watch at ${String(target).padStart(4)}: RSS ${kib((s.rss - base.rss) / target)} KiB, heap ${kib((s.memory.heapUsed - base.memory.heapUsed) / target)} KiB, ` +
          `fds ${((s.fds! - base.fds!) / target).toFixed(2)}; opened in ${openSeconds[i]!.toFixed(1)} s`,
      );
    }
    const [first, last] = [samples[2]!, samples[3]!];
    const added = watchSteps[1] - watchSteps[0];
    console.log(
      `   marginal, ${watchSteps[0]} → ${watchSteps[1]} (pools already grown by the first batches): ` +
        `RSS ${kib((last.rss - first.rss) / added)} KiB, heap ${kib((last.memory.heapUsed - first.memory.heapUsed) / added)} KiB, ` +
        `fds ${((last.fds! - first.fds!) / added).toFixed(2)}, upstream connections ${(((last.conns?.upstream ?? 0) - (first.conns?.upstream ?? 0)) / added).toFixed(2)} per watch`,
    );
    const total = watchSteps.at(-1)!;
    console.log(
      `   established (200 headers): ${established}/${total}` +
        (openFailures.size > 0
          ? `; failures: ${[...openFailures].map(([m, n]) => `${n}× ${m}`).join("; ")}`
          : "") +
        `\n   one ConfigMap created after all were open reached ${probeArrivals.length}/${established} watches` +
        (fanOut.length > 0
          ? ` (p50 ${percentile(fanOut, 50).toFixed(1)} ms, p99 ${percentile(fanOut, 99).toFixed(1)} ms, last ${fanOut.at(-1)!.toFixed(1)} ms after the create was sent)`
          : ""),
    );

    console.log(
      "\nHow to read: 1 compares the same GET by the same user direct and through the proxy in one run;\n" +
        "the proxy's added latency is one more hop, its SubjectAccessReviews being cached (the SAR row is\n" +
        "what an uncached one costs: the same review sent alone over HTTP/2), and the\n" +
        "CPU columns show where a request-rate limit would come from. 2 is what a watch client sees:\n" +
        "the difference is the proxy's streaming delay per event. 3 is what each open watch costs the\n" +
        "proxy in memory and descriptors; 'all cancelled' should fall back near 'before' (a leak otherwise).\n" +
        "Everything shares one machine, so absolute numbers include client and kube-apiserver contention.",
    );
  } finally {
    for (const session of sessions) session.destroy();
    await child?.stop();
    await cp.stop();
  }
}

if (process.argv[2] === "proxy") await runProxyChild();
else await main();
