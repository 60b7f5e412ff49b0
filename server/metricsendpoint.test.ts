import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";
import { FakeRestClient } from "../controllers/runtime/testing.ts";
import { discardLogger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { allowCacheTTLMs, createMetricsHandler, decide } from "./metricsendpoint.ts";

const reader = {
  username: "system:serviceaccount:monitoring:prometheus",
  groups: ["system:serviceaccounts"],
};
const nosy = { username: "system:serviceaccount:monitoring:nosy", groups: ["system:serviceaccounts"] };

describe("/metrics behind delegated authentication and authorization", () => {
  it("decides 401 without an accepted token, 403 when not allowed, 200 otherwise", () => {
    assert.equal(decide(undefined, undefined, false).code, 401);
    assert.equal(decide("t", undefined, false).code, 401);
    assert.deepEqual(decide("t", nosy, false), {
      code: 403,
      reason: "Forbidden",
      message: 'forbidden: User "system:serviceaccount:monitoring:nosy" cannot get path "/metrics"',
    });
    assert.deepEqual(decide("t", reader, true), { code: 200 });
  });

  let base: string;
  let now = 0;
  let failReviews = false;
  const client = new FakeRestClient().react((r) => {
    if (failReviews) throw new Error("connection refused");
    const spec = (r.json as { spec: Record<string, unknown> }).spec;
    if (r.path.endsWith("/tokenreviews")) {
      const user = { "reader-token": reader, "nosy-token": nosy }[spec.token as string];
      return { status: user ? { authenticated: true, user } : { authenticated: false } };
    }
    return { status: { allowed: spec.user === reader.username } };
  });
  const metrics = new Metrics();
  metrics.counter({ name: "example_total", help: "An example." }).inc();
  const server = createServer(
    createMetricsHandler({ client, metrics, log: discardLogger(), now: () => now }),
  );
  before(async () => {
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  });
  after(() => new Promise((ok) => server.close(ok)));

  const get = (token?: string, method = "GET") =>
    fetch(`${base}/metrics`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it("answers Kubernetes Status bodies for refusals, and metrics to an allowed token", async () => {
    const anonymous = await get();
    assert.equal(anonymous.status, 401);
    assert.deepEqual(await anonymous.json(), {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "Unauthorized",
      reason: "Unauthorized",
      code: 401,
    });
    assert.equal((await get("unknown-token")).status, 401);
    const forbidden = await get("nosy-token");
    assert.equal(forbidden.status, 403);
    assert.match(((await forbidden.json()) as { message: string }).message, /cannot get path "\/metrics"/);
    const allowed = await get("reader-token");
    assert.equal(allowed.status, 200);
    assert.match(await allowed.text(), /^concierge_example_total 1$/m);
    assert.equal((await get("reader-token", "POST")).status, 405);
  });

  it("reviews the SubjectAccessReview with the reviewed user and the path", () => {
    const sar = client.requests.find(
      (r) => r.path.endsWith("/subjectaccessreviews") && JSON.stringify(r.json).includes("prometheus"),
    );
    assert.deepEqual((sar?.json as { spec?: unknown } | undefined)?.spec, {
      user: reader.username,
      groups: reader.groups,
      nonResourceAttributes: { path: "/metrics", verb: "get" },
    });
  });

  it("remembers an allowed token for 10 s, and answers 503 when it cannot review", async () => {
    now = 1_000_000;
    assert.equal((await get("reader-token")).status, 200);
    const reviews = client.requests.length;
    failReviews = true;
    now += allowCacheTTLMs - 1;
    assert.equal((await get("reader-token")).status, 200);
    assert.equal(client.requests.length, reviews);
    now += 1;
    const unavailable = await get("reader-token");
    assert.equal(unavailable.status, 503);
    assert.equal(((await unavailable.json()) as { reason: string }).reason, "ServiceUnavailable");
    failReviews = false;
  });
});
