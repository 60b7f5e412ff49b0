// Where each strategy reconciler (kube-cert-agent, impersonation proxy) leaves its latest result,
// for the one credentialissuer reconciler that writes them all into the CredentialIssuer status.
// Every replica fills it, so any replica that becomes the leader can write at once.
import { isDeepStrictEqual } from "node:util";
import type { StrategyType } from "../../apis/index.ts";
import { Holder } from "../../kube/holder.ts";
import { deepFreeze } from "../../kube/resource.ts";
import { compareStrategies, type StrategyUpdate } from "./merge.ts";

export class StrategyHolder {
  // Listeners hear only of real changes, since a strategy reconciler republishes the same result
  // on every sync.
  readonly #strategies = new Holder<ReadonlyMap<StrategyType, StrategyUpdate>>(new Map(), {
    equal: isDeepStrictEqual,
  });

  /** Publishes the latest result of the strategy of `type`. */
  set(type: StrategyType, strategy: Omit<StrategyUpdate, "type">): void {
    // A JSON copy: the caller keeps its object, and an undefined field equals an absent one.
    const next = deepFreeze({ ...(JSON.parse(JSON.stringify(strategy)) as typeof strategy), type });
    this.#strategies.set(new Map(this.#strategies.get()).set(type, next));
  }

  /** Every published strategy (frozen), in upstream's order. */
  get(): StrategyUpdate[] {
    return [...this.#strategies.get().values()].sort(compareStrategies);
  }

  /** Calls `listener` after each change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    return this.#strategies.onChange(() => listener());
  }
}
