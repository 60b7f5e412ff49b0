import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rfc3339 } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { type Condition, type ConditionUpdate, mergeConditions, phaseFromConditions } from "./conditions.ts";

const EARLIER = "2026-01-01T00:00:00Z";
const NOW_MS = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const NOW = "2026-01-02T03:04:05Z";

const cond = (type: string, status: Condition["status"], extra: Partial<Condition> = {}): Condition => ({
  type,
  status,
  reason: status === "True" ? "Success" : "Failed",
  message: `${type} is ${status}`,
  lastTransitionTime: EARLIER,
  observedGeneration: 1,
  ...extra,
});
const upd = (
  type: string,
  status: Condition["status"],
  extra: Partial<ConditionUpdate> = {},
): ConditionUpdate => ({
  type,
  status,
  reason: status === "True" ? "Success" : "Failed",
  message: `${type} is ${status}`,
  ...extra,
});

describe("mergeConditions", () => {
  const cases: {
    name: string;
    existing: Condition[] | undefined;
    updates: ConditionUpdate[];
    generation?: number;
    want: Condition[];
    wantChanged: boolean;
    wantAnyNotTrue: boolean;
  }[] = [
    {
      name: "adds new conditions with the current time and generation, sorted by type",
      existing: undefined,
      updates: [upd("Ready", "True"), upd("AuthenticatorValid", "True")],
      want: [
        cond("AuthenticatorValid", "True", { lastTransitionTime: NOW }),
        cond("Ready", "True", { lastTransitionTime: NOW }),
      ],
      wantChanged: true,
      wantAnyNotTrue: false,
    },
    {
      name: "nothing changes when the same conditions are merged again",
      existing: [cond("A", "True"), cond("B", "False")],
      updates: [upd("B", "False"), upd("A", "True")],
      want: [cond("A", "True"), cond("B", "False")],
      wantChanged: false,
      wantAnyNotTrue: true,
    },
    {
      name: "a status change moves lastTransitionTime",
      existing: [cond("A", "True")],
      updates: [upd("A", "False")],
      want: [cond("A", "False", { lastTransitionTime: NOW })],
      wantChanged: true,
      wantAnyNotTrue: true,
    },
    {
      name: "a message or reason change keeps lastTransitionTime",
      existing: [cond("A", "False")],
      updates: [upd("A", "False", { reason: "Other", message: "new message" })],
      want: [cond("A", "False", { reason: "Other", message: "new message" })],
      wantChanged: true,
      wantAnyNotTrue: true,
    },
    {
      name: "a new generation is stamped and counts as a change, keeping lastTransitionTime",
      existing: [cond("A", "True")],
      updates: [upd("A", "True")],
      generation: 2,
      want: [cond("A", "True", { observedGeneration: 2 })],
      wantChanged: true,
      wantAnyNotTrue: false,
    },
    {
      name: "conditions of types not updated are kept as they are",
      existing: [cond("Old", "False", { observedGeneration: 0 }), cond("A", "True")],
      updates: [upd("A", "True")],
      want: [cond("A", "True"), cond("Old", "False", { observedGeneration: 0 })],
      wantChanged: true,
      wantAnyNotTrue: false,
    },
    {
      name: "Unknown counts as not true",
      existing: [],
      updates: [upd("A", "Unknown")],
      want: [cond("A", "Unknown", { lastTransitionTime: NOW })],
      wantChanged: true,
      wantAnyNotTrue: true,
    },
    {
      name: "no updates and no conditions: unchanged",
      existing: [],
      updates: [],
      want: [],
      wantChanged: false,
      wantAnyNotTrue: false,
    },
  ];

  for (const tc of cases) {
    it(tc.name, () => {
      const existing = tc.existing && structuredClone(tc.existing);
      const frozen = existing && Object.freeze(existing.map((c) => Object.freeze(c)));
      const got = mergeConditions(frozen, tc.updates, tc.generation ?? 1, NOW_MS);
      assert.deepEqual(got.conditions, tc.want);
      assert.equal(got.changed, tc.wantChanged);
      assert.equal(got.anyNotTrue, tc.wantAnyNotTrue);
      assert.deepEqual(existing, tc.existing, "the input is not modified");
    });
  }

  it("formats times as RFC 3339 with second precision", () => {
    assert.equal(rfc3339(NOW_MS), NOW);
    const { conditions } = mergeConditions([], [upd("A", "True")], 3, NOW_MS);
    assert.match(conditions[0]?.lastTransitionTime ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it("logs each condition it changed, and only those", () => {
    const { log, lines } = memoryLogger();
    mergeConditions([cond("A", "True")], [upd("A", "True"), upd("B", "False")], 1, NOW_MS, log);
    assert.deepEqual(
      lines.map((l) => [l.message, l.type, l.status]),
      [["updated condition", "B", "False"]],
    );
  });
});

describe("phaseFromConditions", () => {
  it("is Ready only when every condition is True", () => {
    assert.equal(phaseFromConditions([cond("A", "True"), cond("B", "True")]), "Ready");
    assert.equal(phaseFromConditions([cond("A", "True"), cond("B", "False")]), "Error");
    assert.equal(phaseFromConditions([cond("A", "Unknown")]), "Error");
  });
});
