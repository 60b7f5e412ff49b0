import { rfc3339 } from "../../kube/clock.ts";
import type { Logger } from "../../observability/logger.ts";

export type ConditionStatus = "True" | "False" | "Unknown";

/** `metav1.Condition` as it appears in a status. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** What a reconciler decides; the merge supplies the time and generation. */
export type ConditionUpdate = Pick<Condition, "type" | "status" | "reason" | "message">;

export interface MergeConditionsResult {
  /** A new array, sorted by type; the input is never modified (it may be a frozen cache object). */
  conditions: Condition[];
  /** Whether `conditions` differs from the existing list at all: write the status only then. */
  changed: boolean;
  /** Whether any of the updates is not True (upstream's `HadErrorCondition`). */
  anyNotTrue: boolean;
}

/**
 * Upstream's `conditionsutil.MergeConditions`: each update replaces the condition of its type,
 * conditions of other types are kept, `lastTransitionTime` moves only when the status changes,
 * every updated condition carries `observedGeneration`, and the list is sorted by type.
 */
export function mergeConditions(
  existing: readonly Condition[] | undefined,
  updates: readonly ConditionUpdate[],
  observedGeneration: number,
  nowMs: number,
  log?: Logger,
): MergeConditionsResult {
  const now = rfc3339(nowMs);
  const merged = (existing ?? []).map((c) => ({ ...c }));
  for (const update of updates) {
    const index = merged.findIndex((c) => c.type === update.type);
    const old = index < 0 ? undefined : merged[index];
    const next: Condition = {
      type: update.type,
      status: update.status,
      reason: update.reason,
      message: update.message,
      lastTransitionTime: old && old.status === update.status ? old.lastTransitionTime : now,
      observedGeneration,
    };
    if (old && sameCondition(old, next)) continue;
    if (old) merged[index] = next;
    else merged.push(next);
    log?.info("updated condition", {
      type: next.type,
      status: next.status,
      reason: next.reason,
      message: next.message,
    });
  }
  merged.sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  const before = existing ?? [];
  const changed = merged.length !== before.length || merged.some((c, i) => !sameCondition(c, before[i]));
  return { conditions: merged, changed, anyNotTrue: updates.some((u) => u.status !== "True") };
}

export type Phase = "Ready" | "Error";

/** `Ready` when every condition is True, else `Error` (the authenticators' `status.phase`). */
export function phaseFromConditions(conditions: readonly Pick<Condition, "status">[]): Phase {
  return conditions.every((c) => c.status === "True") ? "Ready" : "Error";
}

function sameCondition(a: Condition, b: Condition | undefined): boolean {
  return (
    b !== undefined &&
    a.type === b.type &&
    a.status === b.status &&
    a.reason === b.reason &&
    a.message === b.message &&
    a.lastTransitionTime === b.lastTransitionTime &&
    a.observedGeneration === b.observedGeneration
  );
}
