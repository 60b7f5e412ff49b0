import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { apiStatusError, FakeRestClient } from "../controllers/runtime/testing.ts";
import { FakeClock, settle } from "../kube/clock.ts";
import type { UserInfo } from "../kube/userinfo.ts";
import { Metrics } from "../observability/metrics.ts";
import { type Attributes, type AuthorizerOptions, createAuthorizer, decisionMarker } from "./authz.ts";

const sarPath = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

interface Spec {
  user: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
  resourceAttributes?: Record<string, string>;
}

const alice: UserInfo = { username: "alice", groups: ["devs"], extra: {} };
const getPods: Attributes = {
  verb: "get",
  resourceRequest: true,
  namespace: "ns",
  apiVersion: "v1",
  resource: "pods",
};
const signal = () => new AbortController().signal;

/** A fake kube-apiserver whose SubjectAccessReview answers `decide` gives, counted. */
function setup(
  decide: (spec: Spec) => unknown = () => ({ allowed: true }),
  options: Partial<AuthorizerOptions> = {},
) {
  const client = new FakeRestClient();
  client.react((req) =>
    req.path === sarPath ? { status: decide((req.json as { spec: Spec }).spec) } : undefined,
  );
  const clock = new FakeClock();
  const metrics = new Metrics();
  const authorize = createAuthorizer({ client, clock, metrics, ...options });
  const sent = () => client.requests.filter((r) => r.path === sarPath).length;
  return { client, clock, metrics, authorize, sent };
}

describe("SubjectAccessReview cache", () => {
  it("answers a repeated question from the cache within the TTL, and asks again after it", async () => {
    const { clock, metrics, authorize, sent } = setup();
    assert.deepEqual(await authorize(alice, getPods, signal()), { allowed: true, reason: decisionMarker });
    await clock.advance(9_999);
    assert.deepEqual(await authorize(alice, getPods, signal()), { allowed: true, reason: decisionMarker });
    assert.equal(sent(), 1);
    await clock.advance(1);
    await authorize(alice, getPods, signal());
    assert.equal(sent(), 2);
    const text = await metrics.text();
    assert.match(text, /impersonation_proxy_subject_access_review_cache_total\{result="hit"\} 1$/m);
    assert.match(text, /impersonation_proxy_subject_access_review_cache_total\{result="miss"\} 2$/m);
  });

  it("caches denials with their reason, for the deny TTL rather than the allow TTL", async () => {
    let allowed = false;
    const { clock, authorize, sent } = setup(() => (allowed ? { allowed } : { allowed, reason: "no RBAC" }), {
      allowCacheTTLMs: 60_000,
      denyCacheTTLMs: 2_000,
    });
    const denied = { allowed: false, reason: `no RBAC, ${decisionMarker}` };
    assert.deepEqual(await authorize(alice, getPods, signal()), denied);
    allowed = true; // an RBAC grant: invisible until the denial expires, as with upstream's webhook
    await clock.advance(1_999);
    assert.deepEqual(await authorize(alice, getPods, signal()), denied);
    assert.equal(sent(), 1);
    await clock.advance(1);
    assert.equal((await authorize(alice, getPods, signal())).allowed, true);
    allowed = false;
    await clock.advance(59_999);
    assert.equal(
      (await authorize(alice, getPods, signal())).allowed,
      true,
      "the allow TTL is the longer one",
    );
    assert.equal(sent(), 2);
  });

  it("a TTL of 0 disables caching of that kind of answer only", async () => {
    let allowed = true;
    const { authorize, sent } = setup(() => ({ allowed }), { allowCacheTTLMs: 0 });
    await authorize(alice, getPods, signal());
    await authorize(alice, getPods, signal());
    assert.equal(sent(), 2);
    allowed = false;
    await authorize(alice, getPods, signal());
    await authorize(alice, getPods, signal());
    assert.equal(sent(), 3);
  });

  it("never caches a failed review", async () => {
    let fail = true;
    const { authorize, sent } = setup(() => {
      if (fail) throw apiStatusError(500, "InternalError");
      return { allowed: true };
    });
    await assert.rejects(authorize(alice, getPods, signal()), /InternalError/);
    await assert.rejects(authorize(alice, getPods, signal()), /InternalError/);
    fail = false;
    assert.equal((await authorize(alice, getPods, signal())).allowed, true);
    assert.equal(sent(), 3);
  });

  it("never shares an entry between different users, groups, uids, extras or attributes", async () => {
    const { authorize, sent } = setup((spec) => ({ allowed: spec.user === "alice" && !spec.uid }));
    const variants: [UserInfo, Attributes][] = [
      [alice, getPods],
      [{ ...alice, username: "bob" }, getPods],
      [{ ...alice, groups: ["devs", "admins"] }, getPods],
      [{ ...alice, groups: [] }, getPods],
      [{ ...alice, uid: "u1" }, getPods],
      [{ ...alice, extra: { scopes: ["a"] } }, getPods],
      [alice, { ...getPods, verb: "delete" }],
      [alice, { ...getPods, namespace: "other" }],
      [alice, { ...getPods, name: "p" }],
      [alice, { ...getPods, subresource: "log" }],
      [alice, { ...getPods, apiGroup: "apps" }],
      [alice, { verb: "get", resourceRequest: false, path: "/healthz" }],
      [alice, { verb: "get", resourceRequest: false, path: "/version" }],
    ];
    const answers = [];
    for (const [user, attributes] of variants)
      answers.push((await authorize(user, attributes, signal())).allowed);
    assert.equal(sent(), variants.length);
    // Asked again, each variant gets its own answer back, not a neighbour's.
    for (const [i, [user, attributes]] of variants.entries()) {
      assert.equal((await authorize(user, attributes, signal())).allowed, answers[i]);
    }
    assert.equal(sent(), variants.length);
    assert.equal(answers[4], false, "the uid is part of the question");
  });

  it("holds at most cacheSize entries, dropping the oldest first", async () => {
    const { authorize, sent } = setup(undefined, { cacheSize: 2 });
    const user = (username: string): UserInfo => ({ ...alice, username });
    await authorize(user("a"), getPods, signal());
    await authorize(user("b"), getPods, signal());
    await authorize(user("c"), getPods, signal()); // evicts a
    assert.equal(sent(), 3);
    await authorize(user("b"), getPods, signal());
    await authorize(user("c"), getPods, signal());
    assert.equal(sent(), 3);
    await authorize(user("a"), getPods, signal());
    assert.equal(sent(), 4);
  });

  it("sends one review for identical questions in flight together, and each caller gets a copy", async () => {
    const release = Promise.withResolvers<void>();
    const client = new FakeRestClient();
    client.react(async () => {
      await release.promise;
      return { status: { allowed: true } };
    });
    const metrics = new Metrics();
    const authorize = createAuthorizer({ client, clock: new FakeClock(), metrics });
    const pending = Array.from({ length: 5 }, () => authorize(alice, getPods, signal()));
    const other = authorize({ ...alice, username: "bob" }, getPods, signal());
    await settle();
    assert.equal(client.requests.length, 2);
    release.resolve();
    const results = await Promise.all([...pending, other]);
    assert.ok(results.every((r) => r.allowed));
    results[0]!.allowed = false;
    assert.equal(results[1]!.allowed, true);
    assert.match(
      await metrics.text(),
      /impersonation_proxy_subject_access_review_cache_total\{result="shared"\} 4$/m,
    );
  });

  it("a caller that gives up does not fail the others; the shared review is cancelled when all have", async () => {
    const seen: AbortSignal[] = [];
    const client = new FakeRestClient();
    client.react((req) => {
      seen.push(req.signal!);
      return new Promise(() => {});
    });
    const authorize = createAuthorizer({ client, clock: new FakeClock(), metrics: new Metrics() });
    const first = new AbortController();
    const second = new AbortController();
    const a = authorize(alice, getPods, first.signal);
    const b = authorize(alice, getPods, second.signal);
    await settle();
    assert.equal(seen.length, 1);
    first.abort(new Error("client went away"));
    await assert.rejects(a, /client went away/);
    assert.equal(seen[0]!.aborted, false, "the second caller still waits for it");
    second.abort(new Error("this one too"));
    await assert.rejects(b, /this one too/);
    assert.equal(seen[0]!.aborted, true);
    // Nothing was cached or left in flight: the next caller asks again.
    void authorize(alice, getPods, signal()).catch(() => {});
    await settle();
    assert.equal(seen.length, 2);
  });

  it("an empty verb is denied without a review", async () => {
    const { authorize, sent } = setup();
    assert.deepEqual(await authorize(alice, { ...getPods, verb: "" }, signal()), {
      allowed: false,
      reason: `invalid verb, ${decisionMarker}`,
    });
    assert.equal(sent(), 0);
  });
});
