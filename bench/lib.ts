// What the benchmarks share: timed rounds with CPU accounting (ours and other processes' from
// /proc), percentiles, HTTP/2 sessions and kubectl against the bench's own control plane, and the
// server half of a bench in a child process.
import { type ChildProcess, fork } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { type ClientHttp2Session, type ClientHttp2Stream, connect } from "node:http2";
import type { ControlPlane } from "../hack/controlplane.ts";
import { runKubectl } from "../test/harness/cluster.ts";

/** utime + stime of a process, from /proc (Linux); undefined elsewhere or once it is gone. */
export async function processCPUSeconds(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const clockTicks = 100; // USER_HZ on every mainstream Linux build
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return undefined;
  }
}

/** Our child kube-apiserver (SupervisedProcess execs it under setpriv, so its parent is us). */
export async function findApiserverPid(): Promise<number | undefined> {
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (name === "kube-apiserver" && ppid === process.pid) return Number(entry);
  }
  return undefined;
}

/** Resident memory of a process from /proc (Linux), in bytes; undefined once it is gone. */
export interface ProcessMemory {
  /** VmRSS: what `ps` and most dashboards show. */
  rss: number;
  /** RssAnon: the part not backed by files (heap, stacks, buffers): what a container's cgroup is charged for beyond the page cache. */
  anon: number;
  /** VmHWM: the highest RSS since the process started or its counter was last reset. */
  peak: number;
}

export async function processMemory(pid: number | undefined): Promise<ProcessMemory | undefined> {
  if (pid === undefined) return undefined;
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  const rss = kib("VmRSS");
  return Number.isNaN(rss)
    ? undefined
    : { rss: rss * 1024, anon: kib("RssAnon") * 1024, peak: kib("VmHWM") * 1024 };
}

export async function processRSS(pid: number | undefined): Promise<number | undefined> {
  return (await processMemory(pid))?.rss;
}

export interface Tally {
  count: number;
  seconds: number;
  /** This process's CPU time (the bench's clients, and whatever else runs in it). */
  cpuSeconds: number;
  /** CPU time of the other processes a round watched, by the name it gave them. */
  otherCPUSeconds: Record<string, number>;
  latenciesMs: number[];
}

export const newTally = (): Tally => ({
  count: 0,
  seconds: 0,
  cpuSeconds: 0,
  otherCPUSeconds: {},
  latenciesMs: [],
});

/**
 * One round: `concurrency` workers issue requests back to back for `ms`, each timed; the CPU
 * time of this process and of the `watched` processes (name → pid) over the round is added up.
 */
export async function round(
  op: () => Promise<unknown>,
  concurrency: number,
  ms: number,
  tally: Tally,
  watched: Record<string, number | undefined> = {},
): Promise<void> {
  const names = Object.keys(watched);
  const cpuOf = () => Promise.all(names.map((name) => processCPUSeconds(watched[name])));
  const before = await cpuOf();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const end = started + ms;
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await op();
      tally.latenciesMs.push(performance.now() - t0);
      tally.count++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  tally.seconds += (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  tally.cpuSeconds += (used.user + used.system) / 1e6;
  const after = await cpuOf();
  for (const [i, name] of names.entries()) {
    const [b, a] = [before[i], after[i]];
    if (b !== undefined && a !== undefined)
      tally.otherCPUSeconds[name] = (tally.otherCPUSeconds[name] ?? 0) + a - b;
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A connected HTTP/2 session; its later errors go to `log` (its streams fail the bench anyway). */
export function openSession(
  url: string,
  tls: { ca: string; cert: string; key: string },
  log: (message: string) => void,
): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(url, { ...tls, minVersion: "TLSv1.3" });
    session.once("connect", () => {
      session.off("error", reject);
      session.on("error", (err) => log(`HTTP/2 session to ${url}: ${err.message}`));
      resolve(session);
    });
    session.once("error", reject);
  });
}

/** kubectl as the control plane's admin; throws with its stderr when it fails. */
export async function kubectl(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const res = await runKubectl(cp.binDir, cp.kubeconfigPath, args, input === undefined ? {} : { input });
  if (res.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${res.stderr}`);
  return res.stdout;
}

export function request(
  session: ClientHttp2Session,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": method,
      ":path": path,
      accept: "application/json",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    });
    let status = 0;
    let text = "";
    req.setEncoding("utf8");
    req.on("response", (h) => {
      status = Number(h[":status"]);
    });
    req.on("data", (chunk: string) => {
      text += chunk;
    });
    req.on("end", () => resolve({ status, text }));
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

export async function expectOK(session: ClientHttp2Session, method: string, path: string, body?: unknown) {
  const res = await request(session, method, path, body);
  if (res.status < 200 || res.status > 299)
    throw new Error(`${method} ${path} answered ${res.status}: ${res.text.slice(0, 400)}`);
  return JSON.parse(res.text) as { metadata?: { resourceVersion?: string } };
}

export interface WatchEvent {
  type: string;
  object: { metadata?: { name?: string } };
}

/** A watch; `opened` resolves on 200 headers, rejects on any other answer or a stream error. */
export function openWatch(
  session: ClientHttp2Session,
  path: string,
  onEvent: (event: WatchEvent, atMs: number) => void,
): { stream: ClientHttp2Stream; opened: Promise<void> } {
  const stream = session.request({ ":method": "GET", ":path": path, accept: "application/json" });
  stream.end();
  stream.setEncoding("utf8");
  const opened = new Promise<void>((resolve, reject) => {
    stream.once("response", (h) => {
      const status = Number(h[":status"]);
      if (status === 200) {
        resolve();
        return;
      }
      let text = "";
      stream.on("data", (chunk: string) => {
        text += chunk;
      });
      stream.on("end", () => reject(new Error(`watch answered ${status}: ${text.slice(0, 400)}`)));
    });
    stream.once("error", reject);
    stream.once("close", () => reject(new Error(`watch stream closed (code ${stream.rstCode})`)));
  });
  // Errors after the watch opened are counted by whoever notices missing events.
  opened.catch(() => {});
  let pending = "";
  stream.on("data", (chunk: string) => {
    const at = performance.now();
    pending += chunk;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.trim() !== "") onEvent(JSON.parse(line) as WatchEvent, at);
    }
  });
  return { stream, opened };
}

/**
 * A bench's server half in a child process (the bench's own file again, with `role` as its
 * argument), so that its CPU and memory are its alone; asked one question at a time over IPC.
 */
export class BenchChild<To extends { type: string }, From> {
  readonly process: ChildProcess;
  readonly #role: string;
  #waiting: ((message: From) => void) | undefined;

  constructor(file: string, role: string, execArgv: string[] = process.execArgv) {
    this.#role = role;
    this.process = fork(file, [role], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.process.on("message", (message: From) => {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.(message);
    });
  }

  /** One question at a time: the bench never asks a second before the first was answered. */
  ask(message: To): Promise<From> {
    return new Promise((resolve, reject) => {
      const exited = (code: number | null) => reject(new Error(`${this.#role} child exited (${code})`));
      this.#waiting = (answer) => {
        this.process.off("exit", exited);
        resolve(answer);
      };
      this.process.once("exit", exited);
      this.process.send(message);
    });
  }

  /** Asks the child to stop (a `{ type: "stop" }` message), and kills it if it has not in 5 s. */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    this.process.send({ type: "stop" });
    const timer = setTimeout(() => this.process.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}
