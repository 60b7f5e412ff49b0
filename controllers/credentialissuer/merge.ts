// Upstream's issuerconfig helper: how strategy results are merged into CredentialIssuer.status.
import { isDeepStrictEqual } from "node:util";
import type { CredentialIssuerStrategy } from "../../apis/index.ts";
import { rfc3339 } from "../../kube/clock.ts";

/**
 * What a strategy reconciler publishes: a strategy without `lastUpdateTime`, which the merge
 * stamps when the entry really changes.
 */
export type StrategyUpdate = Omit<CredentialIssuerStrategy, "lastUpdateTime">;

/**
 * Upstream's preference order (higher weights sort first; unknown types weigh 0), with our
 * strategies between its two in the default order of the issuers, so that the first Success
 * (what the CLI and the Ready condition pick) is the strategy that serves.
 */
const weights: Partial<Record<string, number>> = {
  KubeClusterSigningCertificate: 5,
  SecretSigningCertificate: 4,
  CertificateSigningRequestAPI: 3,
  JWTCredential: 2,
  ImpersonationProxy: 1,
};

/** Upstream's order: by weight, heaviest first, then by type name (byte order, as Go compares). */
export function compareStrategies(a: { type: string }, b: { type: string }): number {
  const wa = weights[a.type] ?? 0;
  const wb = weights[b.type] ?? 0;
  if (wa !== wb) return wb - wa;
  return a.type < b.type ? -1 : a.type > b.type ? 1 : 0;
}

export type StrategyComparator = (a: { type: string }, b: { type: string }) => number;

/**
 * The order of the config's `strategies.order`: the types it lists first, as listed (the order
 * the TokenCredentialRequest asks their issuers, so the first Success is the one that serves),
 * then any others in upstream's order. Without a list, upstream's order.
 */
export function configuredOrder(order: readonly string[] | undefined): StrategyComparator {
  if (!order) return compareStrategies;
  const rank = new Map(order.map((type, index) => [type, index]));
  return (a, b) => {
    const ra = rank.get(a.type) ?? order.length;
    const rb = rank.get(b.type) ?? order.length;
    return ra !== rb ? ra - rb : compareStrategies(a, b);
  };
}

/**
 * Merges `updates` into `existing` by `type`, as upstream's mergeStrategy does one update at a
 * time: an entry is replaced only when something other than `lastUpdateTime` differs (so the
 * time moves only on a real change), a new type is appended, and entries of types nobody
 * updates are kept. The result is stable-sorted by `compare` (upstream's order unless the config
 * sets one). Inputs are not changed.
 */
export function mergeStrategies(
  existing: readonly CredentialIssuerStrategy[] | undefined,
  updates: readonly StrategyUpdate[],
  nowMs: number,
  compare: StrategyComparator = compareStrategies,
): CredentialIssuerStrategy[] {
  const now = rfc3339(nowMs);
  const merged: CredentialIssuerStrategy[] = (existing ?? []).map((s) => plainJSON(s));
  for (const update of updates) {
    const next: CredentialIssuerStrategy = { ...plainJSON(update), lastUpdateTime: now };
    const index = merged.findIndex((s) => s.type === update.type);
    const current = merged[index];
    if (current === undefined) merged.push(next);
    else if (!equalExceptLastUpdateTime(current, next)) merged[index] = next;
  }
  return merged.sort(compare);
}

/** Upstream compares with semantic deep-equality; for JSON that means absent equals undefined. */
function equalExceptLastUpdateTime(a: CredentialIssuerStrategy, b: CredentialIssuerStrategy): boolean {
  const { lastUpdateTime: _a, ...restA } = a;
  const { lastUpdateTime: _b, ...restB } = b;
  return isDeepStrictEqual(restA, restB);
}

/** A deep copy without `undefined` fields: cached objects are frozen, and the result is written as JSON. */
function plainJSON<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
