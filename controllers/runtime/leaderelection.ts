import { type Clock, realClock, rfc3339Micro, sleep } from "../../kube/clock.ts";
import type { RequestOptions, RestClient, StreamOptions } from "../../kube/rest.ts";
import { discardLogger, type Logger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import type { Lease, LeaseClient, LeaseSpec } from "./lease.ts";

/** Upstream's message, kept word for word: tests and operators grep for it. */
export const NOT_LEADER_MESSAGE = "write attempt rejected as client is not leader";

export class NotLeaderError extends Error {
  override readonly name = "NotLeaderError";
  constructor() {
    super(NOT_LEADER_MESSAGE);
  }
}

/** kube-controller-manager's --leader-elect-lease-duration, -renew-deadline and -retry-period. */
export const defaultLeaderElectionTiming = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
} as const;

export interface LeaderElectorOptions {
  lease: LeaseClient;
  /** Unique per replica; upstream uses the pod name. */
  identity: string;
  /**
   * How long a lease is valid after its last renewal, as seen by other replicas: how long a
   * crashed leader's work waits. Default 15 s, kube-controller-manager's (upstream's 137 s left
   * certificates and the proxy unmanaged for over two minutes after a kill -9).
   */
  leaseDurationMs?: number;
  /** The leader steps down when it could not renew for this long. Default 10 s. */
  renewDeadlineMs?: number;
  /** Time between attempts to acquire or renew. Default 2 s. */
  retryPeriodMs?: number;
  /** Clear the holder on graceful stop so another replica takes over at once. Default true. */
  releaseOnStop?: boolean;
  clock?: Clock;
  log?: Logger;
  metrics?: Metrics;
  /** [0, 1); jitters the acquire retries. */
  random?: () => number;
}

/** Acquire retries wait retryPeriod · (1 + JITTER · random), as client-go's JitterUntil does. */
const ACQUIRE_JITTER = 1.2;

/**
 * client-go's Lease-based leader election, re-campaigning after a loss instead of exiting.
 * Every replica runs every controller; only writes are gated (see `assertLeader` and
 * `leaderOnlyClient`), as in upstream's middleware.
 *
 * Expiry is judged on this replica's clock from when it last saw the lease change, never from
 * the holder's `renewTime`, so clock skew between nodes does not matter.
 */
export class LeaderElector {
  readonly identity: string;
  readonly #lease: LeaseClient;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #releaseOnStop: boolean;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #random: () => number;
  readonly #gauge;
  readonly #masterStatus;
  readonly #transitions;
  readonly #label: { lease: string };
  readonly #listeners = new Set<(leader: boolean) => void>();

  #leading = false;
  #lastRenewAt = 0;
  #observedSpec = "";
  #observedAt = 0;
  #observedHolder: string | undefined;
  #running = false;

  constructor(options: LeaderElectorOptions) {
    this.identity = options.identity;
    this.#lease = options.lease;
    this.#leaseDurationMs = options.leaseDurationMs ?? defaultLeaderElectionTiming.leaseDurationMs;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? defaultLeaderElectionTiming.renewDeadlineMs;
    this.#retryPeriodMs = options.retryPeriodMs ?? defaultLeaderElectionTiming.retryPeriodMs;
    if (!(this.#leaseDurationMs > this.#renewDeadlineMs && this.#renewDeadlineMs > this.#retryPeriodMs)) {
      throw new Error("leader election needs leaseDuration > renewDeadline > retryPeriod");
    }
    this.#releaseOnStop = options.releaseOnStop ?? true;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
    this.#label = { lease: `${options.lease.namespace}/${options.lease.name}` };
    this.#log = (options.log ?? discardLogger()).child({ lease: this.#label.lease, identity: this.identity });
    const metrics = options.metrics ?? new Metrics();
    this.#gauge = metrics.gauge({
      name: "leader_election_is_leader",
      help: "1 while this replica holds the lease.",
      labelNames: ["lease"] as const,
    });
    this.#transitions = metrics.counter({
      name: "leader_election_transitions_total",
      help: "Changes of this replica's leadership, by the state entered.",
      labelNames: ["lease", "to"] as const,
    });
    // client-go's name and label (the lock's name), which leader-election dashboards read.
    this.#masterStatus = metrics.gauge({
      name: "leader_election_master_status",
      help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
      labelNames: ["name"] as const,
      standard: true,
    });
    this.#gauge.set(this.#label, 0);
    this.#masterStatus.set({ name: options.lease.name }, 0);
  }

  /**
   * True while this replica holds the lease and renewed it within the renew deadline; the
   * time check keeps a replica whose renewals hang from writing on.
   */
  isLeader(): boolean {
    return this.#leading && this.#clock.now() - this.#lastRenewAt < this.#renewDeadlineMs;
  }

  /** The holder last seen on the lease (may be this replica, another one, or none). */
  observedHolder(): string | undefined {
    return this.#observedHolder;
  }

  /** Called with the new state whenever this replica gains or loses leadership. */
  onChange(listener: (leader: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Throws NotLeaderError unless this replica is the leader; call it at the write edge. */
  assertLeader(): void {
    if (!this.isLeader()) throw new NotLeaderError();
  }

  /** Wraps a write function so that it rejects with NotLeaderError on a non-leader. */
  guard<A extends unknown[], R>(write: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args) => {
      this.assertLeader();
      return write(...args);
    };
  }

  /**
   * Campaigns, leads and re-campaigns until `signal` aborts; then steps down and, when
   * configured, releases the lease. Resolves once that is done.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new Error("leader election is already running");
    this.#running = true;
    try {
      while (!signal.aborted) {
        if (!(await this.#acquire(signal))) break;
        await this.#renewWhileLeading(signal);
      }
    } finally {
      const wasLeading = this.#leading;
      this.#setLeading(false, "stopping");
      if (wasLeading && this.#releaseOnStop) await this.#release();
      this.#running = false;
    }
  }

  async #acquire(signal: AbortSignal): Promise<boolean> {
    this.#log.debug("campaigning for the lease");
    while (!signal.aborted) {
      if (await this.#tryAcquireOrRenew(signal)) {
        this.#setLeading(true, "acquired the lease");
        return true;
      }
      await sleep(this.#clock, this.#retryPeriodMs * (1 + ACQUIRE_JITTER * this.#random()), signal);
    }
    return false;
  }

  async #renewWhileLeading(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (!(await sleep(this.#clock, this.#retryPeriodMs, signal))) return;
      const deadline = this.#lastRenewAt + this.#renewDeadlineMs;
      let renewed = false;
      while (!signal.aborted && !renewed && this.#clock.now() < deadline) {
        renewed = await this.#attemptBefore(deadline, signal);
        if (renewed || signal.aborted) break;
        if (this.#heldByAnother()) {
          this.#setLeading(false, "the lease is held by another replica");
          return;
        }
        const wait = Math.min(this.#retryPeriodMs, deadline - this.#clock.now());
        if (wait > 0) await sleep(this.#clock, wait, signal);
      }
      if (signal.aborted) return;
      if (!renewed) {
        this.#setLeading(false, "could not renew the lease before the renew deadline");
        return;
      }
    }
  }

  #heldByAnother(): boolean {
    return this.#observedHolder !== undefined && this.#observedHolder !== this.identity;
  }

  /** One renewal attempt, abandoned at the deadline so a hung request cannot outlive it. */
  async #attemptBefore(deadline: number, signal: AbortSignal): Promise<boolean> {
    const attempt = new AbortController();
    const timer = this.#clock.setTimeout(
      () => attempt.abort(new Error("renew deadline reached")),
      deadline - this.#clock.now(),
    );
    const onStop = () => attempt.abort(signal.reason);
    signal.addEventListener("abort", onStop, { once: true });
    try {
      return await this.#tryAcquireOrRenew(attempt.signal);
    } finally {
      timer.cancel();
      signal.removeEventListener("abort", onStop);
    }
  }

  /**
   * One round of client-go's tryAcquireOrRenew. On success the renewal counts from when the
   * attempt started, not when it returned: other replicas may count from the write, which
   * cannot be earlier, so this errs on the side of stepping down early.
   */
  async #tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const now = this.#clock.now();
    const desired: LeaseSpec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.ceil(this.#leaseDurationMs / 1000),
      acquireTime: rfc3339Micro(now),
      renewTime: rfc3339Micro(now),
      leaseTransitions: 0,
    };
    try {
      const current = await abortable(this.#lease.get(signal), signal);
      if (!current) {
        const created = await abortable(
          this.#lease.create(
            {
              apiVersion: "coordination.k8s.io/v1",
              kind: "Lease",
              metadata: { name: this.#lease.name, namespace: this.#lease.namespace },
              spec: desired,
            },
            signal,
          ),
          signal,
        );
        this.#observe(created, this.#clock.now());
        this.#lastRenewAt = now;
        return true;
      }
      this.#observe(current, now);
      const spec = current.spec ?? {};
      const holder = spec.holderIdentity ?? "";
      if (holder !== "" && holder !== this.identity && !this.#observedExpired(spec, now)) return false;
      if (holder === this.identity) {
        desired.acquireTime = spec.acquireTime ?? desired.acquireTime;
        desired.leaseTransitions = spec.leaseTransitions ?? 0;
      } else {
        desired.leaseTransitions = (spec.leaseTransitions ?? 0) + 1;
      }
      const updated = await abortable(
        this.#lease.update({ ...current, spec: { ...spec, ...desired } }, signal),
        signal,
      );
      this.#observe(updated, this.#clock.now());
      this.#lastRenewAt = now;
      return true;
    } catch (error) {
      if (!signal.aborted) this.#log.debug("lease acquire/renew attempt failed", { error });
      return false;
    }
  }

  #observedExpired(spec: LeaseSpec, now: number): boolean {
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.#leaseDurationMs / 1000)) * 1000;
    return this.#observedAt + durationMs <= now;
  }

  #observe(lease: Lease, at: number): void {
    const serialised = JSON.stringify(lease.spec ?? {});
    if (serialised !== this.#observedSpec) {
      this.#observedSpec = serialised;
      this.#observedAt = at;
    }
    const holder = lease.spec?.holderIdentity || undefined;
    if (holder !== this.#observedHolder) {
      this.#observedHolder = holder;
      if (holder !== this.identity) this.#log.info("observed a new leader", { leader: holder ?? "(none)" });
    }
  }

  async #release(): Promise<void> {
    const signal = AbortSignal.timeout(Math.min(this.#renewDeadlineMs, 10_000));
    try {
      const current = await abortable(this.#lease.get(signal), signal);
      if (!current || current.spec?.holderIdentity !== this.identity) return;
      const now = rfc3339Micro(this.#clock.now());
      const released: LeaseSpec = {
        ...current.spec,
        holderIdentity: "",
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
      };
      const updated = await abortable(this.#lease.update({ ...current, spec: released }, signal), signal);
      this.#observe(updated, this.#clock.now());
      this.#log.info("released the lease");
    } catch (error) {
      this.#log.warn("could not release the lease; others take over when it expires", { error });
    }
  }

  #setLeading(leading: boolean, reason: string): void {
    if (this.#leading === leading) return;
    this.#leading = leading;
    this.#gauge.set(this.#label, leading ? 1 : 0);
    this.#masterStatus.set({ name: this.#lease.name }, leading ? 1 : 0);
    this.#transitions.inc({ ...this.#label, to: leading ? "leader" : "follower" });
    if (leading) this.#log.info("became leader", { reason });
    else this.#log.info("stopped leading", { reason });
    for (const listener of this.#listeners) {
      try {
        listener(leading);
      } catch (error) {
        this.#log.error("leadership listener failed", { error });
      }
    }
  }
}

/** Rejects as soon as `signal` aborts, even if the underlying call ignores the signal. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/**
 * A RestClient whose reads always work and whose writes fail with NotLeaderError on a
 * non-leader: upstream's leader-election middleware around the controllers' client.
 */
export function leaderOnlyClient(
  client: RestClient,
  elector: Pick<LeaderElector, "assertLeader">,
): RestClient {
  return {
    request<T>(options: RequestOptions): Promise<T> {
      if (options.method !== "GET") {
        try {
          elector.assertLeader();
        } catch (err) {
          return Promise.reject(err);
        }
      }
      return client.request<T>(options);
    },
    stream: (options: StreamOptions) => client.stream(options),
  };
}
