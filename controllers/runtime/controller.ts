import { type Clock, realClock, sleep, whenAborted } from "../../kube/clock.ts";
import type { KubeObject } from "../../kube/resource.ts";
import { discardLogger, type Logger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import type { InformerSource } from "./informer.ts";
import { NotLeaderError } from "./leaderelection.ts";
import { WorkQueue } from "./workqueue.ts";

/** What one sync gets: only the key. State is re-read from informer caches (level-based). */
export interface SyncContext {
  key: string;
  /** Aborted when the controller stops; pass it to requests. */
  signal: AbortSignal;
  /** Bound to `controller` and `key`. */
  log: Logger;
  /** To enqueue other keys of this controller. */
  queue: Pick<WorkQueue, "add" | "addAfter">;
}

export interface SyncResult {
  /** Sync this key again after this long, even if nothing changes (e.g. before a cert expires). */
  requeueAfterMs?: number;
}

export type Syncer = (ctx: SyncContext) => Promise<SyncResult | undefined> | SyncResult | undefined;

/**
 * An error that retrying cannot fix (a malformed spec, a missing input the user must add):
 * logged and counted, never retried. The next change to a watched object syncs the key again.
 */
export class TerminalError extends Error {
  override readonly name = "TerminalError";
}

/** Whether `err` or any error in its `cause` chain is a TerminalError. */
export function isTerminal(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof TerminalError) return true;
  }
  return false;
}

/**
 * Throw (or reject with) this to be synced again with rate-limited backoff without an error
 * being logged, e.g. while waiting for something another actor is expected to do.
 */
export const SyntheticRequeue: Error = Object.freeze(new Error("synthetic requeue request"));

export type InformerEvent<T extends KubeObject = KubeObject> =
  | { type: "add"; obj: T }
  | { type: "update"; obj: T; old: T }
  | { type: "delete"; obj: T };

/**
 * Maps an informer event to the key(s) of the object(s) the controller reconciles: its own key,
 * an owner's key, or a singleton. Returning `undefined` or `[]` drops the event.
 */
export type Filter<T extends KubeObject = KubeObject> = (
  event: InformerEvent<T>,
) => string | readonly string[] | undefined;

export interface ControllerOptions {
  name: string;
  sync: Syncer;
  workers?: number;
  /** Give up on a key after this many consecutive failures; default: never (like upstream). */
  maxRetries?: number;
  clock?: Clock;
  log?: Logger;
  metrics?: Metrics;
  /** Per-key retry backoff; see WorkQueueOptions. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** How often to log that informers have still not synced. Default 60 s. */
  syncWarnIntervalMs?: number;
}

function controllerMetrics(metrics: Metrics) {
  const labelNames = ["controller"] as const;
  return {
    syncs: metrics.counter({
      name: "controller_syncs_total",
      help: "Syncs by result: success, requeue_after, requeue, not_leader, error, terminal, dropped.",
      labelNames: ["controller", "result"] as const,
    }),
    duration: metrics.histogram({
      name: "controller_sync_duration_seconds",
      help: "Time spent in one sync.",
      labelNames,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    }),
    depth: metrics.gauge({ name: "controller_queue_depth", help: "Keys waiting for a worker.", labelNames }),
    retries: metrics.counter({
      name: "controller_retries_total",
      help: "Keys requeued with backoff after a failed sync.",
      labelNames,
    }),
    // client-go's workqueue metrics, labelled by queue name (the controller's), with its buckets.
    queue: {
      depth: metrics.gauge({
        name: "workqueue_depth",
        help: "Current depth of workqueue",
        labelNames: queueLabel,
        standard: true,
      }),
      adds: metrics.counter({
        name: "workqueue_adds_total",
        help: "Total number of adds handled by workqueue",
        labelNames: queueLabel,
        standard: true,
      }),
      waited: metrics.histogram({
        name: "workqueue_queue_duration_seconds",
        help: "How long in seconds an item stays in workqueue before being requested.",
        labelNames: queueLabel,
        buckets: clientGoQueueBuckets,
        standard: true,
      }),
      worked: metrics.histogram({
        name: "workqueue_work_duration_seconds",
        help: "How long in seconds processing an item from workqueue takes.",
        labelNames: queueLabel,
        buckets: clientGoQueueBuckets,
        standard: true,
      }),
      retries: metrics.counter({
        name: "workqueue_retries_total",
        help: "Total number of retries handled by workqueue",
        labelNames: queueLabel,
        standard: true,
      }),
    },
  };
}

const queueLabel = ["name"] as const;
/** client-go's prometheus.ExponentialBuckets(10e-9, 10, 10): 10 ns to 10 s. */
const clientGoQueueBuckets = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10];

/**
 * Pinniped controllerlib's shape: informers feed keys through filters into a de-duplicating,
 * rate-limited queue; workers hand each key to the syncer once the caches have synced.
 */
export class Controller {
  readonly name: string;
  readonly #sync: Syncer;
  readonly #workers: number;
  readonly #maxRetries: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: ReturnType<typeof controllerMetrics>;
  readonly #syncWarnIntervalMs: number;
  readonly #queue: WorkQueue;
  readonly #informers: InformerSource<KubeObject>[] = [];
  readonly #unsubscribes: (() => void)[] = [];
  readonly #initialKeys: string[] = [];
  /** Keys known by the time the caches synced that have not had a sync attempt yet. */
  readonly #firstPass = new Set<string>();
  #cachesSynced = false;
  #started = false;

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.#sync = options.sync;
    this.#workers = Math.max(1, options.workers ?? 1);
    this.#maxRetries = options.maxRetries ?? Number.POSITIVE_INFINITY;
    this.#clock = options.clock ?? realClock;
    this.#log = (options.log ?? discardLogger()).child({ controller: options.name });
    this.#metrics = controllerMetrics(options.metrics ?? new Metrics());
    this.#syncWarnIntervalMs = options.syncWarnIntervalMs ?? 60_000;
    this.#queue = new WorkQueue({
      clock: this.#clock,
      baseDelayMs: options.baseDelayMs,
      maxDelayMs: options.maxDelayMs,
      onDepth: (depth) => {
        this.#metrics.depth.set({ controller: this.name }, depth);
        this.#metrics.queue.depth.set({ name: this.name }, depth);
      },
      observer: {
        added: () => this.#metrics.queue.adds.inc({ name: this.name }),
        waited: (seconds) => this.#metrics.queue.waited.observe({ name: this.name }, seconds),
        worked: (seconds) => this.#metrics.queue.worked.observe({ name: this.name }, seconds),
        retried: () => this.#metrics.queue.retries.inc({ name: this.name }),
      },
    });
    // Keys handed straight to an idle worker never change the depth, so every series starts at 0
    // (as client-go's do): a dashboard sees each queue from the start.
    this.#metrics.queue.depth.set({ name: this.name }, 0);
    this.#metrics.queue.adds.inc({ name: this.name }, 0);
    this.#metrics.queue.retries.inc({ name: this.name }, 0);
  }

  /** Subscribes to an informer; its events become keys through `filter`. */
  withInformer<T extends KubeObject>(informer: InformerSource<T>, filter: Filter<T>): this {
    const route = (event: InformerEvent<T>) => {
      let keys: string | readonly string[] | undefined;
      try {
        keys = filter(event);
      } catch (error) {
        this.#log.error("event filter failed; event dropped", {
          informer: informer.name,
          event: event.type,
          error,
        });
        return;
      }
      for (const key of typeof keys === "string" ? [keys] : (keys ?? [])) this.#add(key);
    };
    this.#unsubscribes.push(
      informer.addHandler({
        add: (obj) => route({ type: "add", obj }),
        update: (old, obj) => route({ type: "update", obj, old }),
        delete: (obj) => route({ type: "delete", obj }),
      }),
    );
    this.#informers.push(informer as unknown as InformerSource<KubeObject>);
    return this;
  }

  /** Syncs `key` once at start, whether or not any event arrives ("sync the world"). */
  withInitialEvent(key: string): this {
    this.#initialKeys.push(key);
    return this;
  }

  /** Queues a key from outside the informers (a holder changed, a timer fired). */
  enqueue(key: string): void {
    this.#add(key);
  }

  #add(key: string): void {
    if (!this.#cachesSynced) this.#firstPass.add(key);
    this.#queue.add(key);
  }

  /**
   * True once the caches have synced and every key known by then (the objects listed, the
   * initial events) has been synced once, whatever the outcome: what the informers held at start
   * has been loaded where it could be (readiness waits for this).
   */
  firstPassDone(): boolean {
    return this.#cachesSynced && this.#firstPass.size === 0;
  }

  /**
   * Retries at once every key whose last sync failed, e.g. when this replica became the leader
   * and the writes that were refused before can now succeed.
   */
  retryFailedNow(): void {
    this.#queue.retryFailedNow();
  }

  /**
   * Waits for every informer to sync, then processes keys with the workers until `signal`
   * aborts; resolves after in-flight syncs finished. A controller runs once.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#started) throw new Error(`controller ${this.name} was already started`);
    this.#started = true;
    try {
      if (await this.#waitForCaches(signal)) {
        for (const key of this.#initialKeys) this.#add(key);
        this.#cachesSynced = true;
        this.#log.info("controller started", { workers: this.#workers });
        const workers = Array.from({ length: this.#workers }, () => this.#work(signal));
        await whenAborted(signal);
        await this.#queue.shutDown();
        await Promise.all(workers);
      }
    } finally {
      await this.#queue.shutDown();
      for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
      this.#log.info("controller stopped");
    }
  }

  async #waitForCaches(signal: AbortSignal): Promise<boolean> {
    const waiting = () => this.#informers.filter((i) => !i.hasSynced());
    if (waiting().length === 0) return !signal.aborted;
    const synced = new AbortController();
    const warnings = (async () => {
      const until = AbortSignal.any([signal, synced.signal]);
      while (await sleep(this.#clock, this.#syncWarnIntervalMs, until)) {
        this.#log.warn("still waiting for informer caches to sync", {
          waiting: waiting().map((i) => i.name),
        });
      }
    })();
    try {
      await Promise.all(waiting().map((i) => i.waitForSync(signal)));
      return !signal.aborted;
    } catch {
      return false;
    } finally {
      synced.abort();
      await warnings;
    }
  }

  async #work(signal: AbortSignal): Promise<void> {
    for (let key = await this.#queue.get(); key !== undefined; key = await this.#queue.get()) {
      try {
        await this.#process(key, signal);
      } finally {
        this.#firstPass.delete(key);
        this.#queue.done(key);
      }
    }
  }

  async #process(key: string, signal: AbortSignal): Promise<void> {
    const log = this.#log.child({ key });
    const labels = { controller: this.name };
    const started = performance.now();
    let result: SyncResult | undefined;
    let failure: unknown;
    let failed = false;
    try {
      // Through a promise so that a syncer that throws synchronously is handled the same way.
      result = await Promise.resolve().then(() => this.#sync({ key, signal, log, queue: this.#queue }));
    } catch (err) {
      failed = true;
      failure = err;
    }
    this.#metrics.duration.observe(labels, (performance.now() - started) / 1000);

    if (!failed) {
      this.#queue.forget(key);
      const after = result?.requeueAfterMs;
      if (after !== undefined && after > 0) {
        this.#queue.addAfter(key, after);
        this.#count("requeue_after");
      } else {
        this.#count("success");
      }
      log.debug("synced", after ? { requeueAfterMs: after } : undefined);
    } else if (failure === SyntheticRequeue) {
      this.#queue.addRateLimited(key);
      this.#count("requeue");
      log.debug("requeued", { retries: this.#queue.numRequeues(key) });
    } else if (failure instanceof NotLeaderError) {
      this.#queue.addRateLimited(key);
      this.#count("not_leader");
      log.debug("not the leader; will retry", { retries: this.#queue.numRequeues(key) });
    } else if (isTerminal(failure)) {
      this.#queue.forget(key);
      this.#count("terminal");
      log.error("sync failed; not retrying", { error: failure });
    } else if (signal.aborted) {
      this.#count("error");
      log.debug("sync failed while stopping", { error: failure });
    } else if (this.#queue.numRequeues(key) < this.#maxRetries) {
      this.#queue.addRateLimited(key);
      this.#count("error");
      this.#metrics.retries.inc(labels);
      log.error("sync failed; will retry", { error: failure, retries: this.#queue.numRequeues(key) });
    } else {
      this.#queue.forget(key);
      this.#count("dropped");
      log.error("sync failed; giving up on the key after max retries", {
        error: failure,
        maxRetries: this.#maxRetries,
      });
    }
  }

  #count(result: string): void {
    this.#metrics.syncs.inc({ controller: this.name, result });
  }
}
