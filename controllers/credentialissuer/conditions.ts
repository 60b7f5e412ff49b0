// Standard conditions derived from the strategies, so tools that judge health by conditions
// (kubectl wait, Argo CD, Flux/kstatus) can read the CredentialIssuer. Not upstream: upstream
// has only `strategies`, where a deliberately disabled proxy reads `status: Error`.
import type { CredentialIssuerStrategy } from "../../apis/index.ts";
import type { ConditionUpdate } from "../runtime/conditions.ts";
import type { StrategyUpdate } from "./merge.ts";

export const readyCondition = "Ready";

type Strategy = StrategyUpdate | CredentialIssuerStrategy;

/**
 * One condition per strategy (its type is the strategy's type), and `Ready`: True when some
 * strategy that `issues` succeeded, naming the frontend of the first (`strategies` come in the
 * configured order, the order the TokenCredentialRequest asks them and the CLI picks). A strategy
 * turned off on purpose is False with reason `Disabled` and never makes `Ready` False by itself.
 */
export function strategyConditions(
  strategies: readonly Strategy[],
  issues: (type: string) => boolean = () => true,
): ConditionUpdate[] {
  const perStrategy: ConditionUpdate[] = strategies.map((s) => ({
    type: s.type,
    status: s.status === "Success" ? "True" : "False",
    reason: s.reason,
    message: s.message,
  }));
  const active = strategies.find((s) => s.status === "Success" && issues(s.type));
  if (active) {
    const frontend = active.frontend?.type ?? "none";
    return [
      {
        type: readyCondition,
        status: "True",
        reason: "StrategySucceeded",
        message: `clients use the ${frontend} frontend of the ${active.type} strategy`,
      },
      ...perStrategy,
    ];
  }
  const failing = strategies.filter((s) => s.reason !== "Disabled" && issues(s.type));
  const message =
    failing.length === 0
      ? "every strategy is disabled, so no credentials can be issued"
      : `no strategy can issue credentials: ${failing.map((s) => `${s.type}: ${s.message}`).join("; ")}`;
  return [
    {
      type: readyCondition,
      status: "False",
      reason: failing.length === 0 ? "AllStrategiesDisabled" : "NoStrategySucceeded",
      message,
    },
    ...perStrategy,
  ];
}
