import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  emptyList,
  emptyTable,
  kindFor,
  openAPIV2,
  openAPIV3GroupVersion,
  openAPIV3Index,
} from "./discovery.ts";

const login = "login.concierge.pinniped.dev";
const identity = "identity.concierge.pinniped.dev";

describe("discovery", () => {
  it("lists both groups, each with v1alpha1 preferred", () => {
    assert.deepEqual(apiGroupList(), {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: [login, identity].map((name) => ({
        name,
        versions: [{ groupVersion: `${name}/v1alpha1`, version: "v1alpha1" }],
        preferredVersion: { groupVersion: `${name}/v1alpha1`, version: "v1alpha1" },
      })),
    });
    assert.equal(apiGroup(login)?.kind, "APIGroup");
    assert.equal(apiGroup("apps"), undefined);
  });

  it("describes each resource as upstream serves it", () => {
    assert.deepEqual(apiResourceList(login, "v1alpha1"), {
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: `${login}/v1alpha1`,
      resources: [
        {
          name: "tokencredentialrequests",
          singularName: "tokencredentialrequest",
          namespaced: false,
          kind: "TokenCredentialRequest",
          verbs: ["create", "list"],
          categories: ["pinniped"],
        },
      ],
    });
    assert.deepEqual(apiResourceList(identity, "v1alpha1")?.resources, [
      {
        name: "whoamirequests",
        singularName: "whoamirequest",
        namespaced: false,
        kind: "WhoAmIRequest",
        verbs: ["create", "list"],
        categories: ["pinniped"],
      },
    ]);
    assert.equal(apiResourceList(login, "v1"), undefined);
  });

  it("answers list with upstream's empty list, or an empty Table", () => {
    const k = kindFor(login, "v1alpha1", "tokencredentialrequests")!;
    assert.deepEqual(emptyList(k), {
      kind: "TokenCredentialRequestList",
      apiVersion: `${login}/v1alpha1`,
      metadata: { resourceVersion: "0" },
      items: [],
    });
    const table = emptyTable(k, "v1");
    assert.equal(table.apiVersion, "meta.k8s.io/v1");
    assert.deepEqual(
      table.columnDefinitions.map((c) => [c.name, c.type, c.format]),
      [
        ["Name", "string", "name"],
        ["Created At", "date", ""],
      ],
    );
    assert.deepEqual(table.rows, []);
  });
});

describe("OpenAPI", () => {
  const gvkOf = (schema: unknown) =>
    (schema as { "x-kubernetes-group-version-kind": unknown })["x-kubernetes-group-version-kind"];

  it("v2 has every kind and list with its group-version-kind, and only local references", () => {
    const doc = openAPIV2();
    assert.equal(doc.swagger, "2.0");
    const defs = doc.definitions;
    assert.deepEqual(gvkOf(defs["dev.pinniped.concierge.login.v1alpha1.TokenCredentialRequest"]), [
      { group: login, kind: "TokenCredentialRequest", version: "v1alpha1" },
    ]);
    assert.deepEqual(gvkOf(defs["dev.pinniped.concierge.identity.v1alpha1.WhoAmIRequestList"]), [
      { group: identity, kind: "WhoAmIRequestList", version: "v1alpha1" },
    ]);
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(refs.length > 0);
    for (const ref of refs) assert.ok(ref.replace("#/definitions/", "") in defs, ref);
    assert.ok(`/apis/${login}/v1alpha1/tokencredentialrequests` in doc.paths);
  });

  it("v3 has one self-contained document per group version, indexed by hash", () => {
    const index = openAPIV3Index();
    assert.deepEqual(Object.keys(index.paths).sort(), [
      `apis/${identity}/v1alpha1`,
      `apis/${login}/v1alpha1`,
    ]);
    const doc = openAPIV3GroupVersion(login, "v1alpha1")!;
    assert.equal(doc.openapi, "3.0.0");
    const schemas = doc.components.schemas;
    assert.deepEqual(Object.keys(schemas).sort(), [
      "dev.pinniped.concierge.login.v1alpha1.TokenCredentialRequest",
      "dev.pinniped.concierge.login.v1alpha1.TokenCredentialRequestList",
    ]);
    const tcr = schemas["dev.pinniped.concierge.login.v1alpha1.TokenCredentialRequest"] as {
      properties: { spec: { properties: Record<string, unknown> } };
    };
    // certificateSigningRequest (ours) is how a client discovers that it may keep its key.
    assert.deepEqual(Object.keys(tcr.properties.spec.properties), [
      "token",
      "certificateSigningRequest",
      "authenticator",
    ]);
    for (const [, m] of JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) {
      assert.ok(m! in schemas, m);
    }
    const hash = createHash("sha512").update(JSON.stringify(doc)).digest("hex").toUpperCase();
    assert.equal(
      index.paths[`apis/${login}/v1alpha1`]?.serverRelativeURL,
      `/openapi/v3/apis/${login}/v1alpha1?hash=${hash}`,
    );
    assert.equal(openAPIV3GroupVersion("apps", "v1"), undefined);
  });
});
