// The aggregated API, the TokenCredentialRequest and the admission webhook under another API
// group suffix: served as `<prefix>.concierge.acme.example`, never as upstream's own groups.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AuthenticatorCache, authenticationGroup } from "../authenticators/cache.ts";
import { GroupSuffix } from "../kube/groupsuffix.ts";
import { reviewAdmission } from "../webhooks/admission.ts";
import {
  apiGroupList,
  apiResourceList,
  emptyList,
  kindFor,
  openAPIV2,
  openAPIV3Index,
  servedKinds,
} from "./discovery.ts";
import { apiServiceNamesFor } from "./main.ts";
import { createTokenCredentialRequestHandler } from "./tokencredentialrequest.ts";
import { createWhoAmIRequest } from "./whoamirequest.ts";

const acme = new GroupSuffix("acme.example");
const kinds = servedKinds(acme);

describe("API group suffix at the server's edges", () => {
  it("discovery and OpenAPI name only the served groups", () => {
    const groups = apiGroupList(kinds).groups.map((g) => g.name);
    assert.deepEqual(groups.sort(), ["identity.concierge.acme.example", "login.concierge.acme.example"]);
    assert.equal(apiResourceList("login.concierge.pinniped.dev", "v1alpha1", kinds), undefined);
    assert.equal(
      apiResourceList("login.concierge.acme.example", "v1alpha1", kinds)?.resources[0]?.name,
      "tokencredentialrequests",
    );
    assert.equal(
      kindFor("login.concierge.pinniped.dev", "v1alpha1", "tokencredentialrequests", kinds),
      undefined,
    );
    const tcr = kindFor("login.concierge.acme.example", "v1alpha1", "tokencredentialrequests", kinds);
    assert.equal(emptyList(tcr!).apiVersion, "login.concierge.acme.example/v1alpha1");
    assert.ok(Object.keys(openAPIV2(kinds).paths).every((p) => p.includes(".concierge.acme.example/")));
    assert.deepEqual(Object.keys(openAPIV3Index(kinds).paths).sort(), [
      "apis/identity.concierge.acme.example/v1alpha1",
      "apis/login.concierge.acme.example/v1alpha1",
    ]);
    assert.deepEqual(apiServiceNamesFor(acme), [
      "v1alpha1.login.concierge.acme.example",
      "v1alpha1.identity.concierge.acme.example",
    ]);
  });

  it("a TokenCredentialRequest names the served authenticator group; upstream's misses", async () => {
    const cache = new AuthenticatorCache();
    cache.store(
      { apiGroup: authenticationGroup, kind: "WebhookAuthenticator", name: "hook" },
      {
        fingerprint: "f",
        authenticator: {
          authenticateToken: async () => ({ authenticated: true, user: { username: "alice", groups: [] } }),
          close: () => {},
        },
      },
    );
    const handler = createTokenCredentialRequestHandler({
      authenticators: cache,
      groups: acme,
      issuer: {
        issue: async () => ({
          ok: true,
          credential: {
            type: "certificate",
            certificatePEM: "c",
            keyPEM: "k",
            notAfter: new Date(Date.now() + 60_000),
          },
        }),
      },
    });
    const request = (apiVersion: string, apiGroup: string) =>
      handler(
        {
          apiVersion,
          kind: "TokenCredentialRequest",
          spec: { token: "t", authenticator: { apiGroup, kind: "WebhookAuthenticator", name: "hook" } },
        },
        { dryRun: [], auditID: "a" },
      );
    const ok = await request(
      "login.concierge.acme.example/v1alpha1",
      "authentication.concierge.acme.example",
    );
    const body = ok.body as { apiVersion: string; status: { credential?: unknown; message?: string } };
    assert.equal(body.apiVersion, "login.concierge.acme.example/v1alpha1");
    assert.ok(body.status.credential, JSON.stringify(body));

    const upstreams = await request(
      "login.concierge.acme.example/v1alpha1",
      "authentication.concierge.pinniped.dev",
    );
    assert.equal((upstreams.body as { status: { message: string } }).status.message, "authentication failed");

    const wrongVersion = await request(
      "login.concierge.pinniped.dev/v1alpha1",
      "authentication.concierge.acme.example",
    );
    assert.equal(wrongVersion.code, 400);
    assert.match(
      JSON.stringify(wrongVersion.body),
      /apiVersion must be \\"login.concierge.acme.example\/v1alpha1\\"/,
    );
  });

  it("a WhoAmIRequest answers in the served group", () => {
    const who = kindFor("identity.concierge.acme.example", "v1alpha1", "whoamirequests", kinds)!;
    const res = createWhoAmIRequest(
      { apiVersion: "identity.concierge.acme.example/v1alpha1", kind: "WhoAmIRequest" },
      { dryRun: [], user: { username: "alice", groups: [], extra: {} } },
      who,
    );
    assert.equal((res.body as { apiVersion: string }).apiVersion, "identity.concierge.acme.example/v1alpha1");
  });

  it("the admission webhook validates the served group's kinds and refuses upstream's", () => {
    const review = (group: string) => ({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: {
        uid: "u",
        kind: { group, version: "v1alpha1", kind: "WebhookAuthenticator" },
        operation: "CREATE",
        object: {
          apiVersion: `${group}/v1alpha1`,
          kind: "WebhookAuthenticator",
          metadata: { name: "hook" },
          spec: { endpoint: "https://hook.example.com" },
        },
      },
    });
    const served = acme.served(authenticationGroup);
    const validated = reviewAdmission(review(served), { group: served });
    assert.equal(validated.kind, "WebhookAuthenticator");
    assert.equal(validated.review.response.status, undefined);
    const foreign = reviewAdmission(review(authenticationGroup), { group: served });
    assert.equal(foreign.review.response.status?.code, 400);
    assert.match(
      foreign.review.response.status?.message ?? "",
      /validates only JWTAuthenticator and WebhookAuthenticator in authentication.concierge.acme.example\/v1alpha1/,
    );
  });
});
