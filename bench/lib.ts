// What the benchmarks share: timed rounds with CPU accounting (ours and other processes' from
// /proc), percentiles, HTTP/2 sessions and kubectl against the bench's own control plane.
import { readdir, readFile } from "node:fs/promises";
import { type ClientHttp2Session, connect } from "node:http2";
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
