// Where each strategy reconciler (kube-cert-agent, impersonation proxy) leaves its latest result,
// for the one credentialissuer reconciler that writes them all into the CredentialIssuer status.
// Every replica fills it, so any replica that becomes the leader can write at once.
import { isDeepStrictEqual } from "node:util";
import type { StrategyType } from "../../apis/index.ts";
import { deepFreeze } from "../../kube/resource.ts";
import { compareStrategies, type StrategyUpdate } from "./merge.ts";

export class StrategyHolder {
  readonly #strategies = new Map<StrategyType, StrategyUpdate>();
  readonly #listeners = new Set<() => void>();

  /**
   * Publishes the latest result of the strategy of `type`. Listeners hear only of real changes,
   * since a strategy reconciler republishes the same result on every sync.
   */
  set(type: StrategyType, strategy: Omit<StrategyUpdate, "type">): void {
    // A JSON copy: the caller keeps its object, and an undefined field equals an absent one.
    const next = deepFreeze({ ...(JSON.parse(JSON.stringify(strategy)) as typeof strategy), type });
    if (isDeepStrictEqual(this.#strategies.get(type), next)) return;
    this.#strategies.set(type, next);
    for (const listener of this.#listeners) listener();
  }

  /** Every published strategy (frozen), in upstream's order. */
  get(): StrategyUpdate[] {
    return [...this.#strategies.values()].sort(compareStrategies);
  }

  /** Calls `listener` after each change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
