/**
 * Fakes for unit tests of reconcilers and of the runtime itself: an informer whose content a
 * test sets directly, and a RestClient that records requests and answers from reactors.
 */
import { settle } from "../../kube/clock.ts";
import { deepFreeze, type KubeObject, keyFor, keyOf } from "../../kube/resource.ts";
import { ApiError, type RequestOptions, type RestClient, type StreamOptions } from "../../kube/rest.ts";
import type { EventHandler, InformerSource } from "./informer.ts";
import type { Lease, LeaseClient } from "./lease.ts";

/** An in-memory InformerSource: `upsert`/`remove` change the cache and emit events like an informer. */
export class FakeInformer<T extends KubeObject = KubeObject> implements InformerSource<T> {
  readonly name: string;
  readonly #items = new Map<string, T>();
  readonly #handlers = new Set<EventHandler<T>>();
  #synced: boolean;
  readonly #waiters = new Set<() => void>();

  constructor(options: { name?: string; synced?: boolean; objects?: T[] } = {}) {
    this.name = options.name ?? "fake";
    this.#synced = options.synced ?? true;
    for (const obj of options.objects ?? []) this.#items.set(keyOf(obj), deepFreeze(structuredClone(obj)));
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#items.get(keyFor(name, namespace));
  }

  list(namespace?: string): T[] {
    const all = [...this.#items.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  addHandler(handler: EventHandler<T>): () => void {
    this.#handlers.add(handler);
    if (this.#synced) for (const obj of this.#items.values()) handler.add?.(obj);
    return () => this.#handlers.delete(handler);
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => resolve();
      this.#waiters.add(done);
      signal?.addEventListener(
        "abort",
        () => {
          this.#waiters.delete(done);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }

  markSynced(): void {
    this.#synced = true;
    for (const obj of this.#items.values()) for (const h of this.#handlers) h.add?.(obj);
    for (const done of this.#waiters) done();
    this.#waiters.clear();
  }

  /** Adds or replaces an object (a copy is cached, frozen) and emits add or update. */
  upsert(obj: T): void {
    const copy = deepFreeze(structuredClone(obj));
    const key = keyOf(copy);
    const old = this.#items.get(key);
    this.#items.set(key, copy);
    if (!this.#synced) return;
    for (const h of this.#handlers) {
      if (old) h.update?.(old, copy);
      else h.add?.(copy);
    }
  }

  remove(name: string, namespace?: string): void {
    const key = keyFor(name, namespace);
    const old = this.#items.get(key);
    if (!old) return;
    this.#items.delete(key);
    if (this.#synced) for (const h of this.#handlers) h.delete?.(old);
  }
}

export interface RecordedRequest extends RequestOptions {
  /** The body as the server would see it (parsed JSON). */
  json?: unknown;
}

/** Answers a request, or returns `undefined` to let the next reactor decide. */
export type Reactor = (request: RecordedRequest) => unknown;

/**
 * A RestClient that records every request. Reactors are tried newest first (like client-go's
 * PrependReactor); without a match it answers 200 with an empty object. A reactor throws (or
 * returns a rejected promise) to fail the request, e.g. `throw apiStatusError(409, "Conflict")`.
 */
export class FakeRestClient implements RestClient {
  readonly requests: RecordedRequest[] = [];
  readonly #reactors: Reactor[] = [];

  react(reactor: Reactor): this {
    this.#reactors.unshift(reactor);
    return this;
  }

  async request<T>(options: RequestOptions): Promise<T> {
    const recorded: RecordedRequest = {
      ...options,
      json: typeof options.body === "string" ? JSON.parse(options.body) : structuredClone(options.body),
    };
    this.requests.push(recorded);
    for (const reactor of this.#reactors) {
      const answer = await reactor(recorded);
      if (answer !== undefined) return answer as T;
    }
    return {} as T;
  }

  async stream(_options: StreamOptions): Promise<void> {
    throw new Error("FakeRestClient does not stream; use a fake InformerTransport");
  }

  /** Requests other than GET: what a reconciler wrote. */
  writes(): RecordedRequest[] {
    return this.requests.filter((r) => r.method !== "GET");
  }
}

/**
 * One Lease in memory with the API server's optimistic concurrency (409 on a stale
 * resourceVersion). `failing` makes every call fail with a 500, `hanging` never answer.
 */
export class FakeLeaseStore {
  lease: Lease | undefined;
  #rv = 0;
  failing = false;
  hanging = false;
  writes = 0;

  client(namespace = "ns", name = "lease"): LeaseClient {
    const call = async <T>(fn: () => T): Promise<T> => {
      await Promise.resolve();
      if (this.hanging) return new Promise<T>(() => {});
      if (this.failing) throw apiStatusError(500, "InternalError");
      return fn();
    };
    return {
      namespace,
      name,
      get: () => call(() => this.lease && structuredClone(this.lease)),
      create: (lease) =>
        call(() => {
          if (this.lease) throw apiStatusError(409, "AlreadyExists");
          this.writes++;
          this.lease = {
            ...structuredClone(lease),
            metadata: { ...lease.metadata, resourceVersion: `r${++this.#rv}` },
          };
          return structuredClone(this.lease);
        }),
      update: (lease) =>
        call(() => {
          if (lease.metadata.resourceVersion !== this.lease?.metadata.resourceVersion) {
            throw apiStatusError(409, "Conflict");
          }
          this.writes++;
          this.lease = {
            ...structuredClone(lease),
            metadata: { ...lease.metadata, resourceVersion: `r${++this.#rv}` },
          };
          return structuredClone(this.lease);
        }),
    };
  }

  /** Someone else writes the lease behind our back. */
  overwrite(holder: string): void {
    if (!this.lease) throw new Error("no lease to overwrite");
    this.lease = {
      ...this.lease,
      metadata: { ...this.lease.metadata, resourceVersion: `r${++this.#rv}` },
      spec: { ...this.lease.spec, holderIdentity: holder },
    };
  }
}

/** An ApiError shaped like what the API server sends. */
export function apiStatusError(code: number, reason: string, message = reason): ApiError {
  return new ApiError(code, message, { kind: "Status", status: "Failure", code, reason, message });
}

/** Polls `check` between event-loop turns until it is truthy; fails after `turns` attempts. */
export async function eventually(check: () => boolean, turns = 200): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (check()) return;
    await settle(1);
  }
  throw new Error("condition not met");
}
