import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import type { JWTPayload } from "jose";
import { FakeClock } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { compileClaims } from "../cel/claims.ts";
import {
  type JWTAuthenticatorConfig,
  type JWTTokenAuthenticator,
  newJWTAuthenticator,
} from "./authenticator.ts";
import { defaultMinRefetchIntervalMs, defaultRefreshIntervalMs, failedRefreshRetryMs } from "./jwks.ts";
import { newSigningKey, type SigningKey, signToken, startTestIssuer, type TestIssuer } from "./testing.ts";

/** Timer-driven fetches run on real sockets, which a fake clock cannot wait for. */
async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("JWT authenticator: keys", () => {
  let issuer: TestIssuer;
  let other: TestIssuer;
  let k1: SigningKey;
  let k2: SigningKey;
  let k3: SigningKey;
  let clock: FakeClock;
  const open: JWTTokenAuthenticator[] = [];

  before(async () => {
    [issuer, other] = await Promise.all([startTestIssuer(), startTestIssuer()]);
    [k1, k2, k3] = await Promise.all([
      newSigningKey("RS256", "k1"),
      newSigningKey("ES256", "k2"),
      newSigningKey("RS256", "k3"),
    ]);
  });

  after(async () => {
    await Promise.all([issuer.close(), other.close()]);
  });

  afterEach(() => {
    for (const a of open.splice(0)) a.close();
    issuer.setFailure(undefined);
  });

  function authenticator(overrides: Partial<JWTAuthenticatorConfig> = {}): JWTTokenAuthenticator {
    clock = new FakeClock(Date.UTC(2026, 10, 28, 12, 0, 0));
    const a = newJWTAuthenticator({
      name: "keys",
      issuer: issuer.url,
      audiences: ["concierge"],
      compiled: compileClaims({}).compiled,
      claimValidationRules: [],
      systemPrefixPolicy: "Reject",
      jwksURL: issuer.jwksURL,
      caPEM: issuer.caPEM,
      clock,
      ...overrides,
    });
    open.push(a);
    return a;
  }

  const token = (key: SigningKey, header: Record<string, unknown> = {}, claims: JWTPayload = {}) => {
    const now = Math.floor(clock.now() / 1000);
    return signToken(
      key,
      { iss: issuer.url, aud: "concierge", username: "jane", iat: now, exp: now + 600, ...claims },
      header,
    );
  };

  async function reason(a: JWTTokenAuthenticator, jwt: string): Promise<string> {
    const result = await a.authenticateToken(jwt);
    return result.authenticated ? "authenticated" : result.reason;
  }

  it("fetches the keys on the first token when nobody fetched them before", async () => {
    issuer.setKeys([k1]);
    const a = authenticator();
    const before = issuer.jwksRequests;
    assert.equal(await reason(a, await token(k1)), "authenticated");
    assert.equal(issuer.jwksRequests, before + 1);
    assert.equal(await reason(a, await token(k1)), "authenticated");
    assert.equal(issuer.jwksRequests, before + 1, "the keys are cached");
  });

  it("fetchKeys fetches now and rejects with an error naming the URL", async () => {
    issuer.setKeys([k1]);
    const a = authenticator();
    const before = issuer.jwksRequests;
    await a.fetchKeys();
    assert.equal(issuer.jwksRequests, before + 1);
    issuer.setFailure({ status: 500, body: "boom" });
    await assert.rejects(a.fetchKeys(), { message: `${issuer.jwksURL} answered HTTP 500: boom` });
    issuer.setFailure({ status: 200, body: "not json" });
    await assert.rejects(a.fetchKeys(), { message: `${issuer.jwksURL} did not answer JSON` });
    issuer.setFailure({ status: 200, body: '{"issuer":"x"}' });
    await assert.rejects(a.fetchKeys(), {
      message: `${issuer.jwksURL} did not answer a JSON Web Key Set: JSON Web Key Set malformed`,
    });
    const untrusted = authenticator({ caPEM: other.caPEM });
    await assert.rejects(untrusted.fetchKeys(), (err: Error) => {
      assert.match(err.message, new RegExp(`^${issuer.jwksURL}: .*(certificate|self-signed|verify)`, "i"));
      return true;
    });
  });

  it("keeps the keys it has when a later fetch fails", async () => {
    issuer.setKeys([k1]);
    const a = authenticator();
    await a.fetchKeys();
    issuer.setFailure({ status: 503, body: "down" });
    await assert.rejects(a.fetchKeys());
    assert.equal(await reason(a, await token(k1)), "authenticated");
  });

  it("reports an unreachable JWKS on the token path, and rate-limits the retries", async () => {
    issuer.setFailure({ status: 500, body: "boom" });
    const a = authenticator();
    assert.match(await reason(a, await token(k1)), /^JWKS fetch failed: .* answered HTTP 500: boom$/);
    const before = issuer.jwksRequests;
    assert.match(
      await reason(a, await token(k1)),
      /^JWKS refetch rate-limited; the last fetch failed: .*answered HTTP 500: boom$/,
    );
    assert.equal(issuer.jwksRequests, before);
    issuer.setFailure(undefined);
    issuer.setKeys([k1]);
    clock.step(defaultMinRefetchIntervalMs);
    assert.equal(await reason(a, await token(k1)), "authenticated");
  });

  it("picks up a rotated-in key on the first token that uses it", async () => {
    issuer.setKeys([k1]);
    const a = authenticator();
    await a.fetchKeys();
    clock.step(defaultMinRefetchIntervalMs);
    issuer.setKeys([k1, k2]);
    const before = issuer.jwksRequests;
    assert.equal(await reason(a, await token(k2)), "authenticated");
    assert.equal(issuer.jwksRequests, before + 1);
  });

  it("refetches for unknown kids at most once per 5 s, however many tokens ask", async () => {
    issuer.setKeys([k1]);
    const a = authenticator();
    await a.fetchKeys();
    const start = issuer.jwksRequests;
    // Within 5 s of the last fetch, an unknown kid fails without a fetch.
    clock.step(defaultMinRefetchIntervalMs - 1);
    assert.equal(
      await reason(a, await token(k1, { kid: "made-up" })),
      'no key in the JWKS has kid "made-up" (JWKS refetch rate-limited)',
    );
    assert.equal(issuer.jwksRequests, start);
    // Then one fetch, shared by every token that arrives while it runs.
    clock.step(1);
    const garbage = await Promise.all(
      Array.from({ length: 50 }, (_, i) => token(k1, { kid: `random-${i}` }).then((t) => reason(a, t))),
    );
    assert.equal(issuer.jwksRequests, start + 1);
    assert.deepEqual(new Set(garbage).size, 50);
    assert.ok(garbage.every((r) => r.startsWith("no key in the JWKS has kid")));
    // The issuer rotates in k2 right after: tokens signed with it fail until the limit allows a fetch.
    issuer.setKeys([k1, k2]);
    clock.step(2000);
    assert.match(
      await reason(a, await token(k2)),
      /^no key in the JWKS has kid "k2" \(JWKS refetch rate-limited\)$/,
    );
    assert.equal(issuer.jwksRequests, start + 1);
    clock.step(defaultMinRefetchIntervalMs - 2000);
    assert.equal(await reason(a, await token(k2)), "authenticated");
    assert.equal(issuer.jwksRequests, start + 2);
    // Known keys never wait for the limit.
    assert.equal(await reason(a, await token(k1)), "authenticated");
  });

  it("does not fetch for tokens that fail the cheap checks", async () => {
    issuer.setKeys([k1]);
    const a = authenticator();
    await a.fetchKeys();
    clock.step(defaultMinRefetchIntervalMs);
    const start = issuer.jwksRequests;
    assert.match(
      await reason(a, await token(k1, { kid: "new" }, { iss: "https://other.example.com" })),
      /^issuer/,
    );
    assert.match(await reason(a, await token(k1, { kid: "new" }, { aud: "other" })), /^audience/);
    assert.match(await reason(a, await token(k1, { kid: "new" }, { exp: 1 })), /^token expired/);
    assert.equal(issuer.jwksRequests, start);
  });

  it("tries every key of the right type for a token without kid, and refetches when none verifies", async () => {
    issuer.setKeys([k1, k2, k3]);
    const a = authenticator();
    await a.fetchKeys();
    clock.step(defaultMinRefetchIntervalMs);
    assert.equal(await reason(a, await token(k3, { kid: undefined })), "authenticated");
    assert.equal(await reason(a, await token(k2, { kid: undefined })), "authenticated");
    const stranger = await newSigningKey("RS256", "k9");
    const start = issuer.jwksRequests;
    assert.equal(await reason(a, await token(stranger, { kid: undefined })), "signature invalid");
    assert.equal(issuer.jwksRequests, start + 1);
  });

  it("refreshes the keys every 5 minutes, so a removed key stops working", async () => {
    issuer.setKeys([k1, k2]);
    const a = authenticator();
    await a.fetchKeys();
    const start = issuer.jwksRequests;
    issuer.setKeys([k2]);
    assert.equal(await reason(a, await token(k1)), "authenticated");
    await clock.advance(defaultRefreshIntervalMs - 1);
    assert.equal(issuer.jwksRequests, start);
    await clock.advance(1);
    await waitFor(() => issuer.jwksRequests === start + 1, "the periodic refresh");
    await waitFor(() => clock.pending() === 1, "the next refresh to be scheduled");
    assert.match(await reason(a, await token(k1)), /^no key in the JWKS has kid "k1"/);
    assert.equal(await reason(a, await token(k2)), "authenticated");
  });

  it("retries a failed refresh after 30 s", async () => {
    issuer.setKeys([k1]);
    const a = authenticator();
    await a.fetchKeys();
    issuer.setFailure({ status: 500, body: "boom" });
    const start = issuer.jwksRequests;
    await clock.advance(defaultRefreshIntervalMs);
    await waitFor(() => issuer.jwksRequests === start + 1 && clock.pending() === 1, "the failed refresh");
    assert.equal(clock.nextDue(), clock.now() + failedRefreshRetryMs);
    issuer.setFailure(undefined);
    await clock.advance(failedRefreshRetryMs);
    await waitFor(() => issuer.jwksRequests === start + 2 && clock.pending() === 1, "the retry");
    assert.equal(clock.nextDue(), clock.now() + defaultRefreshIntervalMs);
  });

  it("close() stops the refresh timer", async () => {
    issuer.setKeys([k1]);
    const a = authenticator();
    await a.fetchKeys();
    assert.equal(clock.pending(), 1);
    a.close();
    assert.equal(clock.pending(), 0);
    await assert.rejects(a.fetchKeys(), /closed/);
  });

  it("records fetches and the time of the last one, and logs key changes without key material", async () => {
    issuer.setKeys([k1]);
    const metrics = new Metrics();
    const { log, lines } = memoryLogger("debug");
    const a = authenticator({ name: "m", metrics, log });
    await a.fetchKeys();
    await a.fetchKeys();
    issuer.setFailure({ status: 500, body: "boom" });
    await assert.rejects(a.fetchKeys());
    const text = await metrics.text();
    assert.match(
      text,
      /concierge_jwt_authenticator_jwks_fetches_total\{authenticator="m",result="success"\} 2/,
    );
    assert.match(
      text,
      /concierge_jwt_authenticator_jwks_fetches_total\{authenticator="m",result="failure"\} 1/,
    );
    const seconds = clock.now() / 1000;
    assert.match(
      text,
      new RegExp(
        `concierge_jwt_authenticator_jwks_fetch_last_timestamp_seconds\\{authenticator="m",result="success"\\} ${seconds}`,
      ),
    );
    assert.deepEqual(
      lines.map((l) => l.message),
      ["fetched a new JWKS", "fetched the JWKS, unchanged", "could not fetch the JWKS"],
    );
    assert.deepEqual(lines[0]?.kids, ["k1"]);
    assert.ok(!JSON.stringify(lines).includes(String(k1.jwk.n)));

    // A replacement of the same name keeps the gauge; closing the last one removes it.
    const replacement = authenticator({ name: "m", metrics, clock });
    a.close();
    assert.match(await metrics.text(), /jwks_fetch_last_timestamp_seconds\{authenticator="m"/);
    replacement.close();
    assert.doesNotMatch(await metrics.text(), /jwks_fetch_last_timestamp_seconds\{authenticator="m"/);
  });
});
