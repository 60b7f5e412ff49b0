import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AuthenticatorCache } from "../../authenticators/cache.ts";
import type { AuthenticationResult } from "../../authenticators/types.ts";
import { FakeClock, rfc3339 } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import {
  startHTTPSServer as startTLSServer,
  type TestHTTPSServer as TestTLSServer,
} from "../../test/harness/tls.ts";
import type { Condition } from "../runtime/conditions.ts";
import { Controller, type ControllerOptions, type SyncContext } from "../runtime/controller.ts";
import { NotLeaderError } from "../runtime/leaderelection.ts";
import { StatusWriter } from "../runtime/status.ts";
import { apiStatusError, FakeInformer, FakeRestClient } from "../runtime/testing.ts";
import {
  type ConfigMapObject,
  type FetchingAuthenticator,
  type JWTAuthenticatorObject,
  type JWTAuthenticatorOptions,
  jwtAuthenticatorController,
  type SecretObject,
} from "./reconciler.ts";

const namespace = "concierge";
const unable = "unable to validate; see other conditions for details";

class FakeAuthenticator implements FetchingAuthenticator {
  readonly options: JWTAuthenticatorOptions;
  readonly keysError: string | undefined;
  closed = false;
  fetches = 0;
  constructor(options: JWTAuthenticatorOptions, keysError: string | undefined) {
    this.options = options;
    this.keysError = keysError;
  }
  async authenticateToken(): Promise<AuthenticationResult> {
    return { authenticated: false, reason: "fake" };
  }
  close(): void {
    this.closed = true;
  }
  async fetchKeys(): Promise<void> {
    this.fetches++;
    if (this.keysError) throw new Error(this.keysError);
  }
}

type Status = NonNullable<JWTAuthenticatorObject["status"]>;

function applyMergePatch(target: unknown, patch: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

let server: TestTLSServer;
const b64 = (s: string) => Buffer.from(s).toString("base64");

before(async () => {
  server = await startTLSServer((req, res) => {
    const path = req.url ?? "";
    const document = (issuer: string) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    };
    if (path === "/good/.well-known/openid-configuration") document(`${server.base}/good`);
    else if (path === "/mismatch/.well-known/openid-configuration") document(`${server.base}/elsewhere`);
    else {
      res.statusCode = 500;
      res.end("down");
    }
  });
});
after(() => server.close());

function jwt(
  name: string,
  spec: Partial<JWTAuthenticatorObject["spec"]> = {},
  generation = 1,
): JWTAuthenticatorObject {
  return {
    apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
    kind: "JWTAuthenticator",
    metadata: { name, generation, resourceVersion: "1" },
    spec: {
      issuer: `${server.base}/good`,
      audience: "my-audience",
      tls: { certificateAuthorityData: b64(server.caPEM) },
      ...spec,
    },
  };
}

function fixture(
  objects: { jwts?: JWTAuthenticatorObject[]; secrets?: SecretObject[]; configMaps?: ConfigMapObject[] } = {},
) {
  const rest = new FakeRestClient();
  const clock = new FakeClock();
  const metrics = new Metrics();
  const { log, lines } = memoryLogger();
  const cache = new AuthenticatorCache();
  const jwts = new FakeInformer<JWTAuthenticatorObject>({ objects: objects.jwts ?? [] });
  const secrets = new FakeInformer<SecretObject>({ objects: objects.secrets ?? [] });
  const configMaps = new FakeInformer<ConfigMapObject>({ objects: objects.configMaps ?? [] });
  const state = { leading: true, keysError: undefined as string | undefined };
  const status = new StatusWriter({
    client: rest,
    guard: {
      assertLeader() {
        if (!state.leading) throw new NotLeaderError();
      },
    },
  });
  let rv = 100;
  // The API server and the informer: a status patch lands in the cached object.
  rest.react((r) => {
    const name = /\/jwtauthenticators\/([^/]+)\/status$/.exec(r.path)?.[1];
    const current = name ? jwts.get(name) : undefined;
    if (r.method !== "PATCH" || !current) return undefined;
    const body = r.json as { status: unknown };
    const next = {
      ...structuredClone(current),
      metadata: { ...current.metadata, resourceVersion: String(++rv) },
      status: applyMergePatch(current.status ?? {}, body.status) as Status,
    };
    jwts.upsert(next);
    return next;
  });
  const built: FakeAuthenticator[] = [];
  let options: Omit<ControllerOptions, "clock" | "log" | "metrics"> | undefined;
  const controller = jwtAuthenticatorController(
    {
      informers: { jwtAuthenticators: jwts, secrets, configMaps },
      status,
      clock,
      log,
      metrics,
      controller: (o) => {
        options = o;
        return new Controller({ ...o, log, metrics });
      },
    },
    {
      cache,
      namespace,
      newAuthenticator: (o) => {
        const a = new FakeAuthenticator(o, state.keysError);
        built.push(a);
        return a;
      },
    },
  );
  const context = (key: string): SyncContext => ({
    key,
    signal: new AbortController().signal,
    log,
    queue: { add() {}, addAfter() {} },
  });
  return {
    rest,
    clock,
    metrics,
    lines,
    cache,
    jwts,
    secrets,
    configMaps,
    state,
    built,
    controller,
    sync: async (key: string) => {
      await options?.sync(context(key));
    },
    patches: () =>
      rest
        .writes()
        .filter((r) => r.method === "PATCH")
        .map((r) => (r.json as { status: Status }).status),
    statusOf: (name: string) => jwts.get(name)?.status as Status | undefined,
    cached: (name: string) =>
      cache.get({ apiGroup: "authentication.concierge.pinniped.dev", kind: "JWTAuthenticator", name }),
    metric: async (name: string, labels: Record<string, string>) => {
      const data = await metrics.registry.getSingleMetric(`concierge_${name}`)?.get();
      return (data?.values ?? [])
        .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
        .reduce((sum, v) => sum + v.value, 0);
    },
  };
}

function allHappy(
  time: string,
  generation: number,
  tlsMessage = "spec.tls is valid: using configured CA bundle",
) {
  const c = (type: string, message: string): Condition => ({
    type,
    status: "True",
    reason: "Success",
    message,
    lastTransitionTime: time,
    observedGeneration: generation,
  });
  return [
    c("AuthenticatorValid", "authenticator initialized"),
    c("DiscoveryURLValid", "discovery performed successfully"),
    c("IssuerURLValid", "issuer is a valid URL"),
    c("JWKSFetchValid", "successfully fetched jwks"),
    c("JWKSURLValid", "jwks_uri is a valid URL"),
    c("Ready", "the JWTAuthenticator is ready"),
    c("TLSConfigurationValid", tlsMessage),
  ];
}

function byType(conditions: Condition[] | undefined): Record<string, Condition> {
  return Object.fromEntries((conditions ?? []).map((c) => [c.type, c]));
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("the JWTAuthenticator reconciler", () => {
  it("validates a new authenticator, writes upstream's conditions, then caches it", async () => {
    const f = fixture({
      jwts: [
        jwt("a", {
          audiences: ["other-client"],
          audienceMatchPolicy: "MatchAny",
          claims: { groups: "roles" },
          claimValidationRules: [{ claim: "hd", requiredValue: "example.com" }, { expression: "true" }],
        }),
      ],
    });
    await f.sync("a");
    const now = rfc3339(f.clock.now());
    assert.deepEqual(f.patches(), [{ conditions: allHappy(now, 1), phase: "Ready" }]);
    assert.equal(f.built.length, 1);
    const [built] = f.built;
    assert.equal(f.cached("a")?.authenticator, built);
    assert.equal(built?.fetches, 1);
    assert.equal(built?.closed, false);
    const { compiled, metrics, log, caPEM, ...options } = built?.options ?? ({} as JWTAuthenticatorOptions);
    assert.deepEqual(options, {
      name: "a",
      issuer: `${server.base}/good`,
      audiences: ["my-audience", "other-client"],
      audienceMatchPolicy: "MatchAny",
      usernameClaim: "username",
      groupsClaim: "roles",
      claimValidationRules: [{ claim: "hd", requiredValue: "example.com" }],
      systemPrefixPolicy: "Reject",
      jwksURL: `${server.base}/good/jwks`,
    });
    assert.match(caPEM ?? "", /^-----BEGIN CERTIFICATE-----\n/);
    assert.equal(compiled.claimRules.length, 1);
    assert.equal(await f.metric("jwt_authenticator_validations_total", { outcome: "valid" }), 1);
    assert.ok(f.lines.some((l) => l.message === "added or updated jwt authenticator in cache"));
  });

  it("skips the probes, and writes nothing, once the cache holds the same authenticator", async () => {
    const f = fixture({ jwts: [jwt("a")] });
    await f.sync("a");
    await f.sync("a");
    await f.sync("a");
    assert.equal(f.patches().length, 1);
    assert.equal(f.built.length, 1);
    assert.equal(await f.metric("jwt_authenticator_validations_total", { outcome: "skipped" }), 2);
  });

  it("reverts manual status edits, keeping lastTransitionTime where the status did not change", async () => {
    const f = fixture({ jwts: [jwt("a")] });
    await f.sync("a");
    const written = f.statusOf("a");
    const edited = structuredClone(written) as Status;
    edited.phase = "Pending";
    const first = edited.conditions?.[0];
    if (first) first.message = "this is a manually edited message that should go away";
    const current = f.jwts.get("a");
    assert.ok(current);
    f.jwts.upsert({ ...structuredClone(current), status: edited });
    f.clock.step(60_000);
    await f.sync("a");
    assert.deepEqual(f.statusOf("a"), written);
    assert.equal(f.built.length, 1, "the cached authenticator still matches: nothing re-probed");
  });

  it("builds a new authenticator when the spec changes, and the cache closes the old one", async () => {
    const f = fixture({ jwts: [jwt("a")] });
    await f.sync("a");
    const current = f.jwts.get("a");
    assert.ok(current);
    f.jwts.upsert({ ...jwt("a", { audience: "new-audience" }, 2), status: structuredClone(current.status) });
    f.clock.step(1_000);
    await f.sync("a");
    assert.equal(f.built.length, 2);
    assert.equal(f.built[0]?.closed, true);
    assert.equal(f.cached("a")?.authenticator, f.built[1]);
    const conditions = byType(f.statusOf("a")?.conditions);
    assert.equal(conditions.Ready?.observedGeneration, 2);
    assert.equal(
      conditions.Ready?.lastTransitionTime,
      rfc3339(f.clock.now() - 1_000),
      "still True: not moved",
    );
  });

  it("evicts an authenticator that became invalid before writing its failing status", async () => {
    const f = fixture({ jwts: [jwt("a")] });
    await f.sync("a");
    let cachedWhenWritten: number | undefined;
    f.rest.react(() => {
      cachedWhenWritten ??= f.cache.size;
      return undefined;
    });
    const current = f.jwts.get("a");
    assert.ok(current);
    f.jwts.upsert({
      ...jwt("a", { tls: { certificateAuthorityData: "invalid base64-encoded data" } }, 2),
      status: structuredClone(current.status),
    });
    await f.sync("a");
    assert.equal(cachedWhenWritten, 0);
    assert.equal(f.built[0]?.closed, true);
    const status = f.statusOf("a");
    assert.equal(status?.phase, "Error");
    const conditions = byType(status?.conditions);
    assert.deepEqual(
      Object.fromEntries(Object.values(conditions).map((c) => [c.type, [c.status, c.reason, c.message]])),
      {
        AuthenticatorValid: ["Unknown", "UnableToValidate", unable],
        DiscoveryURLValid: ["Unknown", "UnableToValidate", unable],
        IssuerURLValid: ["True", "Success", "issuer is a valid URL"],
        JWKSFetchValid: ["Unknown", "UnableToValidate", unable],
        JWKSURLValid: ["Unknown", "UnableToValidate", unable],
        Ready: ["False", "NotReady", "the JWTAuthenticator is not ready: see other conditions for details"],
        TLSConfigurationValid: [
          "False",
          "InvalidTLSConfig",
          "spec.tls.certificateAuthorityData is invalid: illegal base64 data at input byte 7",
        ],
      },
    );
  });

  it("keeps an authenticator mapping claims.extra out of the cache, and drops its condition with the extras", async () => {
    const extra = [{ key: "example.com/tenant", valueExpression: "claims.tenant" }];
    const f = fixture({ jwts: [jwt("a", { claims: { extra } })] });
    await f.sync("a");
    const status = f.statusOf("a");
    assert.equal(status?.phase, "Error");
    const conditions = byType(status?.conditions);
    assert.deepEqual(
      [conditions.ClaimsExtraDeliverable?.status, conditions.ClaimsExtraDeliverable?.reason],
      ["False", "NoStrategyCarriesExtras"],
    );
    assert.equal(conditions.Ready?.status, "False");
    assert.equal(conditions.AuthenticatorValid?.status, "True", "everything else checks out");
    assert.equal(f.cached("a"), undefined);
    assert.equal(f.built[0]?.closed, true);

    const current = f.jwts.get("a");
    assert.ok(current);
    f.jwts.upsert({ ...jwt("a", {}, 2), status: structuredClone(current.status) });
    f.clock.step(1_000);
    await f.sync("a");
    const ready = f.statusOf("a");
    assert.equal(ready?.phase, "Ready");
    assert.deepEqual(
      ready?.conditions?.map((c) => [c.type, c.status]),
      allHappy("", 2).map((c) => [c.type, c.status]),
      "no ClaimsExtraDeliverable left behind",
    );
    assert.equal(byType(ready?.conditions).Ready?.lastTransitionTime, rfc3339(f.clock.now()));
    assert.equal(f.cached("a")?.authenticator, f.built[1]);
  });

  it("writes a failed discovery and then fails the sync, so that it is retried", async () => {
    const f = fixture({ jwts: [jwt("a", { issuer: `${server.base}/mismatch` })] });
    await assert.rejects(f.sync("a"), {
      message: `could not perform oidc discovery on provider issuer: oidc: issuer did not match the issuer returned by provider, expected "${server.base}/mismatch" got "${server.base}/elsewhere"`,
    });
    const conditions = byType(f.statusOf("a")?.conditions);
    assert.equal(conditions.DiscoveryURLValid?.reason, "InvalidDiscoveryProbe");
    assert.equal(f.statusOf("a")?.phase, "Error");
    assert.equal(f.built.length, 0);
    assert.equal(f.cache.size, 0);
  });

  it("does not cache an authenticator whose keys could not be fetched", async () => {
    const f = fixture({ jwts: [jwt("a")] });
    f.state.keysError = "fetching keys: 404 Not Found";
    await assert.rejects(f.sync("a"), { message: "could not fetch keys: fetching keys: 404 Not Found" });
    assert.equal(byType(f.statusOf("a")?.conditions).JWKSFetchValid?.reason, "InvalidCouldNotFetchJWKS");
    assert.equal(f.cache.size, 0);
    assert.equal(f.built[0]?.closed, true);
  });

  it("reports a spec error without retrying, and does not cache", async () => {
    const f = fixture({ jwts: [jwt("a", { claims: { username: "u", usernameExpression: "claims.sub" } })] });
    await f.sync("a");
    const authenticatorValid = byType(f.statusOf("a")?.conditions).AuthenticatorValid;
    assert.deepEqual(
      [authenticatorValid?.status, authenticatorValid?.reason, authenticatorValid?.message],
      [
        "False",
        "InvalidAuthenticator",
        `could not initialize jwt authenticator: claims.username: Invalid value: "": claim and expression can't both be set`,
      ],
    );
    assert.equal(f.cache.size, 0);
    assert.equal(f.built[0]?.closed, true);
  });

  it("caches nothing and closes what it built when the status write fails", async () => {
    const f = fixture({ jwts: [jwt("a")] });
    f.rest.react((r) => {
      if (r.method === "PATCH") throw apiStatusError(500, "InternalError");
      return undefined;
    });
    await assert.rejects(f.sync("a"), /InternalError/);
    assert.equal(f.cache.size, 0);
    assert.equal(f.built[0]?.closed, true);
  });

  it("on a follower, caches only once the leader has written the same status", async () => {
    const leader = fixture({ jwts: [jwt("a")] });
    await leader.sync("a");
    const ready = leader.jwts.get("a");
    assert.ok(ready);

    const follower = fixture({ jwts: [jwt("a")] });
    follower.state.leading = false;
    await assert.rejects(follower.sync("a"), NotLeaderError);
    assert.equal(follower.cache.size, 0);
    assert.equal(follower.built[0]?.closed, true);

    follower.jwts.upsert(ready);
    await follower.sync("a");
    assert.equal(follower.cached("a")?.authenticator, follower.built[1]);
    assert.equal(follower.patches().length, 0);
  });

  it("evicts and closes on deletion", async () => {
    const f = fixture({ jwts: [jwt("a")] });
    await f.sync("a");
    f.jwts.remove("a");
    await f.sync("a");
    assert.equal(f.cache.size, 0);
    assert.equal(f.built[0]?.closed, true);
  });

  it("re-validates the authenticators that name a Secret or ConfigMap when it changes", async () => {
    const ref = (kind: "Secret" | "ConfigMap", name: string) => ({
      tls: { certificateAuthorityDataSource: { kind, name, key: "ca.crt" } },
    });
    const f = fixture({
      jwts: [
        jwt("from-secret", ref("Secret", "ca")),
        jwt("from-configmap", ref("ConfigMap", "ca")),
        jwt("inline"),
      ],
    });
    const ac = new AbortController();
    const running = f.controller.run(ac.signal);
    try {
      await waitFor("three statuses", () =>
        ["from-secret", "from-configmap", "inline"].every((n) => f.statusOf(n)),
      );
      await waitFor("Error phases", () => f.statusOf("from-secret")?.phase === "Error");
      assert.equal(
        byType(f.statusOf("from-secret")?.conditions).TLSConfigurationValid?.message,
        `spec.tls.certificateAuthorityDataSource is invalid: failed to get secret "${namespace}/ca": secret "ca" not found`,
      );
      assert.equal(f.statusOf("inline")?.phase, "Ready");
      const inlineWrites = () => f.rest.writes().filter((r) => r.path.endsWith("/inline/status")).length;
      const before = inlineWrites();

      f.secrets.upsert({
        metadata: { name: "ca", namespace },
        type: "Opaque",
        data: { "ca.crt": b64(server.caPEM) },
      });
      f.configMaps.upsert({
        metadata: { name: "ca", namespace: "elsewhere" },
        data: { "ca.crt": server.caPEM },
      });
      await waitFor(
        "the Secret's authenticator to be Ready",
        () => f.statusOf("from-secret")?.phase === "Ready",
      );
      assert.equal(
        f.statusOf("from-configmap")?.phase,
        "Error",
        "a ConfigMap of another namespace is not ours",
      );

      f.configMaps.upsert({ metadata: { name: "ca", namespace }, data: { "ca.crt": server.caPEM } });
      await waitFor(
        "the ConfigMap's authenticator to be Ready",
        () => f.statusOf("from-configmap")?.phase === "Ready",
      );
      assert.equal(inlineWrites(), before, "an authenticator that names neither was left alone");
      assert.equal(f.cache.size, 3);

      f.secrets.upsert({
        metadata: { name: "ca", namespace },
        type: "Opaque",
        data: { "ca.crt": b64("junk") },
      });
      await waitFor("Error after the Secret broke", () => f.statusOf("from-secret")?.phase === "Error");
      assert.equal(f.cache.size, 2);
    } finally {
      ac.abort();
      await running;
    }
  });
});
