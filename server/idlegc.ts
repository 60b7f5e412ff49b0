// Gives the memory a load grew back once the load has stopped. V8 collects only when it allocates,
// so after a login wave the heap it grew to stays committed for as long as the replica idles
// (README "Performance": RSS stayed at the load's peak for the 60 s the bench watched). A full
// collection on an idle event loop costs tens of milliseconds that no request is waiting for.
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export interface IdleCollectorOptions {
  /** How often the event loop's utilization is checked; default 10 s. */
  intervalMs?: number;
  /** Below this share of busy time over an interval the process counts as idle; default 0.05. */
  idleUtilization?: number;
  /** Collects only when the heap has grown by this much since the last collection; default 8 MiB. */
  minGrowthBytes?: number;
  /** Replaceable for tests. */
  collect?: () => void;
  heapTotal?: () => number;
  utilization?: () => number;
}

let exposedGC: (() => void) | undefined;

type GC = (options?: { type: "major"; execution: "sync"; flavor: "regular" | "last-resort" }) => void;

/**
 * V8's gc(), which Node exposes only with --expose-gc: the flag is set and gc read from a fresh
 * context. The "last-resort" flavour is the collection V8 runs on a low-memory notification: it
 * compacts and gives the freed pages back to the system. A regular full collection empties the
 * heap but keeps its pages: RSS stayed at 155 MiB after 100 MiB of garbage was collected, and
 * fell to 57 MiB with this flavour (Node 24, the Deployment's V8 flags).
 */
function v8GC(): () => void {
  if (!exposedGC) {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as GC;
    exposedGC = () => gc({ type: "major", execution: "sync", flavor: "last-resort" });
  }
  return exposedGC;
}

/** Event loop utilization since the previous call (0 idle .. 1 always busy). */
function utilizationSinceLast(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(now, last);
    last = now;
    return delta.utilization;
  };
}

/**
 * Every interval, once the loop was idle for a whole interval after the heap grew by at least
 * `minGrowthBytes` since the last collection (or since nothing, at start), runs one full collection. Returns a stop function. The timer is unref'd: it
 * never keeps the process alive.
 */
export function collectWhenIdle(options: IdleCollectorOptions = {}): () => void {
  const intervalMs = options.intervalMs ?? 10_000;
  const idleUtilization = options.idleUtilization ?? 0.05;
  const minGrowthBytes = options.minGrowthBytes ?? 8 * 2 ** 20;
  const collect = options.collect ?? v8GC();
  const heapTotal = options.heapTotal ?? (() => process.memoryUsage().heapTotal);
  const utilization = options.utilization ?? utilizationSinceLast();
  // Zero: the start-up's garbage (the parsed bundle, the informers' first lists) goes at the first
  // idle interval too.
  let baseline = 0;
  const timer = setInterval(() => {
    const busy = utilization();
    const heap = heapTotal();
    // A heap smaller than the baseline is V8 shrinking it on its own: the new, lower floor.
    if (heap < baseline) baseline = heap;
    if (busy >= idleUtilization || heap - baseline < minGrowthBytes) return;
    collect();
    baseline = heapTotal();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
