import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { apiStatusError, FakeRestClient } from "../controllers/runtime/testing.ts";
import { resourceClient } from "./client.ts";
import { isConflict } from "./rest.ts";

const secrets = { group: "", version: "v1", resource: "secrets" };
const services = { group: "", version: "v1", resource: "services" };

describe("resourceClient", () => {
  it("builds each verb's request", async () => {
    const fake = new FakeRestClient();
    const client = resourceClient(fake, secrets, "ns");
    await client.get("a");
    await client.list({ labelSelector: "app=x" });
    await client.create({ metadata: { name: "a" } }, { fieldManager: "me" });
    await client.update("a", { metadata: { name: "a", resourceVersion: "1" } });
    await client.mergePatch("a", { data: null }, { fieldManager: "me" });
    await client.delete("a", { preconditions: { uid: "u" } });
    assert.deepEqual(
      fake.requests.map((r) => [r.method, r.path, r.query, r.contentType, r.json]),
      [
        ["GET", "/api/v1/namespaces/ns/secrets/a", undefined, undefined, undefined],
        [
          "GET",
          "/api/v1/namespaces/ns/secrets",
          { labelSelector: "app=x", fieldSelector: undefined },
          undefined,
          undefined,
        ],
        [
          "POST",
          "/api/v1/namespaces/ns/secrets",
          { fieldManager: "me" },
          undefined,
          { metadata: { name: "a" } },
        ],
        [
          "PUT",
          "/api/v1/namespaces/ns/secrets/a",
          undefined,
          undefined,
          { metadata: { name: "a", resourceVersion: "1" } },
        ],
        [
          "PATCH",
          "/api/v1/namespaces/ns/secrets/a",
          { fieldManager: "me" },
          "application/merge-patch+json",
          { data: null },
        ],
        [
          "DELETE",
          "/api/v1/namespaces/ns/secrets/a",
          undefined,
          undefined,
          { apiVersion: "v1", kind: "DeleteOptions", preconditions: { uid: "u" } },
        ],
      ],
    );
  });

  it("reads a missing object as absent and deleting it as done already", async () => {
    const fake = new FakeRestClient().react(() => {
      throw apiStatusError(404, "NotFound");
    });
    const client = resourceClient(fake, services, "ns");
    assert.equal(await client.get("gone"), undefined);
    assert.equal(await client.delete("gone"), false);
  });

  it("throws a lost race, for the controller to requeue", async () => {
    const fake = new FakeRestClient().react(() => {
      throw apiStatusError(409, "Conflict");
    });
    const client = resourceClient(fake, services, "ns");
    await assert.rejects(client.update("a", { metadata: { name: "a" } }), isConflict);
    await assert.rejects(client.delete("a", { preconditions: { uid: "old" } }), isConflict);
  });

  it("lists an empty collection", async () => {
    const client = resourceClient(new FakeRestClient(), { ...services, namespace: "from-ref" });
    assert.deepEqual(await client.list(), []);
  });
});
