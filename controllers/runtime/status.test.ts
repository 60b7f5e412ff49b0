import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deepFreeze, type KubeObject } from "../../kube/resource.ts";
import { SyntheticRequeue } from "./controller.ts";
import { NOT_LEADER_MESSAGE, NotLeaderError } from "./leaderelection.ts";
import { mergePatch, StatusWriter } from "./status.ts";
import { apiStatusError, FakeRestClient } from "./testing.ts";

describe("mergePatch", () => {
  const cases: { name: string; from: unknown; to: unknown; want: unknown }[] = [
    {
      name: "equal objects need no patch",
      from: { a: 1, b: [1, 2] },
      to: { b: [1, 2], a: 1 },
      want: undefined,
    },
    { name: "changed scalar", from: { a: 1, b: 2 }, to: { a: 1, b: 3 }, want: { b: 3 } },
    { name: "added key", from: { a: 1 }, to: { a: 1, c: { d: true } }, want: { c: { d: true } } },
    { name: "removed key becomes null", from: { a: 1, gone: "x" }, to: { a: 1 }, want: { gone: null } },
    {
      name: "nested objects are diffed key by key",
      from: { info: { server: "a", ca: "x", extra: 1 } },
      to: { info: { server: "b", ca: "x" } },
      want: { info: { server: "b", extra: null } },
    },
    {
      name: "arrays are replaced whole",
      from: { conditions: [{ type: "A" }, { type: "B" }] },
      to: { conditions: [{ type: "A" }] },
      want: { conditions: [{ type: "A" }] },
    },
    { name: "undefined fields count as absent", from: { a: 1 }, to: { a: 1, b: undefined }, want: undefined },
    { name: "from nothing", from: undefined, to: { phase: "Ready" }, want: { phase: "Ready" } },
  ];
  for (const tc of cases) {
    it(tc.name, () => assert.deepEqual(mergePatch(tc.from, tc.to), tc.want));
  }
});

const jwtAuthenticators = {
  group: "authentication.concierge.pinniped.dev",
  version: "v1alpha1",
  resource: "jwtauthenticators",
};

const cached: KubeObject = deepFreeze({
  apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
  kind: "JWTAuthenticator",
  metadata: { name: "my-jwt", resourceVersion: "rv-7", generation: 2 },
  spec: { issuer: "https://issuer.example.com" },
  status: { phase: "Error", manual: "edit", conditions: [{ type: "Ready", status: "False" }] },
});

describe("StatusWriter", () => {
  it("does not write when the cached status is already the desired one", async () => {
    const client = new FakeRestClient();
    const writer = new StatusWriter({ client });
    const wrote = await writer.write(
      jwtAuthenticators,
      cached,
      structuredClone(cached.status) as Record<string, unknown>,
    );
    assert.equal(wrote, false);
    assert.deepEqual(client.requests, []);
  });

  it("patches only the status subresource (never spec), with the cached resourceVersion and our field manager", async () => {
    const client = new FakeRestClient();
    const writer = new StatusWriter({ client });
    const wrote = await writer.write(jwtAuthenticators, cached, {
      phase: "Ready",
      conditions: [{ type: "Ready", status: "True" }],
    });
    assert.equal(wrote, true);
    const [req] = client.requests;
    assert.equal(req?.method, "PATCH");
    assert.equal(
      req?.path,
      "/apis/authentication.concierge.pinniped.dev/v1alpha1/jwtauthenticators/my-jwt/status",
    );
    assert.equal(req?.contentType, "application/merge-patch+json");
    assert.deepEqual(req?.query, { fieldManager: "concierge" });
    assert.deepEqual(req?.json, {
      metadata: { resourceVersion: "rv-7" },
      status: { phase: "Ready", manual: null, conditions: [{ type: "Ready", status: "True" }] },
    });
  });

  it("uses the namespaced path for namespaced objects", async () => {
    const client = new FakeRestClient();
    const writer = new StatusWriter({ client });
    const pod = deepFreeze({ metadata: { name: "p", namespace: "ns", resourceVersion: "1" }, status: {} });
    await writer.write({ group: "", version: "v1", resource: "pods" }, pod, { phase: "Running" });
    assert.equal(client.requests[0]?.path, "/api/v1/namespaces/ns/pods/p/status");
  });

  it("turns a conflict into a quiet requeue and passes other errors on", async () => {
    const client = new FakeRestClient().react(() => {
      throw apiStatusError(409, "Conflict");
    });
    const writer = new StatusWriter({ client });
    await assert.rejects(
      writer.write(jwtAuthenticators, cached, { phase: "Ready" }),
      (err) => err === SyntheticRequeue,
    );
    client.react(() => {
      throw apiStatusError(403, "Forbidden");
    });
    await assert.rejects(writer.write(jwtAuthenticators, cached, { phase: "Ready" }), /Forbidden/);
  });

  it("refuses to write on a non-leader", async () => {
    const client = new FakeRestClient();
    const writer = new StatusWriter({
      client,
      guard: {
        assertLeader: () => {
          throw new NotLeaderError();
        },
      },
    });
    await assert.rejects(writer.write(jwtAuthenticators, cached, { phase: "Ready" }), {
      message: NOT_LEADER_MESSAGE,
    });
    assert.deepEqual(client.requests, []);
    assert.equal(
      await writer.write(jwtAuthenticators, cached, structuredClone(cached.status) as never),
      false,
    );
  });
});
