import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { FakeClock, settle } from "../../kube/clock.ts";
import type { KubeObject } from "../../kube/resource.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { StrategyHolder } from "../credentialissuer/holder.ts";
import { Controller } from "../runtime/controller.ts";
import { FakeInformer, FakeRestClient, type RecordedRequest } from "../runtime/testing.ts";
import { keysFromSecretData, rotationPolicy, secretDataFor } from "./decide.ts";
import { JWTCredentialIssuer } from "./issuer.ts";
import { generateStoredKey, loadKeys } from "./keys.ts";
import { keysController, probeController, probeUser, reviewProblem } from "./reconciler.ts";

type Obj = KubeObject & { data?: Record<string, string> };
const where = { namespace: "concierge", name: "pinniped-concierge-jwt-signing-keys" };
const clusterInfo: Obj = {
  metadata: { namespace: "kube-public", name: "cluster-info" },
  data: {
    kubeconfig:
      "apiVersion: v1\nkind: Config\nclusters:\n- name: ''\n  cluster:\n    certificate-authority-data: Y2E=\n    server: https://k8s.example.com\n",
  },
};

/** The object a recorded write sent. */
function written(request: RecordedRequest | undefined): Obj {
  assert.ok(request, "no such write");
  return request.json as Obj;
}

const stops: AbortController[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop.abort();
  await settle();
});

function keysFixture(objects: Obj[] = []) {
  const secrets = new FakeInformer<Obj>({ objects });
  const clock = new FakeClock();
  // The API server: a write lands in the informer's cache, as the watch would deliver it.
  const client = new FakeRestClient().react((r: RecordedRequest) => {
    if (r.method !== "POST" && r.method !== "PUT") return undefined;
    secrets.upsert(r.json as Obj);
    return r.json;
  });
  const issuer = new JWTCredentialIssuer({ issuer: "https://issuer.example.com", audience: "kube" });
  const { log } = memoryLogger();
  const controller = keysController(
    { secrets, client, clock, controller: (o) => new Controller({ ...o, log, clock }) },
    { ...where, secretName: where.name, policy: rotationPolicy(300), issuer, labels: { app: "concierge" } },
  );
  const stop = new AbortController();
  stops.push(stop);
  void controller.run(stop.signal);
  return { secrets, client, clock, issuer, idle: () => settle(20) };
}

describe("jwt-signing-keys reconciler", () => {
  it("creates the Secret with a first key when it is absent, and loads that key", async () => {
    const f = keysFixture();
    await f.idle();
    const [create] = f.client.writes();
    assert.equal(create?.method, "POST");
    assert.equal(create?.path, "/api/v1/namespaces/concierge/secrets");
    const stored = keysFromSecretData(written(create).data).keys;
    assert.equal(stored.length, 1);
    assert.deepEqual(written(create).metadata?.labels, { app: "concierge" });
    assert.equal(f.issuer.keys.get()?.signing.kid, stored[0]!.kid);
    assert.deepEqual(
      f.issuer.keys.get()?.jwks.map((j) => j.kid),
      [stored[0]!.kid],
    );
  });

  it("publishes a new key before it signs, then drops the old one after its tokens expired", async () => {
    const clock = new FakeClock();
    const old = generateStoredKey(clock.now() - 8 * 24 * 3_600_000);
    const f = keysFixture([{ metadata: { ...where, resourceVersion: "1" }, data: secretDataFor([old]) }]);
    await f.idle();
    const [rotate] = f.client.writes();
    assert.equal(rotate?.method, "PUT");
    const both = keysFromSecretData(written(rotate).data).keys;
    assert.equal(both.length, 2);
    // The new key is in the JWKS, but the old one still signs.
    assert.equal(f.issuer.keys.get()?.signing.kid, old.kid);
    assert.equal(f.issuer.keys.get()?.jwks.length, 2);
    f.clock.step(5 * 60_000);
    await f.idle();
    const fresh = both.find((k) => k.kid !== old.kid)!;
    assert.equal(f.issuer.keys.get()?.signing.kid, fresh.kid);
    assert.equal(f.issuer.keys.get()?.jwks.length, 2, "the old key's tokens may still be in use");
    f.clock.step(10 * 60_000);
    await f.idle();
    const last = f.client.writes().at(-1);
    assert.deepEqual(
      keysFromSecretData(written(last).data).keys.map((k) => k.kid),
      [fresh.kid],
    );
    assert.deepEqual(
      f.issuer.keys.get()?.jwks.map((j) => j.kid),
      [fresh.kid],
    );
  });

  it("replaces keys that do not load", async () => {
    const bad = { ...generateStoredKey(Date.now()), kid: "edited" };
    const f = keysFixture([{ metadata: { ...where, resourceVersion: "1" }, data: secretDataFor([bad]) }]);
    await f.idle();
    const [replace] = f.client.writes();
    assert.equal(replace?.method, "PUT");
    const kids = keysFromSecretData(written(replace).data).keys.map((k) => k.kid);
    assert.notDeepEqual(kids, ["edited"]);
    assert.equal(f.issuer.keys.get()?.signing.kid, kids[0]);
  });
});

describe("jwt-credential-probe reconciler", () => {
  function probeFixture(answer: (token: string) => unknown) {
    const issuer = new JWTCredentialIssuer({ issuer: "https://issuer.example.com", audience: "kube" });
    const stored = generateStoredKey(Date.now());
    const client = new FakeRestClient().react((r) => {
      if (!r.path.endsWith("/tokenreviews")) return undefined;
      return answer((r.json as { spec: { token: string } }).spec.token);
    });
    const strategies = new StrategyHolder();
    const { log } = memoryLogger();
    const controller = probeController(
      {
        clusterInfo: new FakeInformer<Obj>({ objects: [clusterInfo] }),
        client,
        controller: (o) => new Controller({ ...o, log }),
      },
      { issuer, probeIntervalMs: 60_000, strategyHolder: strategies },
    );
    const stop = new AbortController();
    stops.push(stop);
    void controller.run(stop.signal);
    return { issuer, stored, client, strategies };
  }

  it("is Success with the TokenCredentialRequest frontend when kube-apiserver authenticates the probe token", async () => {
    const f = probeFixture(() => ({
      status: { authenticated: true, user: { username: probeUser.username } },
    }));
    f.issuer.keys.set(loadKeys([f.stored], f.stored.kid));
    await settle(20);
    const [entry] = f.strategies.get();
    assert.equal(entry?.type, "JWTCredential");
    assert.equal(entry?.status, "Success");
    assert.equal(entry?.reason, "ProbeSucceeded");
    assert.equal(entry?.frontend?.type, "TokenCredentialRequestAPI");
    assert.deepEqual(f.issuer.health(), { ok: true });
  });

  it("is Error, saying what kube-apiserver said, when it does not trust the issuer", async () => {
    const f = probeFixture(() => ({ status: { authenticated: false, error: "invalid bearer token" } }));
    f.issuer.keys.set(loadKeys([f.stored], f.stored.kid));
    await settle(20);
    const [entry] = f.strategies.get();
    assert.equal(entry?.status, "Error");
    assert.equal(entry?.reason, "ProbeFailed");
    assert.match(
      entry?.message ?? "",
      /^kube-apiserver does not trust tokens from issuer https:\/\/issuer.example.com with audience kube: it did not authenticate the probe token: invalid bearer token/,
    );
    assert.equal(f.issuer.health().ok, false);
  });

  it("reviewProblem refuses a token authenticated as someone else", () => {
    assert.match(
      reviewProblem({ status: { authenticated: true, user: { username: "x" } } }, "https://i", "a") ?? "",
      /authenticated the probe token as "x"/,
    );
    assert.equal(
      reviewProblem(
        { status: { authenticated: true, user: { username: probeUser.username } } },
        "https://i",
        "a",
      ),
      undefined,
    );
  });
});
