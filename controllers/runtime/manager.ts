import { type Clock, realClock, whenAborted } from "../../kube/clock.ts";
import type { GroupSuffix } from "../../kube/groupsuffix.ts";
import { groupSuffixClient } from "../../kube/groupsuffix-client.ts";
import type { ClusterAccess } from "../../kube/kubeconfig.ts";
import { KubeRestClient, type RequestResult, type RestClient } from "../../kube/rest.ts";
import { discardLogger, type Logger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { Controller, type ControllerOptions } from "./controller.ts";
import type { InformerTiming } from "./informer.ts";
import { InformerFactory } from "./informer-factory.ts";
import { LeaderElector, type LeaderElectorOptions, leaderOnlyClient } from "./leaderelection.ts";
import { type LeaseClient, restLeaseClient } from "./lease.ts";
import { type InformerTransport, restTransport } from "./listwatch.ts";
import { FIELD_MANAGER, StatusWriter } from "./status.ts";

export interface ManagerOptions {
  /** Unguarded client: reads, watches and the Lease itself. */
  rest: RestClient;
  /** Defaults to list/watch over `rest`. */
  transport?: InformerTransport;
  lease: LeaseClient;
  /** This replica's name in the Lease (upstream: the pod name). */
  identity: string;
  leaderElection?: Pick<LeaderElectorOptions, "leaseDurationMs" | "renewDeadlineMs" | "retryPeriodMs">;
  informers?: InformerTiming;
  clock?: Clock;
  log?: Logger;
  metrics?: Metrics;
  random?: () => number;
}

/**
 * The controller side of one replica: shared informers, leader election, and the controllers.
 * Every replica fills its caches and runs every controller; writes through `client` and
 * `status` succeed only on the leader (upstream's model).
 */
export class Manager {
  readonly informers: InformerFactory;
  readonly leader: LeaderElector;
  /** For reconcilers' writes: rejected with NotLeaderError unless this replica leads. */
  readonly client: RestClient;
  readonly status: StatusWriter;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly #controllers: Controller[] = [];
  readonly #rest: RestClient;
  #started = false;

  constructor(options: ManagerOptions) {
    this.clock = options.clock ?? realClock;
    this.log = options.log ?? discardLogger();
    this.metrics = options.metrics ?? new Metrics();
    const random = options.random ?? Math.random;
    this.informers = new InformerFactory({
      ...options.informers,
      transport: options.transport ?? restTransport(options.rest),
      clock: this.clock,
      log: this.log.child({ component: "informers" }),
      metrics: this.metrics,
      random,
    });
    this.leader = new LeaderElector({
      ...options.leaderElection,
      lease: options.lease,
      identity: options.identity,
      clock: this.clock,
      log: this.log.child({ component: "leader-election" }),
      metrics: this.metrics,
      random,
    });
    this.#rest = options.rest;
    this.client = leaderOnlyClient(options.rest, this.leader);
    // Syncs refused while following were backed off; the new leader should not wait for them.
    this.leader.onChange((leading) => {
      if (leading) for (const c of this.#controllers) c.retryFailedNow();
    });
    this.status = new StatusWriter({ client: this.client, guard: this.leader, log: this.log });
  }

  /** A controller that shares this manager's clock, log and metrics, registered to run. */
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller {
    const controller = new Controller({
      ...options,
      clock: this.clock,
      log: this.log.child({ component: "controllers" }),
      metrics: this.metrics,
    });
    this.#controllers.push(controller);
    return controller;
  }

  /** Every controller has synced once each key its caches held at start (Controller.firstPassDone). */
  firstPassDone(): boolean {
    return this.#controllers.every((c) => c.firstPassDone());
  }

  /**
   * Runs everything until `signal` aborts (once per manager), then stops in the order that keeps writes safe:
   * controllers first (no sync left in flight), then leader election (which releases the
   * Lease so another replica takes over at once), then the informers.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#started) throw new Error("manager was already started");
    this.#started = true;
    const election = new AbortController();
    this.informers.start();
    const leading = this.leader.run(election.signal);
    try {
      await Promise.all([whenAborted(signal), ...this.#controllers.map((c) => c.run(signal))]);
    } finally {
      election.abort();
      await leading;
      await this.informers.stop();
      this.#rest.close?.();
    }
  }
}

export interface ManagerFromKubeConfigOptions extends Omit<ManagerOptions, "rest" | "lease" | "transport"> {
  leaseNamespace: string;
  leaseName: string;
  /** The install's API groups: reconcilers and informers name upstream's, the cluster serves these. */
  groups?: GroupSuffix;
}

/** A manager talking to the cluster of `kc` (in the pod: `kc.loadFromCluster()`). */
export function managerFromKubeConfig(kc: ClusterAccess, options: ManagerFromKubeConfigOptions): Manager {
  const kubeRest = new KubeRestClient(kc, {
    userAgent: FIELD_MANAGER,
    ...(options.metrics ? { onResult: restClientMetrics(options.metrics) } : {}),
  });
  const { leaseNamespace, leaseName, groups, ...common } = options;
  const rest = groups ? groupSuffixClient(kubeRest, groups) : kubeRest;
  return new Manager({ ...common, rest, lease: restLeaseClient(rest, leaseNamespace, leaseName) });
}

/** client-go's rest_client metrics (names, labels and latency buckets), which its dashboards read. */
export function restClientMetrics(metrics: Metrics): (result: RequestResult) => void {
  const requests = metrics.counter({
    name: "rest_client_requests_total",
    help: "Number of HTTP requests, partitioned by status code, method, and host.",
    labelNames: ["code", "method", "host"] as const,
    standard: true,
  });
  const duration = metrics.histogram({
    name: "rest_client_request_duration_seconds",
    help: "Request latency in seconds. Broken down by verb, and host.",
    labelNames: ["verb", "host"] as const,
    buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
    standard: true,
  });
  return ({ method, host, code, seconds }) => {
    requests.inc({ code, method, host });
    duration.observe({ verb: method, host }, seconds);
  };
}
