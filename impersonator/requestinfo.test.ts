import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseRequestInfo, RequestInfoError } from "./requestinfo.ts";

const pick = (method: string, target: string) => {
  const i = parseRequestInfo(method, target);
  return [i.verb, i.apiGroup, i.apiVersion, i.namespace, i.resource, i.name, i.subresource].join("|");
};

describe("parseRequestInfo", () => {
  const cases: [string, string, string][] = [
    ["GET", "/api/v1/namespaces", "list||v1||namespaces||"],
    ["GET", "/api/v1/namespaces/ns", "get||v1|ns|namespaces|ns|"],
    ["GET", "/api/v1/namespaces/ns/status", "get||v1|ns|namespaces|ns|status"],
    ["HEAD", "/api/v1/namespaces/ns/pods/p/log", "get||v1|ns|pods|p|log"],
    ["GET", "/api/v1/pods?watch=1", "watch||v1||pods||"],
    ["GET", "/api/v1/pods?watch=", "watch||v1||pods||"],
    ["GET", "/api/v1/pods?watch=false", "list||v1||pods||"],
    ["GET", "/api/v1/pods?watch=0", "list||v1||pods||"],
    ["GET", "/api/v1/namespaces/n/pods?fieldSelector=metadata.name%3Dp&watch=true", "watch||v1|n|pods|p|"],
    ["GET", "/api/v1/namespaces/n/pods?fieldSelector=metadata.name!%3Dp", "list||v1|n|pods||"],
    ["GET", "/api/v1/namespaces/n/pods?fieldSelector=metadata.name%3Da%2Fb", "list||v1|n|pods||"],
    ["GET", "/api/v1/proxy/namespaces/n/pods/p/x/y", "proxy||v1|n|pods|p|"],
    ["GET", "/api/v1/namespaces/n/pods/p/proxy/x", "get||v1|n|pods|p|proxy"],
    ["DELETE", "/apis/batch/v1/namespaces/n/jobs", "deletecollection|batch|v1|n|jobs||"],
    ["DELETE", "/apis/batch/v1/namespaces/n/jobs/j", "delete|batch|v1|n|jobs|j|"],
    [
      "POST",
      "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests",
      "create|login.concierge.pinniped.dev|v1alpha1||tokencredentialrequests||",
    ],
    ["CONNECT", "/api/v1/pods", "||v1||pods||"],
  ];
  for (const [method, target, expected] of cases) {
    it(`${method} ${target}`, () => assert.equal(pick(method, target), expected));
  }

  it("treats other paths as non-resource requests with the method as verb", () => {
    for (const target of [
      "/",
      "/healthz",
      "/api",
      "/api/v1",
      "/apis/apps",
      "/apis/apps/v1",
      "/openapi/v2",
      "/version?x",
    ]) {
      const info = parseRequestInfo("GET", target);
      assert.equal(info.isResourceRequest, false, target);
      assert.equal(info.verb, "get");
      assert.equal(info.path, target.split("?")[0]);
    }
    assert.equal(parseRequestInfo("OPTIONS", "/healthz").verb, "options");
  });

  it("refuses a special verb with nothing after it", () => {
    assert.throws(() => parseRequestInfo("GET", "/api/v1/watch"), RequestInfoError);
  });
});
