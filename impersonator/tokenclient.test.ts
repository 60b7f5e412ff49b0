import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { eventually, FakeRestClient } from "../controllers/runtime/testing.ts";
import { FakeClock } from "../kube/clock.ts";
import { memoryLogger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { ServiceAccountTokenClient } from "./tokenclient.ts";

const tokenPath = "/api/v1/namespaces/concierge/serviceaccounts/proxy/token";

function setup() {
  const clock = new FakeClock();
  const client = new FakeRestClient();
  const logs = memoryLogger();
  const tokens = new ServiceAccountTokenClient({
    client,
    namespace: "concierge",
    serviceAccountName: "proxy",
    log: logs.log,
    metrics: new Metrics(),
    clock,
  });
  return { clock, client, logs, tokens };
}

describe("ServiceAccountTokenClient", () => {
  it("asks for a day-long token and renews it at four fifths of the granted lifetime", async () => {
    const { clock, client, logs, tokens } = setup();
    let n = 0;
    client.react(() => {
      n++;
      return {
        status: {
          token: `token-${n}`,
          expirationTimestamp: new Date(clock.now() + 3_600_000).toISOString(),
        },
      };
    });
    const stop = new AbortController();
    const running = tokens.run(stop.signal);
    await eventually(() => tokens.token() === "token-1");
    const [first] = client.requests;
    assert.equal(first?.method, "POST");
    assert.equal(first?.path, tokenPath);
    assert.deepEqual((first?.json as { spec?: unknown } | undefined)?.spec, { expirationSeconds: 86_400 });

    await clock.advance(0.8 * 3_600_000 - 1);
    assert.equal(tokens.token(), "token-1");
    await clock.advance(1);
    await eventually(() => tokens.token() === "token-2");
    stop.abort();
    await running;
    assert.ok(!JSON.stringify(logs.lines).includes("token-1"), "a token reached the log");
  });

  it("retries failures with a doubling backoff and has no token until one arrives", async () => {
    const { clock, client, tokens } = setup();
    let failures = 3;
    client.react(() => {
      if (failures-- > 0) throw new Error("connection refused");
      return {
        status: { token: "finally", expirationTimestamp: new Date(clock.now() + 60_000).toISOString() },
      };
    });
    const stop = new AbortController();
    const running = tokens.run(stop.signal);
    await eventually(() => client.requests.length === 1);
    assert.equal(tokens.token(), undefined);
    await clock.advance(10);
    await eventually(() => client.requests.length === 2);
    await clock.advance(20);
    await eventually(() => client.requests.length === 3);
    await clock.advance(40);
    await eventually(() => tokens.token() === "finally");
    stop.abort();
    await running;
  });

  it("stops handing out a token once it has expired", async () => {
    const { clock, client, tokens } = setup();
    client.react((r) => {
      if (client.requests.length > 1) throw new Error(`down: ${r.path}`);
      return { status: { token: "short", expirationTimestamp: new Date(clock.now() + 1_000).toISOString() } };
    });
    const stop = new AbortController();
    const running = tokens.run(stop.signal);
    await eventually(() => tokens.token() === "short");
    clock.step(1_000);
    assert.equal(tokens.token(), undefined);
    stop.abort();
    await running;
  });
});
