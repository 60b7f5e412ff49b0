import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CredentialIssuerStrategy, StrategyType } from "../../apis/index.ts";
import { rfc3339 } from "../../kube/clock.ts";
import { deepFreeze } from "../../kube/resource.ts";
import { compareStrategies, configuredOrder, mergeStrategies, type StrategyUpdate } from "./merge.ts";

const now = Date.UTC(2026, 0, 2, 3, 4, 5);
const t1 = rfc3339(now);
const t2 = rfc3339(now - 3_600_000);
// Upstream's test uses made-up types; the merge must not depend on the enum.
const type = (t: string) => t as StrategyType;

function strategy(t: string, status: "Success" | "Error", n: string, time: string): CredentialIssuerStrategy {
  return {
    type: type(t),
    status,
    reason: `some reason${n}` as CredentialIssuerStrategy["reason"],
    message: `some message${n}`,
    lastUpdateTime: time,
  };
}

function update(s: CredentialIssuerStrategy): StrategyUpdate {
  const { lastUpdateTime: _, ...rest } = s;
  return rest;
}

describe("mergeStrategies (upstream's TestMergeStrategy)", () => {
  const cases: {
    name: string;
    existing: CredentialIssuerStrategy[] | undefined;
    updates: StrategyUpdate[];
    want: CredentialIssuerStrategy[];
  }[] = [
    {
      name: "new entry",
      existing: undefined,
      updates: [update(strategy("Type1", "Success", "", t2))],
      want: [strategy("Type1", "Success", "", t1)],
    },
    {
      name: "new entry with a TokenCredentialRequestAPI frontend",
      existing: [],
      updates: [
        {
          ...update(strategy("Type1", "Success", "", t2)),
          frontend: {
            type: "TokenCredentialRequestAPI",
            tokenCredentialRequestInfo: {
              server: "https://test-server",
              certificateAuthorityData: "test-ca-bundle",
            },
          },
        },
      ],
      want: [
        {
          ...strategy("Type1", "Success", "", t1),
          frontend: {
            type: "TokenCredentialRequestAPI",
            tokenCredentialRequestInfo: {
              server: "https://test-server",
              certificateAuthorityData: "test-ca-bundle",
            },
          },
        },
      ],
    },
    {
      name: "existing entry to update",
      existing: [strategy("Type1", "Error", " starting", t2)],
      updates: [update(strategy("Type1", "Success", "", t1))],
      want: [strategy("Type1", "Success", "", t1)],
    },
    {
      name: "existing entry matches except for LastUpdated time",
      existing: [strategy("Type1", "Error", " starting", t2)],
      updates: [update(strategy("Type1", "Error", " starting", t1))],
      want: [strategy("Type1", "Error", " starting", t2)],
    },
    {
      name: "new entry among others",
      existing: [
        strategy("Type0", "Error", " starting 0", t2),
        strategy("Type2", "Error", " starting 0", t2),
      ],
      updates: [update(strategy("Type1", "Success", "", t1))],
      want: [
        strategy("Type0", "Error", " starting 0", t2),
        // Sorted by name between the existing entries.
        strategy("Type1", "Success", "", t1),
        strategy("Type2", "Error", " starting 0", t2),
      ],
    },
    {
      name: "entries of types nobody updates are kept",
      existing: [strategy("ImpersonationProxy", "Error", " proxy", t2)],
      updates: [update(strategy("KubeClusterSigningCertificate", "Success", "", t1))],
      want: [
        strategy("KubeClusterSigningCertificate", "Success", "", t1),
        strategy("ImpersonationProxy", "Error", " proxy", t2),
      ],
    },
    {
      name: "several updates: one changed, one unchanged, existing list re-sorted",
      existing: [
        strategy("ImpersonationProxy", "Error", " proxy", t2),
        strategy("KubeClusterSigningCertificate", "Error", " kca", t2),
      ],
      updates: [
        update(strategy("KubeClusterSigningCertificate", "Success", " kca", t1)),
        update(strategy("ImpersonationProxy", "Error", " proxy", t1)),
      ],
      want: [
        strategy("KubeClusterSigningCertificate", "Success", " kca", t1),
        strategy("ImpersonationProxy", "Error", " proxy", t2),
      ],
    },
    {
      name: "a frontend that went away is a change",
      existing: [
        {
          ...strategy("ImpersonationProxy", "Success", "", t2),
          frontend: {
            type: "ImpersonationProxy",
            impersonationProxyInfo: { endpoint: "https://proxy", certificateAuthorityData: "Y2E=" },
          },
        },
      ],
      updates: [update(strategy("ImpersonationProxy", "Success", "", t2))],
      want: [strategy("ImpersonationProxy", "Success", "", t1)],
    },
    {
      name: "undefined fields of an update equal absent ones",
      existing: [strategy("Type1", "Error", "", t2)],
      updates: [{ ...update(strategy("Type1", "Error", "", t1)), frontend: undefined }],
      want: [strategy("Type1", "Error", "", t2)],
    },
    {
      name: "no updates: the existing entries, sorted",
      existing: [strategy("Type1", "Error", "", t2), strategy("ImpersonationProxy", "Error", "", t2)],
      updates: [],
      want: [strategy("ImpersonationProxy", "Error", "", t2), strategy("Type1", "Error", "", t2)],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const existing = c.existing && deepFreeze(structuredClone(c.existing));
      const updates = deepFreeze(structuredClone(c.updates));
      assert.deepEqual(mergeStrategies(existing, updates, now), c.want);
      // The inputs (frozen, as informer caches are) are untouched.
      assert.deepEqual(existing, c.existing);
    });
  }
});

describe("compareStrategies (upstream's TestStrategySorting)", () => {
  const expected = ["KubeClusterSigningCertificate", "ImpersonationProxy", "Type1", "Type2", "Type3"];

  it("sorts any shuffle back to weight order, then by name", () => {
    let seed = 1;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 100; round++) {
      const shuffled = expected.map((t) => ({ type: t }));
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      assert.deepEqual(
        shuffled.sort(compareStrategies).map((s) => s.type),
        expected,
      );
    }
  });

  it("is stable for entries of the same type", () => {
    const entries = [
      { type: "Type1", n: 1 },
      { type: "ImpersonationProxy", n: 2 },
      { type: "Type1", n: 3 },
    ];
    assert.deepEqual(
      entries.sort(compareStrategies).map((e) => e.n),
      [2, 1, 3],
    );
  });

  it("compares names by code unit, as Go compares bytes", () => {
    assert.ok(compareStrategies({ type: "Zeta" }, { type: "alpha" }) < 0);
    assert.equal(compareStrategies({ type: "Same" }, { type: "Same" }), 0);
  });
});

describe("configuredOrder", () => {
  const types = (list: { type: string }[]) => list.map((s) => s.type);
  const all = [
    "ImpersonationProxy",
    "Type1",
    "CertificateSigningRequestAPI",
    "KubeClusterSigningCertificate",
  ];

  it("puts the configured types first, as configured, then the rest in upstream's order", () => {
    const sorted = all
      .map((type) => ({ type }))
      .sort(configuredOrder(["ImpersonationProxy", "CertificateSigningRequestAPI"]));
    assert.deepEqual(types(sorted), [
      "ImpersonationProxy",
      "CertificateSigningRequestAPI",
      "KubeClusterSigningCertificate",
      "Type1",
    ]);
  });

  it("is upstream's order without a configured one", () => {
    assert.equal(configuredOrder(undefined), compareStrategies);
  });

  it("orders what mergeStrategies writes", () => {
    const now = Date.parse("2026-12-02T12:00:00Z");
    const updates: StrategyUpdate[] = [
      { type: "KubeClusterSigningCertificate", status: "Success", reason: "FetchedKey", message: "ok" },
      { type: "ImpersonationProxy", status: "Success", reason: "Listening", message: "ok" },
    ];
    const merged = mergeStrategies([], updates, now, configuredOrder(["ImpersonationProxy"]));
    assert.deepEqual(types(merged), ["ImpersonationProxy", "KubeClusterSigningCertificate"]);
  });
});
