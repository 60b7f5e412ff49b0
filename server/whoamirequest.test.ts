import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RequestUser } from "./frontproxy.ts";
import { createWhoAmIRequest } from "./whoamirequest.ts";

const group = "identity.concierge.pinniped.dev";
const admin: RequestUser = {
  username: "kubernetes-admin",
  groups: ["system:masters", "system:authenticated"],
  extra: {},
};
const body = { apiVersion: `${group}/v1alpha1`, kind: "WhoAmIRequest", metadata: { name: "me" } };

describe("WhoAmIRequest create", () => {
  it("echoes the user kube-apiserver forwarded", () => {
    const res = createWhoAmIRequest(body, { dryRun: [], user: admin });
    assert.equal(res.code, 201);
    assert.deepEqual(res.body, {
      kind: "WhoAmIRequest",
      apiVersion: `${group}/v1alpha1`,
      metadata: { creationTimestamp: null },
      spec: {},
      status: {
        kubernetesUserInfo: {
          user: { username: "kubernetes-admin", groups: ["system:masters", "system:authenticated"] },
        },
      },
    });
  });

  it("copies the UID and extras verbatim, and omits empty groups", () => {
    const user = { username: "u", uid: "1", groups: [], extra: { "example.com/x": ["a", "b"] } };
    const res = createWhoAmIRequest({}, { dryRun: [], user });
    assert.deepEqual((res.body as { status: unknown }).status, {
      kubernetesUserInfo: { user: { username: "u", uid: "1", extra: { "example.com/x": ["a", "b"] } } },
    });
  });

  it("refuses dryRun, a namespace and other kinds", () => {
    const dry = createWhoAmIRequest(body, { dryRun: ["All"], user: admin });
    assert.equal(dry.code, 422);
    assert.equal(
      (dry.body as { message: string }).message,
      `.${group} "" is invalid: dryRun: Unsupported value: []string{"All"}`,
    );
    const ns = createWhoAmIRequest(body, { namespace: "default", dryRun: [], user: admin });
    assert.equal(ns.code, 400);
    assert.equal(
      (ns.body as { message: string }).message,
      "namespace is not allowed on WhoAmIRequest: default",
    );
    const deep = JSON.parse(`${"[".repeat(5000)}${"]".repeat(5000)}`);
    const cases: [unknown, string][] = [
      [null, "the body is null, not a JSON object"],
      [[], "the body is an array, not a JSON object"],
      [deep, "the body is an array, not a JSON object"],
      [true, "the body is a boolean, not a JSON object"],
      [{ ...body, kind: "TokenCredentialRequest" }, 'kind must be "WhoAmIRequest"'],
      [{ ...body, apiVersion: "v1" }, `apiVersion must be "${group}/v1alpha1"`],
      [{ apiVersion: deep }, `apiVersion must be "${group}/v1alpha1"`],
    ];
    for (const [other, why] of cases) {
      const res = createWhoAmIRequest(other, { dryRun: [], user: admin });
      assert.equal(res.code, 400, why);
      assert.equal((res.body as { message: string }).message, `not a WhoAmIRequest: ${why}`);
    }
  });
});
