// Where each strategy reconciler (kube-cert-agent, impersonation proxy) leaves its latest result,
// for the one credentialissuer reconciler that writes them all into the CredentialIssuer status.
// Every replica fills it, so any replica that becomes the leader can write at once.
import { isDeepStrictEqual } from "node:util";
import type {
  CredentialIssuerFrontend,
  StrategyReason,
  StrategyStatus,
  StrategyType,
} from "../../apis/index.ts";
import { Holder } from "../../kube/holder.ts";
import { deepFreeze } from "../../kube/resource.ts";
import { configuredOrder, type StrategyComparator, type StrategyUpdate } from "./merge.ts";

export class StrategyHolder {
  /** The config's `strategies.order`, when it sets one: only the strategies it lists issue. */
  readonly order: readonly string[] | undefined;
  /** How the strategies are listed: the configured order first, then upstream's. */
  readonly compare: StrategyComparator;
  // Listeners hear only of real changes, since a strategy reconciler republishes the same result
  // on every sync.
  readonly #strategies = new Holder<ReadonlyMap<StrategyType, StrategyUpdate>>(new Map(), {
    equal: isDeepStrictEqual,
  });

  constructor(order?: readonly string[]) {
    this.order = order ? [...order] : undefined;
    this.compare = configuredOrder(this.order);
  }

  /** Whether a strategy of `type` issues credentials: every one without a configured order. */
  issues(type: string): boolean {
    return this.order === undefined || this.order.includes(type);
  }

  /** Publishes the latest result of the strategy of `type`. */
  set(type: StrategyType, strategy: Omit<StrategyUpdate, "type">): void {
    // A JSON copy: the caller keeps its object, and an undefined field equals an absent one.
    const next = deepFreeze({ ...(JSON.parse(JSON.stringify(strategy)) as typeof strategy), type });
    this.#strategies.set(new Map(this.#strategies.get()).set(type, next));
  }

  /** Every published strategy (frozen), in the configured order. */
  get(): StrategyUpdate[] {
    return [...this.#strategies.get().values()].sort(this.compare);
  }

  /** Calls `listener` after each change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    return this.#strategies.onChange(() => listener());
  }
}

/** A strategy reconciler's publish: its status, reason and message, and its frontend when it serves. */
export function strategyPublisher(holder: StrategyHolder, type: StrategyType) {
  return (
    status: StrategyStatus,
    reason: StrategyReason,
    message: string,
    frontend?: CredentialIssuerFrontend,
  ) => holder.set(type, { status, reason, message, ...(frontend ? { frontend } : {}) });
}
