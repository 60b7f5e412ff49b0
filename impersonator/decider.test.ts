import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import { CertificateAuthority } from "../certs/ca.ts";
import { issueClientCertificate } from "../certs/issue.ts";
import { apiStatusError, FakeRestClient, type RecordedRequest } from "../controllers/runtime/testing.ts";
import { FakeClock } from "../kube/clock.ts";
import { Metrics } from "../observability/metrics.ts";
import { createRequestDecider, type RequestDeciderOptions } from "./decider.ts";
import { refusalResponse } from "./headers.ts";
import type { Decision, Forward, IncomingRequest, Refusal } from "./types.ts";

const marker = "decision made by impersonation-proxy.concierge.pinniped.dev";
const tokenReviewPath = "/apis/authentication.k8s.io/v1/tokenreviews";
const sarPath = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

interface SAR {
  spec: {
    user: string;
    uid?: string;
    groups: string[];
    extra?: Record<string, string[]>;
    resourceAttributes?: Record<string, string>;
    nonResourceAttributes?: Record<string, string>;
  };
}

/** A fake kube-apiserver: tokens map to users; `allow` decides SubjectAccessReviews. */
function fakeAPIServer(
  tokens: Record<
    string,
    { username: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> }
  >,
  allow: (sar: SAR["spec"]) => boolean | { allowed: boolean; reason?: string } = () => true,
) {
  const client = new FakeRestClient();
  client.react((req) => {
    if (req.path === tokenReviewPath) {
      const token = (req.json as { spec: { token: string } }).spec.token;
      const user = tokens[token];
      return { status: user ? { authenticated: true, user } : { authenticated: false, error: "invalid" } };
    }
    if (req.path === sarPath) {
      const answer = allow((req.json as SAR).spec);
      return { status: typeof answer === "boolean" ? { allowed: answer } : answer };
    }
    return undefined;
  });
  return client;
}

const sars = (client: FakeRestClient): SAR["spec"][] =>
  client.requests.filter((r) => r.path === sarPath).map((r) => (r.json as SAR).spec);
const tokenReviews = (client: FakeRestClient): RecordedRequest[] =>
  client.requests.filter((r) => r.path === tokenReviewPath);

function req(method: string, path: string, extra: Partial<IncomingRequest> = {}): IncomingRequest {
  return {
    method,
    path,
    headers: {},
    verifiedClientCertificate: undefined,
    remoteAddress: "10.0.0.1",
    upgrade: false,
    ...extra,
  };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const signal = () => new AbortController().signal;

function decider(client: FakeRestClient, options: Partial<RequestDeciderOptions> = {}) {
  return createRequestDecider({
    client,
    proxyToken: () => "proxy-token",
    clock: new FakeClock(),
    metrics: new Metrics(),
    ...options,
  });
}

/** A Status as kube-apiserver writes it: JSON and a trailing newline. */
const status = (json: string) => ({
  code: (JSON.parse(json) as { code: number }).code,
  contentType: "application/json",
  body: `${json}\n`,
});

function forwarded(decision: Decision): Forward {
  assert.equal(decision.action, "forward", JSON.stringify(decision));
  return decision as Forward;
}
function refused(decision: Decision): Refusal {
  assert.equal(decision.action, "refuse", JSON.stringify(decision));
  return decision as Refusal;
}

let certFor: (username: string, groups: string[]) => Promise<X509Certificate>;
before(async () => {
  const ca = await CertificateAuthority.create("test client CA", 3_600_000);
  certFor = async (username, groups) =>
    new X509Certificate((await issueClientCertificate(ca, { username, groups })).certPEM);
});

const alice = { username: "alice", groups: ["devs"] };
const sa = {
  username: "system:serviceaccount:ns:bot",
  uid: "uid-1",
  groups: ["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"],
  extra: { "authentication.kubernetes.io/credential-id": ["JTI=x"] },
};

describe("authentication", () => {
  it("a verified certificate wins over a bearer token, which is never reviewed", async () => {
    const client = fakeAPIServer({ good: sa });
    const cert = await certFor("carol", ["dev", "ops"]);
    const d = forwarded(
      await decider(client)(
        req("GET", "/api/v1/namespaces", { verifiedClientCertificate: cert, headers: bearer("bad") }),
        signal(),
      ),
    );
    assert.equal(tokenReviews(client).length, 0);
    const credentialID = `X509SHA256=${createHash("sha256").update(cert.raw).digest("hex")}`;
    assert.deepEqual(d.audit.user, {
      username: "carol",
      groups: ["dev", "ops", "system:authenticated"],
      extra: { "authentication.kubernetes.io/credential-id": [credentialID] },
    });
    assert.equal(d.audit.authenticatedBy, "certificate");
    assert.deepEqual(d.headers, {
      Authorization: "Bearer proxy-token",
      "Impersonate-User": "carol",
      "Impersonate-Group": ["dev", "ops", "system:authenticated"],
      "Impersonate-Extra-authentication.kubernetes.io%2Fcredential-id": [credentialID],
    });
    assert.deepEqual(sars(client)[0]?.extra, {
      "authentication.kubernetes.io/credential-id": [credentialID],
    });
  });

  it("reviews a bearer token with no audiences and forwards the user it belongs to", async () => {
    const client = fakeAPIServer({ tok: alice });
    const d = forwarded(
      await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("tok") }), signal()),
    );
    assert.deepEqual(tokenReviews(client)[0]?.json, {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenReview",
      spec: { token: "tok" },
    });
    assert.deepEqual(d.headers, {
      Authorization: "Bearer proxy-token",
      "Impersonate-User": "alice",
      "Impersonate-Group": ["devs", "system:authenticated"],
    });
    assert.equal(d.audit.authenticatedBy, "token");
    assert.equal(d.audit.passthrough, false);
  });

  it("answers 401 for a token kube-apiserver does not accept", async () => {
    const client = fakeAPIServer({});
    const r = refused(
      await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("nope") }), signal()),
    );
    assert.deepEqual(r, { action: "refuse", code: 401, reason: "Unauthorized", message: "Unauthorized" });
    assert.equal(sars(client).length, 0);
  });

  it("caches successful reviews for the TTL, by token, and never caches failures", async () => {
    const users: Record<string, typeof alice> = { tok: alice };
    const client = fakeAPIServer(users);
    const clock = new FakeClock();
    const decide = decider(client, { clock, tokenReviewCacheTTLMs: 10_000 });
    const get = (token: string) => decide(req("GET", "/api/v1/pods", { headers: bearer(token) }), signal());
    forwarded(await get("tok"));
    forwarded(await get("tok"));
    assert.equal(tokenReviews(client).length, 1);
    await clock.advance(10_001);
    forwarded(await get("tok"));
    assert.equal(tokenReviews(client).length, 2);

    refused(await get("later"));
    users.later = alice;
    forwarded(await get("later"));
    assert.equal(tokenReviews(client).length, 4);
  });

  it("evicts the oldest entry when the cache is full", async () => {
    const client = fakeAPIServer({ a: alice, b: alice, c: alice });
    const decide = decider(client, { tokenReviewCacheSize: 2 });
    const get = (token: string) => decide(req("GET", "/api/v1/pods", { headers: bearer(token) }), signal());
    for (const t of ["a", "b", "c", "c", "b", "a"]) forwarded(await get(t));
    assert.deepEqual(
      tokenReviews(client).map((r) => (r.json as { spec: { token: string } }).spec.token),
      ["a", "b", "c", "a"],
    );
  });

  it("answers 503 when the TokenReview fails, and does not cache that", async () => {
    const client = new FakeRestClient().react((r) => {
      if (r.path === tokenReviewPath) throw apiStatusError(500, "InternalError");
      return undefined;
    });
    const r = refused(await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("t") }), signal()));
    assert.equal(r.code, 503);
    assert.equal(r.reason, "ServiceUnavailable");
    assert.equal(
      r.message,
      "unable to authenticate the request: kube-apiserver did not answer the token review",
    );
    assert.doesNotMatch(r.message, /\bt\b/);
  });

  it("gives up on a review that hangs after the timeout, and when the client goes away", async () => {
    const client = new FakeRestClient().react(() => new Promise(() => {}));
    const decide = decider(client, { reviewTimeoutMs: 20 });
    const r = refused(await decide(req("GET", "/api/v1/pods", { headers: bearer("t") }), signal()));
    assert.equal(r.code, 503);
    const gone = new AbortController();
    const pending = decider(client)(req("GET", "/api/v1/pods", { headers: bearer("t") }), gone.signal);
    gone.abort();
    assert.equal(refused(await pending).code, 503);
  });

  it("treats Basic auth and an empty bearer token as anonymous", async () => {
    const client = fakeAPIServer({});
    for (const authorization of ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer"]) {
      const r = refused(
        await decider(client)(req("GET", "/api/v1/pods", { headers: { authorization } }), signal()),
      );
      assert.equal(r.code, 401);
    }
    assert.equal(tokenReviews(client).length, 0);
  });
});

describe("anonymous requests", () => {
  const anonymous = async (method: string, path: string) => {
    const client = fakeAPIServer({}, () => false);
    return { client, decision: await decider(client)(req(method, path), signal()) };
  };

  for (const group of ["login.concierge.pinniped.dev", "login.concierge.example.com"]) {
    it(`forwards TokenCredentialRequest create in ${group} as system:anonymous, without a SAR`, async () => {
      const { client, decision } = await anonymous("POST", `/apis/${group}/v1alpha1/tokencredentialrequests`);
      const d = forwarded(decision);
      assert.deepEqual(d.headers, {
        Authorization: "Bearer proxy-token",
        "Impersonate-User": "system:anonymous",
        "Impersonate-Group": ["system:unauthenticated"],
      });
      assert.equal(d.audit.authenticatedBy, "anonymous");
      assert.equal(sars(client).length, 0);
    });
  }

  it("forwards WhoAmIRequest create in identity.concierge.*", async () => {
    forwarded(
      (await anonymous("POST", "/apis/identity.concierge.example.com/v1alpha1/whoamirequests")).decision,
    );
  });

  const unauthorizedBody = { action: "refuse", code: 401, reason: "Unauthorized", message: "Unauthorized" };
  for (const [method, path] of [
    ["GET", "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests/x"],
    ["GET", "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests"],
    ["POST", "/apis/login.pinniped.dev/v1alpha1/tokencredentialrequests"],
    ["POST", "/apis/identity.concierge.pinniped.dev/v1alpha1/tokencredentialrequests"],
    ["POST", "/apis/login.concierge.pinniped.dev/v1alpha1/namespaces/x/tokencredentialrequests/a/status"],
    ["GET", "/api/v1/pods"],
    ["POST", "/api/v1/namespaces/default/pods"],
    ["GET", "/healthz"],
  ] as const) {
    it(`refuses ${method} ${path} with 401`, async () => {
      const { client, decision } = await anonymous(method, path);
      assert.deepEqual(decision, unauthorizedBody);
      assert.equal(client.requests.length, 0);
    });
  }

  it("follows a wider anonymous policy, then authorizes as system:anonymous", async () => {
    const client = fakeAPIServer({}, () => true);
    const d = forwarded(
      await decider(client, { anonymousAllowed: () => true })(req("GET", "/healthz"), signal()),
    );
    assert.deepEqual(sars(client), [
      {
        user: "system:anonymous",
        groups: ["system:unauthenticated"],
        nonResourceAttributes: { path: "/healthz", verb: "get" },
      },
    ]);
    assert.equal(d.headers["Impersonate-User"], "system:anonymous");
  });
});

describe("authorization", () => {
  const cases: [string, string, Record<string, string>][] = [
    [
      "GET",
      "/api/v1/namespaces/ns/pods/p",
      {
        verb: "get",
        namespace: "ns",
        resource: "pods",
        name: "p",
        group: "",
        version: "v1",
        subresource: "",
      },
    ],
    [
      "GET",
      "/api/v1/namespaces/ns/pods?watch=true",
      {
        verb: "watch",
        namespace: "ns",
        resource: "pods",
        name: "",
        group: "",
        version: "v1",
        subresource: "",
      },
    ],
    [
      "GET",
      "/api/v1/watch/namespaces/ns/pods/p",
      {
        verb: "watch",
        namespace: "ns",
        resource: "pods",
        name: "p",
        group: "",
        version: "v1",
        subresource: "",
      },
    ],
    [
      "DELETE",
      "/apis/apps/v1/namespaces/ns/deployments",
      {
        verb: "deletecollection",
        namespace: "ns",
        resource: "deployments",
        name: "",
        group: "apps",
        version: "v1",
        subresource: "",
      },
    ],
    [
      "POST",
      "/api/v1/namespaces/ns/pods/p/exec?command=sh",
      {
        verb: "create",
        namespace: "ns",
        resource: "pods",
        name: "p",
        group: "",
        version: "v1",
        subresource: "exec",
      },
    ],
    [
      "PATCH",
      "/apis/apps/v1/namespaces/ns/deployments/d/status",
      {
        verb: "patch",
        namespace: "ns",
        resource: "deployments",
        name: "d",
        group: "apps",
        version: "v1",
        subresource: "status",
      },
    ],
    [
      "PUT",
      "/api/v1/namespaces/ns/finalize",
      {
        verb: "update",
        namespace: "ns",
        resource: "namespaces",
        name: "ns",
        group: "",
        version: "v1",
        subresource: "finalize",
      },
    ],
  ];
  for (const [method, path, attributes] of cases) {
    it(`builds resourceAttributes for ${method} ${path}`, async () => {
      const client = fakeAPIServer({ tok: alice });
      forwarded(await decider(client)(req(method, path, { headers: bearer("tok") }), signal()));
      assert.deepEqual(sars(client), [
        { user: "alice", groups: ["devs", "system:authenticated"], resourceAttributes: attributes },
      ]);
    });
  }

  it("builds nonResourceAttributes with the lower-case method", async () => {
    const client = fakeAPIServer({ tok: alice });
    forwarded(await decider(client)(req("POST", "/version?x=1", { headers: bearer("tok") }), signal()));
    assert.deepEqual(sars(client)[0]?.nonResourceAttributes, { path: "/version", verb: "post" });
  });

  it("sends the user's uid and extra", async () => {
    const client = fakeAPIServer({ tok: sa });
    forwarded(await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("tok") }), signal()));
    const spec = sars(client)[0]!;
    assert.equal(spec.uid, "uid-1");
    assert.deepEqual(spec.extra, sa.extra);
  });

  it("words a denial as Kubernetes does, with the reason and the marker", async () => {
    const client = fakeAPIServer({ tok: alice }, () => ({
      allowed: false,
      reason: "no RBAC policy matched",
    }));
    const r = refused(
      await decider(client)(
        req("GET", "/api/v1/namespaces/kube-system/secrets/s", { headers: bearer("tok") }),
        signal(),
      ),
    );
    assert.deepEqual(
      refusalResponse(r),
      status(
        `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \\"s\\" is forbidden: User \\"alice\\" cannot get resource \\"secrets\\" in API group \\"\\" in the namespace \\"kube-system\\": no RBAC policy matched, ${marker}","reason":"Forbidden","details":{"name":"s","kind":"secrets"},"code":403}`,
      ),
    );
  });

  it("answers a denied path with upstream's exact body: empty details and a trailing newline", async () => {
    const client = fakeAPIServer({}, () => false);
    const r = refused(
      await decider(client, { anonymousAllowed: () => true })(req("GET", "/healthz/log"), signal()),
    );
    // Upstream's integration test compares these bytes.
    assert.deepEqual(
      refusalResponse(r),
      status(
        `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden: User \\"system:anonymous\\" cannot get path \\"/healthz/log\\": ${marker}","reason":"Forbidden","details":{},"code":403}`,
      ),
    );
  });

  it("answers an anonymous caller the cluster does not let in with upstream's exact 401 body", async () => {
    const r = refused(await decider(fakeAPIServer({}))(req("GET", "/healthz"), signal()));
    assert.deepEqual(
      refusalResponse(r),
      status(
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}',
      ),
    );
  });

  it("words denials of cluster-scoped, grouped and non-resource requests", async () => {
    const client = fakeAPIServer({ tok: alice }, () => false);
    const decide = decider(client);
    const message = async (method: string, path: string) =>
      refused(await decide(req(method, path, { headers: bearer("tok") }), signal())).message;
    assert.equal(
      await message("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
      `clusterroles.rbac.authorization.k8s.io is forbidden: User "alice" cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope: ${marker}`,
    );
    assert.equal(
      await message("GET", "/healthz/log"),
      `forbidden: User "alice" cannot get path "/healthz/log": ${marker}`,
    );
    assert.equal(
      await message("POST", "/api/v1/namespaces/n/pods/p/exec"),
      `pods "p" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "n": ${marker}`,
    );
  });

  it("refuses an empty verb without asking kube-apiserver", async () => {
    const client = fakeAPIServer({ tok: alice });
    const r = refused(
      await decider(client)(req("OPTIONS", "/api/v1/pods", { headers: bearer("tok") }), signal()),
    );
    assert.equal(r.code, 403);
    assert.match(r.message, new RegExp(`: invalid verb, ${marker}$`));
    assert.equal(sars(client).length, 0);
  });

  it("answers 503 when the SubjectAccessReview fails", async () => {
    const client = fakeAPIServer({ tok: alice });
    client.react((r) => {
      if (r.path === sarPath) throw new Error("connect ECONNREFUSED");
      return undefined;
    });
    const r = refused(
      await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("tok") }), signal()),
    );
    assert.deepEqual(r, {
      action: "refuse",
      code: 503,
      reason: "ServiceUnavailable",
      message: "unable to authorize the request: kube-apiserver did not answer the subject-access review",
    });
  });

  it("answers 500 for a URL Kubernetes cannot make sense of", async () => {
    const client = fakeAPIServer({ tok: alice });
    const r = refused(
      await decider(client)(req("GET", "/api/v1/watch", { headers: bearer("tok") }), signal()),
    );
    // kube-apiserver's WithRequestInfo answers with responsewriters.InternalError: plain text.
    assert.deepEqual(refusalResponse(r), {
      code: 500,
      contentType: "text/plain; charset=utf-8",
      body: 'Internal Server Error: "/api/v1/watch": failed to create RequestInfo: unable to determine kind and namespace from url, /api/v1/watch\n',
    });
  });
});

describe("nested impersonation", () => {
  const impersonating = (headers: Record<string, string | string[]>) =>
    req("GET", "/api/v1/namespaces/ns/pods", { headers: { ...bearer("tok"), ...headers } });

  it("checks each requested part and forwards the impersonated identity with the original user", async () => {
    const client = fakeAPIServer({ tok: alice });
    const d = forwarded(
      await decider(client)(
        impersonating({
          "impersonate-user": "bob",
          "impersonate-group": ["g1", "g2"],
          "impersonate-extra-scopes": ["view", "edit"],
          "impersonate-extra-example.com%2fteam": "a",
        }),
        signal(),
      ),
    );
    assert.deepEqual(
      sars(client).map((s) => s.resourceAttributes),
      [
        {
          namespace: "",
          verb: "impersonate",
          group: "",
          version: "",
          resource: "users",
          subresource: "",
          name: "bob",
        },
        {
          namespace: "",
          verb: "impersonate",
          group: "",
          version: "",
          resource: "groups",
          subresource: "",
          name: "g1",
        },
        {
          namespace: "",
          verb: "impersonate",
          group: "",
          version: "",
          resource: "groups",
          subresource: "",
          name: "g2",
        },
        ...["view", "edit"].map((name) => ({
          namespace: "",
          verb: "impersonate",
          group: "authentication.k8s.io",
          version: "v1",
          resource: "userextras",
          subresource: "scopes",
          name,
        })),
        {
          namespace: "",
          verb: "impersonate",
          group: "authentication.k8s.io",
          version: "v1",
          resource: "userextras",
          subresource: "example.com/team",
          name: "a",
        },
        {
          namespace: "ns",
          verb: "list",
          group: "",
          version: "v1",
          resource: "pods",
          subresource: "",
          name: "",
        },
      ],
    );
    // Impersonation checks run as alice; the request itself as bob.
    assert.deepEqual(
      sars(client).map((s) => s.user),
      ["alice", "alice", "alice", "alice", "alice", "alice", "bob"],
    );
    assert.deepEqual(d.headers, {
      Authorization: "Bearer proxy-token",
      "Impersonate-User": "bob",
      "Impersonate-Group": ["g1", "g2", "system:authenticated"],
      "Impersonate-Extra-example.com%2Fteam": ["a"],
      "Impersonate-Extra-original-user-info.impersonation-proxy.concierge.pinniped.dev": [
        '{"username":"alice","groups":["devs","system:authenticated"]}',
      ],
      "Impersonate-Extra-scopes": ["view", "edit"],
    });
    assert.deepEqual(d.audit.impersonatedUser, {
      username: "bob",
      groups: ["g1", "g2", "system:authenticated"],
      extra: { scopes: ["view", "edit"], "example.com/team": ["a"] },
    });
    assert.equal(d.audit.user.username, "alice");
  });

  it("keeps a certificate user's credential ID in the original user, as upstream", async () => {
    const client = fakeAPIServer({});
    const cert = await certFor("carol", ["ops"]);
    const d = forwarded(
      await decider(client)(
        req("GET", "/api/v1/namespaces", {
          verifiedClientCertificate: cert,
          headers: { "impersonate-user": "bob" },
        }),
        signal(),
      ),
    );
    const fingerprint = createHash("sha256").update(cert.raw).digest("hex");
    assert.deepEqual(
      d.headers["Impersonate-Extra-original-user-info.impersonation-proxy.concierge.pinniped.dev"],
      [
        `{"username":"carol","groups":["ops","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["X509SHA256=${fingerprint}"]}}`,
      ],
    );
    assert.equal(d.headers["Impersonate-Extra-authentication.kubernetes.io%2Fcredential-id"], undefined);
  });

  it("checks a service account as serviceaccounts in its namespace and gives it its groups", async () => {
    const client = fakeAPIServer({ tok: alice });
    const d = forwarded(
      await decider(client)(
        impersonating({ "impersonate-user": "system:serviceaccount:kube-system:x" }),
        signal(),
      ),
    );
    assert.deepEqual(sars(client)[0]?.resourceAttributes, {
      namespace: "kube-system",
      verb: "impersonate",
      group: "",
      version: "",
      resource: "serviceaccounts",
      subresource: "",
      name: "x",
    });
    assert.deepEqual(d.headers["Impersonate-Group"], [
      "system:serviceaccounts",
      "system:serviceaccounts:kube-system",
      "system:authenticated",
    ]);
  });

  it("refuses with Kubernetes' impersonation message when a part is not allowed", async () => {
    const client = fakeAPIServer({ tok: alice }, (s) => s.resourceAttributes?.resource !== "groups");
    const r = refused(
      await decider(client)(
        impersonating({ "impersonate-user": "bob", "impersonate-group": "admins" }),
        signal(),
      ),
    );
    assert.deepEqual(
      refusalResponse(r),
      status(
        `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"groups \\"admins\\" is forbidden: User \\"alice\\" cannot impersonate resource \\"groups\\" in API group \\"\\" at the cluster scope: ${marker}","reason":"Forbidden","details":{"name":"admins","kind":"groups"},"code":403}`,
      ),
    );
  });

  it("words a denied extra as userextras/<key> in authentication.k8s.io", async () => {
    const client = fakeAPIServer({ tok: alice }, (s) => s.resourceAttributes?.resource !== "userextras");
    const r = refused(
      await decider(client)(
        impersonating({ "impersonate-user": "bob", "impersonate-extra-scopes": "x" }),
        signal(),
      ),
    );
    assert.equal(
      r.message,
      `userextras.authentication.k8s.io "x" is forbidden: User "alice" cannot impersonate resource "userextras/scopes" in API group "authentication.k8s.io" at the cluster scope: ${marker}`,
    );
  });

  it("refuses groups, extras or a UID without a user, as Kubernetes", async () => {
    const client = fakeAPIServer({ tok: alice });
    const decide = decider(client);
    // kube-apiserver's impersonation filter answers with plain text naming the request URI,
    // which client-go reports as `an error on the server ("Internal Server Error: ...")`.
    const plain = (body: string) => ({
      code: 500,
      contentType: "text/plain; charset=utf-8",
      body: `${body}\n`,
    });
    assert.deepEqual(
      refusalResponse(
        refused(
          await decide(
            req("GET", "/api/v1/namespaces/foo/secrets/bar", {
              headers: { ...bearer("tok"), "impersonate-uid": "some-awesome-uid" },
            }),
            signal(),
          ),
        ),
      ),
      plain(
        'Internal Server Error: "/api/v1/namespaces/foo/secrets/bar": requested [{UID  some-awesome-uid  authentication.k8s.io/v1  }] without impersonating a user',
      ),
    );
    assert.deepEqual(
      refusalResponse(refused(await decide(impersonating({ "impersonate-group": "<g>" }), signal()))),
      plain(
        'Internal Server Error: "/api/v1/namespaces/ns/pods": requested [{Group  &lt;g&gt;    }] without impersonating a user',
      ),
    );
    assert.equal(sars(client).length, 0);
  });

  it("refuses to impersonate a UID even when it is allowed", async () => {
    const client = fakeAPIServer({ tok: alice });
    const r = refused(
      await decider(client)(
        impersonating({ "impersonate-user": "bob", "impersonate-uid": "1234" }),
        signal(),
      ),
    );
    assert.deepEqual(
      refusalResponse(r),
      status(
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Internal error occurred: unimplemented functionality - unable to act as current user","reason":"InternalError","details":{"causes":[{"message":"unimplemented functionality - unable to act as current user"}]},"code":500}',
      ),
    );
  });

  it("lets a token user with a UID impersonate, recording their UID in the original user", async () => {
    const client = fakeAPIServer({ tok: sa });
    const d = forwarded(await decider(client)(impersonating({ "impersonate-user": "bob" }), signal()));
    assert.equal(d.audit.passthrough, false);
    assert.equal(d.headers.Authorization, "Bearer proxy-token");
    const original =
      d.headers["Impersonate-Extra-original-user-info.impersonation-proxy.concierge.pinniped.dev"];
    assert.deepEqual(original, [
      '{"username":"system:serviceaccount:ns:bot","uid":"uid-1","groups":["system:serviceaccounts","system:serviceaccounts:ns","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=x"]}}',
    ]);
  });

  it("never copies the client's Impersonate-* headers, even unrecognised ones", async () => {
    const client = fakeAPIServer({ tok: alice });
    const d = forwarded(
      await decider(client)(
        req("GET", "/api/v1/pods", { headers: { ...bearer("tok"), "impersonate-something": "x" } }),
        signal(),
      ),
    );
    assert.deepEqual(Object.keys(d.headers).sort(), [
      "Authorization",
      "Impersonate-Group",
      "Impersonate-User",
    ]);
    assert.equal(d.headers["Impersonate-User"], "alice");
  });
});

describe("forwarding", () => {
  it("passes a token user with a UID through with their own token and no impersonation", async () => {
    const client = fakeAPIServer({ "sa-token": sa });
    const d = forwarded(
      await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("sa-token") }), signal()),
    );
    assert.deepEqual(d.headers, { Authorization: "Bearer sa-token" });
    assert.deepEqual(d.audit, {
      user: sa,
      authenticatedBy: "token",
      passthrough: true,
      verb: "list",
      resource: "pods",
    });
    assert.equal(tokenReviews(client).length, 1);
  });

  it("passes through even without a proxy token", async () => {
    const client = fakeAPIServer({ "sa-token": sa });
    forwarded(
      await decider(client, { proxyToken: () => undefined })(
        req("GET", "/api/v1/pods", { headers: bearer("sa-token") }),
        signal(),
      ),
    );
  });

  it("answers 503 when no proxy token is available", async () => {
    const client = fakeAPIServer({ tok: alice });
    const r = refused(
      await decider(client, { proxyToken: () => undefined })(
        req("GET", "/api/v1/pods", { headers: bearer("tok") }),
        signal(),
      ),
    );
    assert.deepEqual(r, {
      action: "refuse",
      code: 503,
      reason: "ServiceUnavailable",
      message: "no impersonator service account token available",
    });
  });

  it("never forwards an empty username", async () => {
    const client = fakeAPIServer({ tok: { username: "" } });
    const r = refused(
      await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("tok") }), signal()),
    );
    assert.equal(r.code, 500);
    assert.equal(
      r.message,
      "Internal error occurred: unimplemented functionality - unable to act as current user",
    );
  });

  for (const key of ["Upper", "has space", "x.impersonation-proxy.concierge.pinniped.dev"]) {
    it(`refuses to forward the extra key ${JSON.stringify(key)}`, async () => {
      const client = fakeAPIServer({ tok: { ...alice, extra: { [key]: ["v"] } } });
      const r = refused(
        await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("tok") }), signal()),
      );
      assert.equal(r.code, 500);
      assert.equal(
        r.message,
        "Internal error occurred: unimplemented functionality - unable to act as current user",
      );
    });
  }

  it("encodes extra keys and keeps every value", async () => {
    const client = fakeAPIServer({
      tok: { ...alice, extra: { "example.com/scopes": ["a", "b"], "x-y_z": ["1"] } },
    });
    const d = forwarded(
      await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("tok") }), signal()),
    );
    assert.deepEqual(d.headers["Impersonate-Extra-example.com%2Fscopes"], ["a", "b"]);
    assert.deepEqual(d.headers["Impersonate-Extra-x-y_z"], ["1"]);
  });

  it("refuses an identity no header can carry", async () => {
    const client = fakeAPIServer({ tok: { username: "eve\r\nImpersonate-User: admin" } });
    const r = refused(
      await decider(client)(req("GET", "/api/v1/pods", { headers: bearer("tok") }), signal()),
    );
    assert.equal(r.code, 500);
  });

  it("counts decisions", async () => {
    const client = fakeAPIServer({ tok: alice });
    const metrics = new Metrics();
    const decide = decider(client, { metrics });
    await decide(req("GET", "/api/v1/pods", { headers: bearer("tok") }), signal());
    await decide(req("GET", "/api/v1/pods"), signal());
    const text = await metrics.text();
    assert.match(
      text,
      /concierge_impersonation_proxy_decisions_total\{outcome="forward",authenticated_by="token"\} 1/,
    );
    assert.match(
      text,
      /concierge_impersonation_proxy_decisions_total\{outcome="unauthorized",authenticated_by="anonymous"\} 1/,
    );
    assert.match(
      text,
      /concierge_impersonation_proxy_token_review_duration_seconds_count\{result="authenticated"\} 1/,
    );
    assert.match(
      text,
      /concierge_impersonation_proxy_subject_access_review_duration_seconds_count\{result="allowed"\} 1/,
    );
  });
});

describe("SubjectAccessReview caching", () => {
  it("reuses the reviews of a repeated request, impersonated parts included, until the TTL passes", async () => {
    const client = fakeAPIServer({ tok: alice });
    const clock = new FakeClock();
    const decide = decider(client, { clock });
    const request = () =>
      req("GET", "/api/v1/namespaces/ns/pods", { headers: { ...bearer("tok"), "impersonate-user": "bob" } });
    forwarded(await decide(request(), signal()));
    assert.equal(sars(client).length, 2, "one for impersonating bob, one for the request as bob");
    forwarded(await decide(request(), signal()));
    assert.equal(sars(client).length, 2);
    await clock.advance(10_000);
    forwarded(await decide(request(), signal()));
    assert.equal(sars(client).length, 4);
  });

  it("passes its allow and deny TTLs to the authorizer", async () => {
    let allowed = false;
    const client = fakeAPIServer({ tok: alice }, () => allowed);
    const clock = new FakeClock();
    const decide = decider(client, { clock, allowCacheTTLMs: 0, denyCacheTTLMs: 30_000 });
    const request = () => req("GET", "/api/v1/namespaces/ns/pods", { headers: bearer("tok") });
    assert.equal(refused(await decide(request(), signal())).code, 403);
    allowed = true;
    await clock.advance(29_999);
    assert.equal(refused(await decide(request(), signal())).code, 403, "the denial is still cached");
    await clock.advance(1);
    forwarded(await decide(request(), signal()));
    forwarded(await decide(request(), signal()));
    assert.equal(sars(client).length, 3, "allowing answers are not cached at a TTL of 0");
  });
});
