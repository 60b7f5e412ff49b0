import { conditionSchema } from "../../meta/v1/meta.ts";

// The status shape both authenticator kinds share; only the phase description names the kind.

export const authenticatorPhases = ["Pending", "Ready", "Error"] as const;

export const conditionsProperty = {
  type: "array",
  description: "Represents the observations of the authenticator's current state.",
  items: conditionSchema,
  "x-kubernetes-list-map-keys": ["type"],
  "x-kubernetes-list-type": "map",
} as const;

export const statusTypeNames = {
  "status.conditions[]": "Condition",
  "status.conditions[].status": "ConditionStatus",
} as const;
