import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KubeObject } from "../../kube/resource.ts";
import type { InformerEvent } from "./controller.ts";
import { controllerOwnerKey, generationChanged, named, ownKey, singletonKey, when } from "./filters.ts";

const obj = (name: string, extra: Record<string, unknown> = {}): KubeObject => ({
  metadata: { name, namespace: "ns", ...extra },
});
const add = (o: KubeObject): InformerEvent => ({ type: "add", obj: o });
const update = (old: KubeObject, o: KubeObject): InformerEvent => ({ type: "update", old, obj: o });

describe("filters", () => {
  it("ownKey and singletonKey", () => {
    assert.equal(ownKey(add(obj("a"))), "ns/a");
    assert.equal(singletonKey("world")(add(obj("a"))), "world");
  });

  it("when passes matching objects, and updates where either side matches", () => {
    const f = when(named("a", "ns"), ownKey);
    assert.equal(f(add(obj("a"))), "ns/a");
    assert.equal(f(add(obj("b"))), undefined);
    assert.equal(f(update(obj("a"), obj("a"))), "ns/a");
    const labelled = when((o) => o.metadata?.labels?.app === "x", ownKey);
    assert.equal(
      labelled(update(obj("a", { labels: { app: "x" } }), obj("a"))),
      "ns/a",
      "leaving the selection is seen",
    );
  });

  it("generationChanged drops updates that kept the generation, when there is one", () => {
    const f = generationChanged(ownKey);
    assert.equal(f(update(obj("a", { generation: 1 }), obj("a", { generation: 1 }))), undefined);
    assert.equal(f(update(obj("a", { generation: 1 }), obj("a", { generation: 2 }))), "ns/a");
    assert.equal(f(update(obj("a"), obj("a"))), "ns/a", "no generation: always passes");
    assert.equal(f(add(obj("a", { generation: 1 }))), "ns/a");
  });

  it("controllerOwnerKey maps to the controlling owner of a kind", () => {
    const f = controllerOwnerKey("Deployment");
    const owned = obj("pod", {
      ownerReferences: [
        { kind: "ReplicaSet", name: "rs", controller: false },
        { kind: "Deployment", name: "dep", controller: true },
      ],
    });
    assert.equal(f(add(owned)), "ns/dep");
    assert.equal(f(add(obj("orphan"))), undefined);
  });
});
