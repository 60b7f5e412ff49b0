import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  cacheable,
  collectionPath,
  deepFreeze,
  groupResource,
  keyFor,
  keyOf,
  objectPath,
  splitKey,
} from "./resource.ts";

describe("resource paths and keys", () => {
  it("builds core, grouped, namespaced and cluster-scoped paths", () => {
    const cms = { group: "", version: "v1", resource: "configmaps" };
    const deps = { group: "apps", version: "v1", resource: "deployments", namespace: "ns" };
    const ci = { group: "config.concierge.pinniped.dev", version: "v1alpha1", resource: "credentialissuers" };
    assert.equal(collectionPath(cms), "/api/v1/configmaps");
    assert.equal(collectionPath(cms, "kube-system"), "/api/v1/namespaces/kube-system/configmaps");
    assert.equal(collectionPath(deps), "/apis/apps/v1/namespaces/ns/deployments");
    assert.equal(
      objectPath(ci, "my-ci"),
      "/apis/config.concierge.pinniped.dev/v1alpha1/credentialissuers/my-ci",
    );
    assert.equal(objectPath(deps, "d"), "/apis/apps/v1/namespaces/ns/deployments/d");
    assert.equal(groupResource(cms), "configmaps");
    assert.equal(groupResource(ci), "config.concierge.pinniped.dev/credentialissuers");
  });

  it("makes and splits queue keys", () => {
    assert.equal(keyOf({ metadata: { name: "a", namespace: "ns" } }), "ns/a");
    assert.equal(keyOf({ metadata: { name: "a" } }), "a");
    assert.equal(keyFor("a"), "a");
    assert.deepEqual(splitKey("ns/a"), { namespace: "ns", name: "a" });
    assert.deepEqual(splitKey("a"), { name: "a" });
  });

  it("freezes deeply", () => {
    const o = deepFreeze({ a: { b: [1, { c: 2 }] } });
    assert.ok(Object.isFrozen(o.a.b[1]));
  });

  it("caches objects without managedFields, frozen, the rest untouched", () => {
    const o = cacheable({
      kind: "Secret",
      metadata: {
        name: "s",
        labels: { a: "b" },
        managedFields: [{ manager: "kubectl", operation: "Apply", fieldsV1: { "f:data": {} } }],
      },
      data: { k: "dg==" },
    });
    assert.deepEqual(o, { kind: "Secret", metadata: { name: "s", labels: { a: "b" } }, data: { k: "dg==" } });
    assert.ok(Object.isFrozen(o.metadata.labels));
    const frozen = deepFreeze({ metadata: { name: "f", managedFields: [] } });
    assert.equal(cacheable(frozen), frozen, "an object frozen before is kept as it is");
  });
});
