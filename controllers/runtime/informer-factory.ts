import type { Clock } from "../../kube/clock.ts";
import type { KubeObject, ResourceRef } from "../../kube/resource.ts";
import { discardLogger, type Logger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { Informer, type InformerTiming } from "./informer.ts";
import type { InformerTransport } from "./listwatch.ts";

export interface InformerFactoryOptions extends InformerTiming {
  transport: InformerTransport;
  clock?: Clock;
  log?: Logger;
  metrics?: Metrics;
  random?: () => number;
}

/**
 * Hands out one informer per distinct resource, namespace and selector pair, so that two
 * reconcilers watching the same thing share one watch and one cache.
 */
export class InformerFactory {
  readonly #options: InformerFactoryOptions;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #informers = new Map<string, Informer>();
  #started = false;

  constructor(options: InformerFactoryOptions) {
    this.#options = options;
    this.#metrics = options.metrics ?? new Metrics();
    this.#log = options.log ?? discardLogger();
  }

  /** The shared informer for `resource`; once the factory is started, new ones start at once. */
  informer<T extends KubeObject = KubeObject>(resource: ResourceRef): Informer<T> {
    const id = informerId(resource);
    let informer = this.#informers.get(id);
    if (!informer) {
      informer = new Informer({
        ...this.#options,
        resource: { ...resource },
        log: this.#log,
        metrics: this.#metrics,
      });
      this.#informers.set(id, informer);
      if (this.#started) informer.start();
    }
    return informer as unknown as Informer<T>;
  }

  start(): void {
    this.#started = true;
    for (const informer of this.#informers.values()) informer.start();
  }

  async stop(): Promise<void> {
    this.#started = false;
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
  }

  /** Resolves when every informer handed out so far has synced. */
  async waitForSync(signal?: AbortSignal): Promise<void> {
    await Promise.all([...this.#informers.values()].map((i) => i.waitForSync(signal)));
  }
}

function informerId(r: ResourceRef): string {
  return JSON.stringify([
    r.group,
    r.version,
    r.resource,
    r.namespace ?? "",
    r.labelSelector ?? "",
    r.fieldSelector ?? "",
  ]);
}
