import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StrategyHolder } from "./holder.ts";
import type { StrategyUpdate } from "./merge.ts";

const kca: Omit<StrategyUpdate, "type"> = {
  status: "Error",
  reason: "CouldNotFetchKey",
  message: "could not find a healthy kube-controller-manager pod (0 candidates)",
};
const proxy: Omit<StrategyUpdate, "type"> = {
  status: "Error",
  reason: "Disabled",
  message: "impersonation proxy was explicitly disabled by configuration",
};

describe("StrategyHolder", () => {
  it("starts empty", () => {
    assert.deepEqual(new StrategyHolder().get(), []);
  });

  it("holds the latest strategy per type, in upstream's order", () => {
    const holder = new StrategyHolder();
    holder.set("ImpersonationProxy", proxy);
    holder.set("KubeClusterSigningCertificate", kca);
    holder.set("KubeClusterSigningCertificate", { ...kca, message: "newer" });
    assert.deepEqual(holder.get(), [
      { ...kca, message: "newer", type: "KubeClusterSigningCertificate" },
      { ...proxy, type: "ImpersonationProxy" },
    ]);
  });

  it("holds them in the configured order, and knows which strategies issue", () => {
    const holder = new StrategyHolder(["ImpersonationProxy", "KubeClusterSigningCertificate"]);
    holder.set("KubeClusterSigningCertificate", kca);
    holder.set("ImpersonationProxy", proxy);
    holder.set("SecretSigningCertificate", kca);
    assert.deepEqual(
      holder.get().map((s) => s.type),
      ["ImpersonationProxy", "KubeClusterSigningCertificate", "SecretSigningCertificate"],
    );
    assert.equal(holder.issues("ImpersonationProxy"), true);
    assert.equal(holder.issues("SecretSigningCertificate"), false);
    assert.equal(new StrategyHolder().issues("SecretSigningCertificate"), true);
  });

  it("notifies listeners of real changes only, until they unsubscribe", () => {
    const holder = new StrategyHolder();
    let calls = 0;
    const unsubscribe = holder.onChange(() => calls++);
    holder.set("KubeClusterSigningCertificate", kca);
    holder.set("KubeClusterSigningCertificate", { ...kca });
    holder.set("KubeClusterSigningCertificate", { ...kca, frontend: undefined });
    assert.equal(calls, 1);
    holder.set("KubeClusterSigningCertificate", { ...kca, status: "Success", reason: "FetchedKey" });
    assert.equal(calls, 2);
    unsubscribe();
    holder.set("ImpersonationProxy", proxy);
    assert.equal(calls, 2);
  });

  it("keeps its own frozen copy, so callers cannot change what it holds", () => {
    const holder = new StrategyHolder();
    const published = structuredClone(kca);
    holder.set("KubeClusterSigningCertificate", published);
    published.message = "changed afterwards";
    const [held] = holder.get();
    assert.equal(held?.message, kca.message);
    assert.ok(Object.isFrozen(held));
  });
});
