import { Counter, collectDefaultMetrics, Gauge, Histogram, type Metric, Registry } from "prom-client";

/** Every metric name this process exports starts with this. */
export const METRIC_PREFIX = "concierge_";

export interface MetricSpec<L extends string> {
  /** Without the `concierge_` prefix, which is added. */
  name: string;
  help: string;
  labelNames?: readonly L[];
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
    return this.#getOrCreate(spec.name, Counter, () => new Counter<L>(this.#config(spec)));
  }

  gauge<L extends string = string>(spec: MetricSpec<L>): Gauge<L> {
    return this.#getOrCreate(spec.name, Gauge, () => new Gauge<L>(this.#config(spec)));
  }

  histogram<L extends string = string>(spec: HistogramSpec<L>): Histogram<L> {
    return this.#getOrCreate(
      spec.name,
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
      name: METRIC_PREFIX + spec.name,
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
    const existing = this.registry.getSingleMetric(METRIC_PREFIX + name);
    if (existing === undefined) return create();
    if (!(existing instanceof kind)) {
      throw new Error(`metric ${METRIC_PREFIX}${name} is already registered as a different kind`);
    }
    return existing;
  }
}
