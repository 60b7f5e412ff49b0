import { type Clock, realClock, sleep, type Timer } from "../../kube/clock.ts";
import {
  cacheable,
  collectionPath,
  groupResource,
  type KubeObject,
  keyFor,
  keyOf,
  type ResourceRef,
} from "../../kube/resource.ts";
import type { KubeStatus, Query } from "../../kube/rest.ts";
import { discardLogger, type Logger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { Backoff } from "./backoff.ts";
import {
  classifyFailure,
  DecodeError,
  InactivityError,
  type InformerTransport,
  type ListPage,
  ShortWatchError,
  type WatchEvent,
  watchErrorToApiError,
} from "./listwatch.ts";

/**
 * Callbacks for cache changes. They run synchronously after the cache has changed and should
 * only enqueue keys. For a deletion found by relisting, `delete` gets the last state seen.
 * A resync calls `update(obj, obj)` with the same object twice.
 */
export interface EventHandler<T extends KubeObject = KubeObject> {
  add?(obj: T): void;
  update?(oldObj: T, newObj: T): void;
  delete?(obj: T): void;
}

/** Read access to an informer's cache. Returned objects are deeply frozen: copy before changing. */
export interface Lister<T extends KubeObject = KubeObject> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): T[];
}

/** What a controller needs from an informer. */
export interface InformerSource<T extends KubeObject = KubeObject> extends Lister<T> {
  readonly name: string;
  /** Existing objects are replayed to a handler added after the first sync. Returns an unsubscribe. */
  addHandler(handler: EventHandler<T>): () => void;
  hasSynced(): boolean;
  /** Resolves once the first list is in the cache; rejects with the signal's reason on abort. */
  waitForSync(signal?: AbortSignal): Promise<void>;
}

export interface InformerTiming {
  /** Page size of list requests. */
  pageSize?: number;
  /** Server-side watch timeout; each watch asks for a random value in [t, 2t). Default 300 s. */
  watchTimeoutSeconds?: number;
  /**
   * A watch that delivers no bytes for this long is aborted and re-established. Default 180 s:
   * kube-apiserver sends a bookmark about once a minute on a quiet watch, so this only trips on
   * a connection that died without closing.
   */
  inactivityTimeoutMs?: number;
  /** Retry backoff after failures: 800 ms doubling to 30 s (like client-go's reflector). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** A watch that stayed healthy this long resets the backoff. Default 120 s. */
  backoffResetAfterMs?: number;
  /** Redeliver every cached object as `update(obj, obj)` this often; 0 (default) never. */
  resyncPeriodMs?: number;
}

export interface InformerOptions extends InformerTiming {
  resource: ResourceRef;
  transport: InformerTransport;
  clock?: Clock;
  log?: Logger;
  metrics?: Metrics;
  random?: () => number;
  /** Label value and log field; defaults to `group/resource` plus `@namespace` when namespaced. */
  name?: string;
}

/** A watch shorter than this that delivered nothing counts as a failure (see ShortWatchError). */
const SHORT_WATCH_MS = 1_000;

interface WatchOutcome {
  openedAt: number | undefined;
  events: number;
  error: unknown;
}

function informerMetrics(metrics: Metrics) {
  const labelNames = ["informer"] as const;
  return {
    lists: metrics.counter({ name: "informer_lists_total", help: "Completed list calls.", labelNames }),
    relists: metrics.counter({
      name: "informer_relists_total",
      help: "Lists after the first one (expired resource version or lost watch).",
      labelNames,
    }),
    watches: metrics.counter({
      name: "informer_watches_started_total",
      help: "Watch requests sent.",
      labelNames,
    }),
    watchErrors: metrics.counter({
      name: "informer_watch_errors_total",
      help: "List or watch failures by kind.",
      labelNames: ["informer", "kind"] as const,
    }),
    events: metrics.counter({
      name: "informer_events_total",
      help: "Cache events by type (add, update, delete from watch or relist; bookmark).",
      labelNames: ["informer", "type"] as const,
    }),
    restarts: metrics.counter({
      name: "informer_restarts_total",
      help: "List/watch cycles restarted after a failure.",
      labelNames,
    }),
    synced: metrics.gauge({ name: "informer_synced", help: "1 once the first list is cached.", labelNames }),
  };
}

/**
 * List + watch of one resource into an in-memory cache, that never gives up: every failure
 * (network, HTTP error, stream cut, silent connection, expired resource version) leads to a
 * retry with jittered exponential backoff. Resource versions are opaque strings: compared for
 * equality, never ordered.
 */
export class Informer<T extends KubeObject = KubeObject> implements InformerSource<T> {
  readonly name: string;
  readonly resource: ResourceRef;
  readonly #transport: InformerTransport;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #random: () => number;
  readonly #metrics: ReturnType<typeof informerMetrics>;
  readonly #path: string;
  readonly #timing: Required<InformerTiming>;

  #items = new Map<string, T>();
  #resourceVersion: string | undefined;
  #listed = false;
  #watched = false;
  #synced = false;
  #syncWaiters = new Set<() => void>();
  readonly #handlers = new Set<EventHandler<T>>();
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #resyncTimer: Timer | undefined;

  constructor(options: InformerOptions) {
    this.resource = options.resource;
    const ns = options.resource.namespace;
    this.name = options.name ?? `${groupResource(options.resource)}${ns ? `@${ns}` : ""}`;
    this.#transport = options.transport;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
    this.#log = (options.log ?? discardLogger()).child({ informer: this.name });
    this.#metrics = informerMetrics(options.metrics ?? new Metrics());
    this.#path = collectionPath(options.resource);
    this.#timing = {
      pageSize: options.pageSize ?? 500,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 300,
      inactivityTimeoutMs: options.inactivityTimeoutMs ?? 180_000,
      backoffInitialMs: options.backoffInitialMs ?? 800,
      backoffMaxMs: options.backoffMaxMs ?? 30_000,
      backoffResetAfterMs: options.backoffResetAfterMs ?? 120_000,
      resyncPeriodMs: options.resyncPeriodMs ?? 0,
    };
  }

  /** Starts listing and watching; calling it again while running does nothing. */
  start(): void {
    if (this.#loop) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#loop = this.#run(abort.signal);
  }

  /** Stops the watch and waits until no request is left running. The cache keeps its content. */
  async stop(): Promise<void> {
    this.#abort?.abort(new Error(`informer ${this.name} stopped`));
    this.#resyncTimer?.cancel();
    this.#resyncTimer = undefined;
    await this.#loop;
    this.#loop = undefined;
    this.#abort = undefined;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#items.get(keyFor(name, namespace));
  }

  list(namespace?: string): T[] {
    const all = [...this.#items.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  /** The resource version the next watch starts from (for diagnostics and tests). */
  lastResourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#syncWaiters.delete(done);
        reject(signal?.reason);
      };
      const done = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      this.#syncWaiters.add(done);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  addHandler(handler: EventHandler<T>): () => void {
    this.#handlers.add(handler);
    if (this.#synced) for (const obj of this.#items.values()) this.#call(handler, "add", obj);
    return () => this.#handlers.delete(handler);
  }

  async #run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({
      initialMs: this.#timing.backoffInitialMs,
      maxMs: this.#timing.backoffMaxMs,
      random: this.#random,
    });
    let needList = true;
    let failed = false;
    while (!signal.aborted) {
      let outcome: WatchOutcome = { openedAt: undefined, events: 0, error: undefined };
      try {
        if (needList) {
          await this.#relist(signal);
          needList = false;
        }
        outcome = await this.#watch(signal, failed);
      } catch (err) {
        outcome.error = err;
      }
      if (signal.aborted) break;

      const now = this.#clock.now();
      const healthy =
        outcome.openedAt !== undefined && now - outcome.openedAt >= this.#timing.backoffResetAfterMs;
      if (healthy) backoff.reset();
      let error = outcome.error;
      if (error === undefined) {
        const openedFor = outcome.openedAt === undefined ? 0 : now - outcome.openedAt;
        if (outcome.events > 0 || openedFor >= SHORT_WATCH_MS) {
          this.#log.debug("watch ended by the server; rewatching", {
            resourceVersion: this.#resourceVersion,
          });
          failed = false;
          continue;
        }
        error = new ShortWatchError("watch closed by the server at once without any event");
      }

      failed = true;
      const kind = classifyFailure(error);
      this.#metrics.watchErrors.inc({ informer: this.name, kind });
      this.#metrics.restarts.inc({ informer: this.name });
      // The first expiry in a row relists at once, as client-go does; repeated ones back off.
      const immediate = kind === "gone" && backoff.attempts === 0;
      const backoffDelay = backoff.next();
      const delay = immediate ? 0 : backoffDelay;
      if (kind === "gone") {
        needList = true;
        this.#log.info("resource version expired; relisting", { delayMs: delay, error });
      } else {
        this.#log.warn("list/watch failed; retrying", {
          kind,
          delayMs: delay,
          attempt: backoff.attempts,
          error,
        });
      }
      if (delay > 0) await sleep(this.#clock, delay, signal);
    }
  }

  async #relist(signal: AbortSignal): Promise<void> {
    const items: KubeObject[] = [];
    let page: ListPage;
    let cont: string | undefined;
    do {
      const query: Query = {
        labelSelector: this.resource.labelSelector,
        fieldSelector: this.resource.fieldSelector,
        limit: this.#timing.pageSize,
        continue: cont,
      };
      page = await this.#transport.list(this.#path, query, signal);
      if (!Array.isArray(page?.items)) throw new DecodeError("list response has no items");
      // List items come without apiVersion and kind; watch events carry them.
      const typeMeta: KubeObject = {};
      if (page.apiVersion) typeMeta.apiVersion = page.apiVersion;
      if (page.kind) typeMeta.kind = page.kind.replace(/List$/, "");
      for (const item of page.items) items.push({ ...typeMeta, ...item });
      cont = page.metadata?.continue || undefined;
    } while (cont);
    this.#metrics.lists.inc({ informer: this.name });
    if (this.#listed) this.#metrics.relists.inc({ informer: this.name });
    this.#replace(items as T[], page.metadata?.resourceVersion);
    this.#listed = true;
  }

  /** Swaps in a fresh list and tells handlers what changed since the previous one. */
  #replace(items: T[], resourceVersion: string | undefined): void {
    const previous = this.#items;
    const next = new Map<string, T>();
    for (const item of items) next.set(keyOf(item), cacheable(item));
    this.#items = next;
    this.#resourceVersion = resourceVersion;
    const firstSync = !this.#synced;
    if (firstSync) this.#markSynced();
    for (const [key, obj] of next) {
      const old = previous.get(key);
      if (!old) this.#emit("add", obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        this.#emit("update", obj, old);
    }
    for (const [key, old] of previous) if (!next.has(key)) this.#emit("delete", old);
    this.#log.info(firstSync ? "informer synced" : "relisted", {
      objects: next.size,
      resourceVersion,
    });
  }

  #markSynced(): void {
    this.#synced = true;
    this.#metrics.synced.set({ informer: this.name }, 1);
    for (const done of this.#syncWaiters) done();
    this.#syncWaiters.clear();
    this.#scheduleResync();
  }

  #scheduleResync(): void {
    const period = this.#timing.resyncPeriodMs;
    if (period <= 0 || !this.#abort || this.#abort.signal.aborted) return;
    this.#resyncTimer = this.#clock.setTimeout(() => {
      for (const obj of this.#items.values())
        for (const h of this.#handlers) this.#call(h, "update", obj, obj);
      this.#scheduleResync();
    }, period);
  }

  async #watch(signal: AbortSignal, reconnecting: boolean): Promise<WatchOutcome> {
    const abort = new AbortController();
    const stop = () => abort.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    const outcome: WatchOutcome = { openedAt: undefined, events: 0, error: undefined };
    const fail = (err: unknown) => {
      outcome.error ??= err;
      abort.abort(err);
    };

    const inactivityMs = this.#timing.inactivityTimeoutMs;
    let lastActivity = this.#clock.now();
    let watchdog: Timer;
    const arm = (dueAt: number) => {
      watchdog = this.#clock.setTimeout(() => {
        if (this.#clock.now() - lastActivity >= inactivityMs) {
          fail(new InactivityError(`no bytes on the watch for ${inactivityMs} ms`));
        } else {
          arm(lastActivity + inactivityMs);
        }
      }, dueAt - this.#clock.now());
    };
    arm(lastActivity + inactivityMs);

    const timeoutSeconds = Math.floor(this.#timing.watchTimeoutSeconds * (1 + this.#random()));
    const query: Query = {
      labelSelector: this.resource.labelSelector,
      fieldSelector: this.resource.fieldSelector,
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds,
    };
    this.#metrics.watches.inc({ informer: this.name });
    this.#log.debug("watch starting", { resourceVersion: this.#resourceVersion, timeoutSeconds });
    try {
      await this.#transport.watch(this.#path, query, abort.signal, {
        open: () => {
          outcome.openedAt = this.#clock.now();
          const fields = { resourceVersion: this.#resourceVersion };
          if (reconnecting) this.#log.info("watch reconnected", fields);
          else if (!this.#watched) this.#log.info("watch connected", fields);
          else this.#log.debug("watch restarted", fields);
          this.#watched = true;
        },
        activity: () => {
          lastActivity = this.#clock.now();
        },
        event: (event) => {
          if (abort.signal.aborted) return;
          try {
            this.#apply(event);
            outcome.events++;
          } catch (err) {
            fail(err);
          }
        },
      });
    } catch (err) {
      outcome.error ??= err;
    } finally {
      watchdog!.cancel();
      signal.removeEventListener("abort", stop);
    }
    return outcome;
  }

  #apply(event: WatchEvent): void {
    if (event.type === "ERROR") throw watchErrorToApiError(event.object as KubeStatus);
    const obj = event.object as T;
    const rv = obj.metadata?.resourceVersion;
    if (event.type === "BOOKMARK") {
      if (rv) this.#resourceVersion = rv;
      this.#metrics.events.inc({ informer: this.name, type: "bookmark" });
      return;
    }
    if (!obj.metadata?.name) throw new DecodeError(`${event.type} event without metadata.name`);
    const key = keyOf(obj);
    const old = this.#items.get(key);
    if (event.type === "DELETED") {
      this.#items.delete(key);
      this.#resourceVersion = rv ?? this.#resourceVersion;
      this.#emit("delete", cacheable(obj));
      return;
    }
    if (event.type !== "ADDED" && event.type !== "MODIFIED") {
      throw new DecodeError(`unknown watch event type ${JSON.stringify(event.type)}`);
    }
    this.#items.set(key, cacheable(obj));
    this.#resourceVersion = rv ?? this.#resourceVersion;
    if (old) this.#emit("update", obj, old);
    else this.#emit("add", obj);
  }

  #emit(type: "add" | "update" | "delete", obj: T, old?: T): void {
    this.#metrics.events.inc({ informer: this.name, type });
    for (const handler of this.#handlers) this.#call(handler, type, obj, old);
  }

  #call(handler: EventHandler<T>, type: "add" | "update" | "delete", obj: T, old?: T): void {
    try {
      if (type === "add") handler.add?.(obj);
      else if (type === "update") handler.update?.(old ?? obj, obj);
      else handler.delete?.(obj);
    } catch (error) {
      this.#log.error("event handler failed", { event: type, object: keyOf(obj), error });
    }
  }
}
