import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { FakeClock, settle } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import {
  startTokenReviewWebhook,
  type TokenReviewWebhook,
  unusedPort,
} from "../../test/harness/tokenreview-webhook.ts";
import { WebhookTokenAuthenticator, type WebhookTokenAuthenticatorOptions } from "./authenticator.ts";

const alice = {
  username: "alice",
  uid: "uid-1",
  groups: ["devs", "ops"],
  extra: { "authentication.kubernetes.io/credential-id": ["JTI=1"], scopes: ["a", "b"] },
};
const bob = { username: "bob", groups: [] };
const root = { username: "system:admin", groups: [] };
const master = { username: "mallory", groups: ["devs", "system:masters"] };

async function metric(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const data = await metrics.registry.getSingleMetric(`concierge_${name}`)?.get();
  return (data?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("WebhookTokenAuthenticator", () => {
  let webhook: TokenReviewWebhook;
  let metrics: Metrics;
  const open: WebhookTokenAuthenticator[] = [];

  before(async () => {
    webhook = await startTokenReviewWebhook({
      users: { "alice-token": alice, "bob-token": bob, "root-token": root, "master-token": master },
    });
  });
  after(() => webhook.close());
  beforeEach(() => {
    webhook.behave({ mode: "normal" });
    webhook.requests.length = 0;
    metrics = new Metrics();
  });
  afterEach(() => {
    for (const a of open.splice(0)) a.close();
  });

  function authenticator(options: Partial<WebhookTokenAuthenticatorOptions> = {}) {
    const a = new WebhookTokenAuthenticator({
      name: "wa",
      endpoint: webhook.url,
      caPEM: webhook.caPEM,
      metrics,
      retry: { initialMs: 1 },
      random: () => 0,
      ...options,
    });
    open.push(a);
    return a;
  }

  it("POSTs a v1beta1 TokenReview with the token and no audiences to the full endpoint URL", async () => {
    const a = authenticator({ endpoint: `${webhook.url}/deeper?x=1` });
    const result = await a.authenticateToken("alice-token");
    assert.deepEqual(result, { authenticated: true, user: alice }, "uid and extra are passed through");
    assert.deepEqual(webhook.requests, [
      {
        method: "POST",
        path: "/authenticate/deeper?x=1",
        contentType: "application/json",
        apiVersion: "authentication.k8s.io/v1beta1",
        kind: "TokenReview",
        token: "alice-token",
        audiences: undefined,
      },
    ]);
    assert.equal(a.version, "v1beta1");
    assert.equal(
      await metric(metrics, "webhook_authenticator_results_total", { outcome: "authenticated" }),
      1,
    );
    const latency = await metrics.registry
      .getSingleMetric("concierge_webhook_authenticator_request_duration_seconds")
      ?.get();
    assert.ok(
      latency?.values.some(
        (v) =>
          (v as { metricName?: string }).metricName?.endsWith("_count") &&
          v.labels.code === "200" &&
          v.value === 1,
      ),
    );
  });

  it("passes system: names through by default, as upstream, and refuses them under systemPrefixPolicy Reject", async () => {
    const upstreamLike = authenticator();
    assert.deepEqual(await upstreamLike.authenticateToken("root-token"), { authenticated: true, user: root });
    assert.deepEqual(await upstreamLike.authenticateToken("master-token"), {
      authenticated: true,
      user: master,
    });
    const strict = authenticator({ systemPrefixPolicy: "Reject" });
    assert.deepEqual(await strict.authenticateToken("root-token"), {
      authenticated: false,
      reason: 'username "system:admin" has the reserved "system:" prefix',
    });
    assert.deepEqual(await strict.authenticateToken("master-token"), {
      authenticated: false,
      reason: 'group "system:masters" has the reserved "system:" prefix',
    });
    assert.deepEqual(await strict.authenticateToken("alice-token"), { authenticated: true, user: alice });
  });

  it("falls back to v1 when the webhook refuses v1beta1, and keeps using v1", async () => {
    webhook.behave({ mode: "v1-only" });
    const a = authenticator();
    assert.deepEqual(await a.authenticateToken("alice-token"), { authenticated: true, user: alice });
    assert.deepEqual(
      webhook.requests.map((r) => r.apiVersion),
      ["authentication.k8s.io/v1beta1", "authentication.k8s.io/v1"],
    );
    assert.equal(a.version, "v1");
    assert.equal(
      await metric(metrics, "webhook_authenticator_retries_total"),
      0,
      "a fallback is not a retry",
    );
    webhook.requests.length = 0;
    assert.deepEqual(await a.authenticateToken("bob-token"), { authenticated: true, user: bob });
    assert.deepEqual(
      webhook.requests.map((r) => r.apiVersion),
      ["authentication.k8s.io/v1"],
    );
  });

  it("switches to the version the webhook answers in", async () => {
    webhook.behave({
      mode: "fixed",
      status: 200,
      body: JSON.stringify({
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenReview",
        status: { authenticated: true, user: { username: "carol" } },
      }),
    });
    const a = authenticator();
    assert.deepEqual(await a.authenticateToken("any"), {
      authenticated: true,
      user: { username: "carol", groups: [] },
    });
    assert.equal(a.version, "v1");
  });

  it("retries 5xx and 429 with backoff, then succeeds", async () => {
    webhook.behave({ mode: "fail-then-ok", failures: 2, status: 503 });
    const a = authenticator();
    assert.deepEqual(await a.authenticateToken("alice-token"), { authenticated: true, user: alice });
    assert.equal(webhook.requests.length, 3);
    assert.equal(await metric(metrics, "webhook_authenticator_retries_total", { authenticator: "wa" }), 2);

    webhook.requests.length = 0;
    webhook.behave({ mode: "fail-then-ok", failures: 1, status: 429 });
    assert.equal((await a.authenticateToken("bob-token")).authenticated, true);
    assert.equal(webhook.requests.length, 2);
  });

  it("waits 500 ms × 1.5ⁿ with up to 20 % jitter between attempts, 5 attempts at most", async () => {
    const clock = new FakeClock();
    webhook.behave({ mode: "fail-then-ok", failures: 100, status: 500 });
    const a = authenticator({ retry: {}, clock, random: () => 1 });
    const pending = a.authenticateToken("alice-token");
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = clock.now();
      for (let turns = 0; clock.nextDue() === undefined; turns++) {
        assert.ok(turns < 1000, "a backoff timer is scheduled");
        await settle(1);
      }
      delays.push((clock.nextDue() ?? 0) - before);
      await clock.advance((clock.nextDue() ?? 0) - before);
    }
    const result = await pending;
    assert.deepEqual(delays, [600, 900, 1350, 2025]);
    assert.equal(webhook.requests.length, 5);
    assert.deepEqual(result, {
      authenticated: false,
      reason: "webhook answered HTTP 500 to a v1beta1 TokenReview (after 5 attempts)",
    });
    assert.equal(await metric(metrics, "webhook_authenticator_results_total", { outcome: "error" }), 1);
  });

  it("never retries a definitive answer: authenticated false, 401, 403", async () => {
    const a = authenticator();
    assert.deepEqual(await a.authenticateToken("wrong-token"), {
      authenticated: false,
      reason: "webhook did not authenticate the token: unknown token",
    });
    assert.equal(webhook.requests.length, 1);
    assert.equal(await metric(metrics, "webhook_authenticator_results_total", { outcome: "rejected" }), 1);
    for (const status of [401, 403]) {
      webhook.requests.length = 0;
      webhook.behave({ mode: "fixed", status, body: "{}" });
      assert.deepEqual(await a.authenticateToken("alice-token"), {
        authenticated: false,
        reason: `webhook answered HTTP ${status} to a v1beta1 TokenReview`,
      });
      assert.equal(webhook.requests.length, 1);
    }
    assert.equal(await metric(metrics, "webhook_authenticator_retries_total"), 0);
  });

  it("asks once in each version on 400, and fails without retrying", async () => {
    webhook.behave({ mode: "fixed", status: 400, body: "{}" });
    const a = authenticator();
    assert.deepEqual(await a.authenticateToken("alice-token"), {
      authenticated: false,
      reason: "webhook answered HTTP 400 to a v1 TokenReview",
    });
    assert.equal(webhook.requests.length, 2);
    assert.equal(a.version, "v1beta1", "nothing was learned");
  });

  it("times out a slow webhook and does not retry the timeout", async () => {
    webhook.behave({ mode: "slow", delayMs: 2_000 });
    const a = authenticator({ timeoutMs: 100 });
    const started = Date.now();
    assert.deepEqual(await a.authenticateToken("alice-token"), {
      authenticated: false,
      reason: "webhook did not answer within 100 ms",
    });
    assert.ok(Date.now() - started < 1_500);
    assert.equal(webhook.requests.length, 1);
  });

  it("remembers a success for the TTL, keyed by the token's hash; never a failure", async () => {
    const clock = new FakeClock();
    const a = authenticator({ clock, successCacheTTLMs: 10_000 });
    assert.equal((await a.authenticateToken("alice-token")).authenticated, true);
    clock.step(9_999);
    const hit = await a.authenticateToken("alice-token");
    assert.deepEqual(hit, { authenticated: true, user: alice });
    assert.equal(webhook.requests.length, 1, "answered from the cache");
    assert.equal(await metric(metrics, "webhook_authenticator_cache_hits_total", { source: "cache" }), 1);
    if (hit.authenticated) hit.user.groups.push("mutated");
    assert.deepEqual(await a.authenticateToken("alice-token"), { authenticated: true, user: alice });

    clock.step(1);
    assert.equal((await a.authenticateToken("alice-token")).authenticated, true);
    assert.equal(webhook.requests.length, 2, "expired");

    await a.authenticateToken("wrong-token");
    await a.authenticateToken("wrong-token");
    assert.equal(webhook.requests.length, 4, "failures are asked again");
  });

  it("joins concurrent reviews of one token into one request", async () => {
    webhook.behave({ mode: "slow", delayMs: 100 });
    const a = authenticator();
    const results = await Promise.all([
      a.authenticateToken("alice-token"),
      a.authenticateToken("alice-token"),
    ]);
    assert.deepEqual(results, [
      { authenticated: true, user: alice },
      { authenticated: true, user: alice },
    ]);
    assert.notEqual(results[0], results[1]);
    assert.equal(webhook.requests.length, 1);
    assert.equal(await metric(metrics, "webhook_authenticator_cache_hits_total", { source: "inflight" }), 1);
  });

  it("gives up when the caller's signal aborts", async () => {
    webhook.behave({ mode: "slow", delayMs: 1_000 });
    const a = authenticator();
    const abort = new AbortController();
    const pending = a.authenticateToken("alice-token", abort.signal);
    setTimeout(() => abort.abort(), 20);
    assert.deepEqual(await pending, { authenticated: false, reason: "the caller gave up" });
    assert.equal(await metric(metrics, "webhook_authenticator_results_total", { outcome: "aborted" }), 1);
  });

  it("fails on garbage, oversized and malformed answers without retrying", async () => {
    const cases: [string | Buffer, RegExp][] = [
      ["not json", /without a usable TokenReview: the answer is not JSON \(8 bytes\)$/],
      ["[1]", /the answer is not a JSON object$/],
      ['{"kind":"Status","status":{"authenticated":true}}', /has kind "Status", not TokenReview$/],
      ['{"apiVersion":"v1","status":{"authenticated":true}}', /unsupported apiVersion "v1"$/],
      ['{"status":{"authenticated":true,"user":{"username":"x","groups":[1]}}}', /groups is not a list/],
      ['{"status":{"authenticated":true,"user":{"username":"x","extra":{"k":"v"}}}}', /extra\["k"\] is not/],
      ["x".repeat(2048), /^webhook answer is larger than 1024 bytes$/],
    ];
    const a = authenticator({ maxResponseBytes: 1024 });
    for (const [body, reason] of cases) {
      webhook.requests.length = 0;
      webhook.behave({ mode: "fixed", status: 200, body });
      const result = await a.authenticateToken("alice-token");
      assert.equal(result.authenticated, false);
      assert.match(result.authenticated ? "" : result.reason, reason);
      assert.equal(webhook.requests.length, 1);
    }
  });

  it("reads an answer without apiVersion or kind as the version asked", async () => {
    webhook.behave({
      mode: "fixed",
      status: 200,
      body: '{"status":{"authenticated":true,"user":{"username":"x"}}}',
    });
    const a = authenticator();
    assert.deepEqual(await a.authenticateToken("t"), {
      authenticated: true,
      user: { username: "x", groups: [] },
    });
    assert.equal(a.version, "v1beta1");
  });

  it("never puts the token in a failure reason or a log line", async () => {
    const token = "s3cr3t-t0ken-value";
    const { log, lines } = memoryLogger();
    const a = authenticator({ log });
    webhook.behave({
      mode: "fixed",
      status: 200,
      body: JSON.stringify({ status: { authenticated: false, error: `token ${token} is revoked` } }),
    });
    const rejected = await a.authenticateToken(token);
    assert.deepEqual(rejected, {
      authenticated: false,
      reason: "webhook did not authenticate the token: token [redacted] is revoked",
    });
    webhook.behave({ mode: "fixed", status: 500, body: `{"message":"bad token ${token}"}` });
    const failedResult = await a.authenticateToken(token);
    assert.equal(failedResult.authenticated, false);
    assert.ok(!JSON.stringify(failedResult).includes(token));
    assert.ok(lines.length > 0);
    assert.ok(!JSON.stringify(lines).includes(token));
  });

  it("retries an unreachable webhook, and does not retry a TLS verification failure", async () => {
    const port = await unusedPort();
    const refused = authenticator({ endpoint: `https://127.0.0.1:${port}/x` });
    const result = await refused.authenticateToken("alice-token");
    assert.deepEqual(result, {
      authenticated: false,
      reason: `cannot reach webhook: connect ECONNREFUSED 127.0.0.1:${port} (after 5 attempts)`,
    });
    assert.equal(await metric(metrics, "webhook_authenticator_retries_total"), 4);

    const untrusted = authenticator({ caPEM: undefined });
    const tls = await untrusted.authenticateToken("alice-token");
    assert.equal(tls.authenticated, false);
    assert.match(tls.authenticated ? "" : tls.reason, /^webhook request failed: .*(certificate|verify)/);
    assert.equal(webhook.requests.length, 0);
    assert.equal(await metric(metrics, "webhook_authenticator_retries_total"), 4);
  });

  it("does not call the webhook for an empty token", async () => {
    const a = authenticator();
    assert.deepEqual(await a.authenticateToken(""), { authenticated: false, reason: "empty token" });
    assert.equal(webhook.requests.length, 0);
  });

  it("close() cancels backoff timers, fails reviews in flight and refuses new ones", async () => {
    const clock = new FakeClock();
    webhook.behave({ mode: "fail-then-ok", failures: 100 });
    const a = authenticator({ clock, retry: { initialMs: 1_000 } });
    const pending = a.authenticateToken("alice-token");
    for (let turns = 0; clock.pending() === 0; turns++) {
      assert.ok(turns < 1000, "a backoff timer is scheduled");
      await settle(1);
    }
    a.close();
    assert.equal(clock.pending(), 0, "the backoff timer was released");
    assert.deepEqual(await pending, { authenticated: false, reason: "the authenticator was closed" });
    assert.deepEqual(await a.authenticateToken("alice-token"), {
      authenticated: false,
      reason: "the authenticator was closed",
    });
  });

  it("refuses an endpoint that is not an https URL", () => {
    assert.throws(() => authenticator({ endpoint: "http://127.0.0.1/x" }), /not https/);
    assert.throws(() => authenticator({ endpoint: "https://exa mple.com/" }), /Invalid URL/);
  });
});
