import { type Clock, realClock, type Timer } from "../../kube/clock.ts";

export interface WorkQueueOptions {
  clock?: Clock;
  /** First rate-limited delay for a key; doubles with each further failure. Default 5 ms. */
  baseDelayMs?: number;
  /**
   * Cap of the per-key delay. Default 180 s: upstream caps at 1000 s but also resyncs every
   * informer every 3 minutes, so in practice it retries a failing key at least that often.
   */
  maxDelayMs?: number;
  /** Called with the number of keys waiting to be handed out whenever it changes. */
  onDepth?: (depth: number) => void;
  /** What client-go's workqueue metrics count; see controller.ts. */
  observer?: QueueObserver;
}

/** client-go's workqueue metrics provider, in seconds. */
export interface QueueObserver {
  /** A key was added that was not already waiting. */
  added(): void;
  /** A key was handed out this long after it was added. */
  waited(seconds: number): void;
  /** A key was done this long after it was handed out. */
  worked(seconds: number): void;
  /** A key was added with its backoff after a failure. */
  retried(): void;
}

const noObserver: QueueObserver = { added() {}, waited() {}, worked() {}, retried() {} };

/**
 * A queue of string keys with client-go's workqueue guarantees:
 *  - a key added many times while it waits is handed out once;
 *  - a key is never handed to two workers at once; one added while it is being processed is
 *    handed out again (once) after `done(key)`;
 *  - `addAfter` delays a key (the earliest pending delay wins), `addRateLimited` delays it by a
 *    per-key exponential backoff that `forget` resets.
 */
export class WorkQueue {
  readonly #clock: Clock;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #onDepth: (depth: number) => void;
  readonly #observer: QueueObserver;
  /** When each waiting key was first added, and when each key in progress was handed out. */
  readonly #addedAt = new Map<string, number>();
  readonly #startedAt = new Map<string, number>();

  readonly #queue: string[] = [];
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #delayed = new Map<string, { readyAt: number; timer: Timer }>();
  readonly #failures = new Map<string, number>();
  readonly #getters: ((key: string | undefined) => void)[] = [];
  #shuttingDown = false;
  #drained: (() => void) | undefined;

  constructor(options: WorkQueueOptions = {}) {
    this.#clock = options.clock ?? realClock;
    this.#baseDelayMs = options.baseDelayMs ?? 5;
    this.#maxDelayMs = options.maxDelayMs ?? 180_000;
    this.#onDepth = options.onDepth ?? (() => {});
    this.#observer = options.observer ?? noObserver;
  }

  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    this.#observer.added();
    if (!this.#addedAt.has(key)) this.#addedAt.set(key, this.#clock.now());
    if (this.#processing.has(key)) return;
    this.#enqueue(key);
  }

  addAfter(key: string, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.#clock.now() + delayMs;
    const pending = this.#delayed.get(key);
    if (pending && pending.readyAt <= readyAt) return;
    pending?.timer.cancel();
    const timer = this.#clock.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.#delayed.set(key, { readyAt, timer });
  }

  /** Adds the key after its backoff: base · 2^failures, capped; each call counts a failure. */
  addRateLimited(key: string): void {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    this.#observer.retried();
    this.addAfter(key, this.backoffFor(failures));
  }

  /** The delay `addRateLimited` uses after `failures` earlier failures. */
  backoffFor(failures: number): number {
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** Math.min(failures, 64));
  }

  /** Clears the key's failure count (call after it was processed successfully). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Adds every key that has failures on record now, skipping its backoff (its count stays). */
  retryFailedNow(): void {
    for (const key of this.#failures.keys()) this.add(key);
  }

  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Keys waiting to be handed out (not counting delayed or in-flight ones). */
  len(): number {
    return this.#queue.length;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** The next key; the caller must call `done(key)` when finished. `undefined` once shut down. */
  get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    const key = this.#take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  done(key: string): void {
    const startedAt = this.#startedAt.get(key);
    if (startedAt !== undefined) {
      this.#startedAt.delete(key);
      this.#observer.worked((this.#clock.now() - startedAt) / 1000);
    }
    this.#processing.delete(key);
    if (this.#shuttingDown) {
      if (this.#processing.size === 0) this.#drained?.();
      return;
    }
    if (this.#dirty.has(key)) this.#enqueue(key);
  }

  /**
   * Stops handing out keys (waiting and delayed keys are dropped) and resolves once every key
   * already handed out is done.
   */
  shutDown(): Promise<void> {
    if (!this.#shuttingDown) {
      this.#shuttingDown = true;
      for (const { timer } of this.#delayed.values()) timer.cancel();
      this.#delayed.clear();
      this.#queue.length = 0;
      this.#dirty.clear();
      this.#addedAt.clear();
      this.#onDepth(0);
      for (const resolve of this.#getters.splice(0)) resolve(undefined);
    }
    if (this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#drained;
      this.#drained = () => {
        previous?.();
        resolve();
      };
    });
  }

  #enqueue(key: string): void {
    const getter = this.#getters.shift();
    if (getter) {
      this.#dirty.delete(key);
      this.#handOut(key);
      getter(key);
      return;
    }
    this.#queue.push(key);
    this.#onDepth(this.#queue.length);
  }

  #take(): string | undefined {
    const key = this.#queue.shift();
    if (key === undefined) return undefined;
    this.#dirty.delete(key);
    this.#handOut(key);
    this.#onDepth(this.#queue.length);
    return key;
  }

  #handOut(key: string): void {
    this.#processing.add(key);
    const now = this.#clock.now();
    const addedAt = this.#addedAt.get(key);
    this.#addedAt.delete(key);
    if (addedAt !== undefined) this.#observer.waited((now - addedAt) / 1000);
    this.#startedAt.set(key, now);
  }
}
