import { Counter, collectDefaultMetrics, Gauge, Histogram, type Metric, Registry } from "prom-client";

/** Every metric name of ours starts with this; the standard ones below keep their own names. */
export const METRIC_PREFIX = "concierge_";

export interface MetricSpec<L extends string> {
  /** Without the `concierge_` prefix, which is added unless `standard`. */
  name: string;
  help: string;
  labelNames?: readonly L[];
  /**
   * A name client-go and controller-runtime export (`workqueue_depth`, `rest_client_requests_total`,
   * ...), kept as is so that their dashboards and alerts apply.
   */
  standard?: boolean;
}

export interface HistogramSpec<L extends string> extends MetricSpec<L> {
  buckets?: number[];
}

/**
 * The metrics of one process (or one test), on a registry of its own rather than prom-client's
 * global default, so that tests never see each other's counts.
 *
 * The helpers are idempotent: asking twice for a metric of the same name and kind returns the
 * same object, so two informers or controllers can share `concierge_informer_lists_total`
 * and differ only by label.
 */
export class Metrics {
  readonly registry: Registry;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
  }

  counter<L extends string = string>(spec: MetricSpec<L>): Counter<L> {
    return this.#getOrCreate(fullName(spec), Counter, () => new Counter<L>(this.#config(spec)));
  }

  gauge<L extends string = string>(spec: MetricSpec<L>): Gauge<L> {
    return this.#getOrCreate(fullName(spec), Gauge, () => new Gauge<L>(this.#config(spec)));
  }

  histogram<L extends string = string>(spec: HistogramSpec<L>): Histogram<L> {
    return this.#getOrCreate(
      fullName(spec),
      Histogram,
      () => new Histogram<L>({ ...this.#config(spec), ...(spec.buckets ? { buckets: spec.buckets } : {}) }),
    );
  }

  /** Adds Node's process metrics (CPU, memory, event-loop lag); once per process registry. */
  collectProcessMetrics(): void {
    collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  /** The Prometheus text exposition of everything registered. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #config<L extends string>(spec: MetricSpec<L>) {
    return {
      name: fullName(spec),
      help: spec.help,
      labelNames: spec.labelNames ?? [],
      registers: [this.registry],
    };
  }

  #getOrCreate<M extends Metric<string>>(
    name: string,
    kind: abstract new (...args: never[]) => M,
    create: () => M,
  ): M {
    const existing = this.registry.getSingleMetric(name);
    if (existing === undefined) return create();
    if (!(existing instanceof kind)) {
      throw new Error(`metric ${name} is already registered as a different kind`);
    }
    return existing;
  }
}

function fullName(spec: MetricSpec<string>): string {
  return spec.standard ? spec.name : METRIC_PREFIX + spec.name;
}

/**
 * Removes every series of `metric` whose labels include `match` (e.g. one deleted authenticator's);
 * prom-client removes only by the full label set, so the sets are read back first.
 */
export async function removeSeries(
  metric: Counter<string> | Gauge<string> | Histogram<string>,
  match: Record<string, string>,
): Promise<void> {
  const { values } = await metric.get();
  const removed = new Set<string>();
  for (const { labels } of values) {
    if (!Object.entries(match).every(([k, v]) => labels[k] === v)) continue;
    // A histogram's buckets carry `le`, which is not one of its label names.
    const { le: _, ...own } = labels as Record<string, string | number>;
    const key = JSON.stringify(own);
    if (removed.has(key)) continue;
    removed.add(key);
    metric.remove(own);
  }
}
