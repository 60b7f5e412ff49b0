// The JWTAuthenticator reconciler in-process against the real API server and a real OIDC provider
// (oidc-provider over TLS with a CA of the test's own): upstream's condition sets for healthy and
// broken authenticators, CA bundles from Secrets and ConfigMaps, status edits reverted, eviction,
// key rotation, and real ID tokens through the cached authenticator.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { generateKeyPair, SignJWT } from "jose";
import type { JWTAuthenticatorSpec } from "../../apis/index.ts";
import { AuthenticatorCache, authenticationGroup } from "../../authenticators/cache.ts";
import { newJWTAuthenticator } from "../../authenticators/jwt/authenticator.ts";
import type { AuthenticationResult } from "../../authenticators/types.ts";
import { register as registerCacheCleaner } from "../../controllers/cachecleaner/cachecleaner.ts";
import {
  type JWTAuthenticatorObject,
  register as registerJWTAuthenticators,
} from "../../controllers/jwtauthenticator/reconciler.ts";
import type { Condition } from "../../controllers/runtime/conditions.ts";
import { type Manager, managerFromKubeConfig } from "../../controllers/runtime/manager.ts";
import { ApiError, isNotFound, KubeRestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import { startOIDCProvider, type TestOIDCProvider } from "../harness/oidc-provider.ts";

const path = `/apis/${authenticationGroup}/v1alpha1/jwtauthenticators`;
const audience = "concierge-cli";
const webAudience = "concierge-web";
const strangerAudience = "someone-else";
const label = "concierge.test/jwtauthenticator";
const unable = "unable to validate; see other conditions for details";
const notAPEM = readFileSync(new URL("../../authenticators/tls/testdata/ca.pem", import.meta.url), "utf8");
const b64 = (s: string) => Buffer.from(s).toString("base64");

type Expected = Pick<Condition, "type" | "status" | "reason" | "message">;

/** Upstream's allSuccessfulJWTAuthenticatorConditions, with `replace` applied by type. */
function conditionSet(
  replace: Expected[] = [],
  tlsMessage = "spec.tls is valid: using configured CA bundle",
): Expected[] {
  const ok = (type: string, message: string): Expected => ({
    type,
    status: "True",
    reason: "Success",
    message,
  });
  const all = [
    ok("AuthenticatorValid", "authenticator initialized"),
    ok("DiscoveryURLValid", "discovery performed successfully"),
    ok("IssuerURLValid", "issuer is a valid URL"),
    ok("JWKSFetchValid", "successfully fetched jwks"),
    ok("JWKSURLValid", "jwks_uri is a valid URL"),
    ok("Ready", "the JWTAuthenticator is ready"),
    ok("TLSConfigurationValid", tlsMessage),
  ];
  return all.map((c) => replace.find((r) => r.type === c.type) ?? c);
}
const unknown = (type: string): Expected => ({
  type,
  status: "Unknown",
  reason: "UnableToValidate",
  message: unable,
});
const notReady: Expected = {
  type: "Ready",
  status: "False",
  reason: "NotReady",
  message: "the JWTAuthenticator is not ready: see other conditions for details",
};
/** Ours, beyond upstream's set: a JWTAuthenticator mapping claims.extra, which no credential carries. */
const extrasNotDeliverable: Expected = {
  type: "ClaimsExtraDeliverable",
  status: "False",
  reason: "NoStrategyCarriesExtras",
  message:
    "spec.claims.extra cannot be delivered: the Concierge's client certificates cannot carry extras to kube-apiserver; this authenticator serves no login until spec.claims.extra is removed",
};
/** `conditions` with `extra` added where the status sorts it, by type. */
const including = (conditions: Expected[], extra: Expected): Expected[] =>
  [...conditions, extra].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
/** The conditions after DiscoveryURLValid, unknown because discovery failed. */
const afterDiscovery = [
  unknown("JWKSURLValid"),
  unknown("JWKSFetchValid"),
  unknown("AuthenticatorValid"),
  notReady,
];

// How long and how often this file waited before eventually was shared: its tests keep that timing.
const polling = { timeoutMs: 30_000, intervalMs: 5 };

async function unusedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return typeof address === "object" && address ? address.port : 0;
}

function strip(conditions: Condition[] | undefined): Expected[] {
  return (conditions ?? []).map(({ type, status, reason, message }) => ({ type, status, reason, message }));
}

describe("JWTAuthenticator reconciler against the real API server and a real OIDC provider", () => {
  let c: TestCluster;
  let admin: KubeRestClient;
  let namespace: string;
  let provider: TestOIDCProvider;
  let cache: AuthenticatorCache;
  let manager: Manager;
  let running: Promise<void>;
  const stop = new AbortController();
  const { log } = memoryLogger("debug");

  before(async () => {
    c = await testCluster();
    admin = new KubeRestClient(c.kubeConfig());
    namespace = await c.newNamespace("concierge");
    provider = await startOIDCProvider({
      audiences: [audience, webAudience, strangerAudience],
      path: "/oidc",
    });
    cache = new AuthenticatorCache();
    manager = managerFromKubeConfig(c.kubeConfig(), {
      identity: "jwtauthenticator-test",
      leaseNamespace: namespace,
      leaseName: "concierge",
      leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      log,
    });
    registerJWTAuthenticators(manager, { cache, namespace, newAuthenticator: newJWTAuthenticator });
    registerCacheCleaner(manager, { cache });
    running = manager.run(stop.signal);
    await eventually("leadership", () => manager.leader.isLeader(), polling);
  });

  after(async () => {
    stop.abort();
    await running;
    // Closing stops the authenticators' JWKS refresh timers, which would keep the process alive.
    for (const key of cache.keys()) cache.delete(key);
    await c.kubectl(["delete", "jwtauthenticators", "-l", label, "--ignore-not-found", "--wait=false"]);
    await c.kubectl(["delete", "namespace", namespace, "--wait=false"]);
    await provider.close();
  });

  const specFor = (p: TestOIDCProvider, extra: Partial<JWTAuthenticatorSpec> = {}): JWTAuthenticatorSpec => ({
    issuer: p.issuer,
    audience,
    tls: { certificateAuthorityData: b64(p.caPEM) },
    ...extra,
  });

  async function create(prefix: string, spec: JWTAuthenticatorSpec): Promise<string> {
    const name = c.uniqueName(prefix);
    await admin.request({
      method: "POST",
      path,
      body: {
        apiVersion: `${authenticationGroup}/v1alpha1`,
        kind: "JWTAuthenticator",
        metadata: { name, labels: { [label]: "yes" } },
        spec,
      },
    });
    return name;
  }

  const get = (name: string) =>
    admin.request<JWTAuthenticatorObject>({ method: "GET", path: `${path}/${name}` });
  const cached = (name: string) =>
    cache.get({ apiGroup: authenticationGroup, kind: "JWTAuthenticator", name });

  async function waitForPhase(name: string, phase: "Ready" | "Error"): Promise<JWTAuthenticatorObject> {
    return eventually(
      `${name} to be ${phase}`,
      async () => {
        const o = await get(name);
        return o.status?.phase === phase ? o : undefined;
      },
      polling,
    );
  }

  async function authenticate(name: string, token: string): Promise<AuthenticationResult> {
    const entry = cached(name);
    assert.ok(entry, `${name} is cached`);
    return entry.authenticator.authenticateToken(token);
  }

  it("makes a healthy JWTAuthenticator Ready with upstream's conditions, and caches it (timed)", async (t) => {
    const times: number[] = [];
    let last: JWTAuthenticatorObject | undefined;
    let name = "";
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      name = await create("healthy", specFor(provider));
      last = await waitForPhase(name, "Ready");
      times.push(performance.now() - started);
    }
    assert.deepEqual(strip(last?.status?.conditions), conditionSet());
    for (const condition of last?.status?.conditions ?? []) {
      assert.equal(condition.observedGeneration, last?.metadata?.generation);
      assert.match(condition.lastTransitionTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    await eventually("the authenticator in the cache", () => cached(name), polling);
    // What a GitOps pipeline runs after applying the authenticator.
    const waited = await c.kubectl([
      "wait",
      "--for=condition=Ready",
      `jwtauthenticator/${name}`,
      "--timeout=30s",
    ]);
    assert.equal(waited.code, 0, waited.stderr);
    const sorted = [...times].sort((a, b) => a - b);
    t.diagnostic(
      `create → Ready over ${times.length} JWTAuthenticators: min ${sorted[0]?.toFixed(1)} ms, ` +
        `median ${sorted[2]?.toFixed(1)} ms, max ${sorted[4]?.toFixed(1)} ms (first: ${times[0]?.toFixed(1)} ms)`,
    );
  });

  it("authenticates real ID tokens from the provider to the right user and groups, and refuses bad ones", async () => {
    const name = await create(
      "tokens",
      specFor(provider, {
        audiences: [webAudience],
        audienceMatchPolicy: "MatchAny",
        claims: { groups: "roles" },
      }),
    );
    await waitForPhase(name, "Ready");
    await eventually("the authenticator in the cache", () => cached(name), polling);

    const alice = { username: "alice@example.com", roles: ["devs", "admins"] };
    const mint = (claims: Record<string, unknown>, more: { audience?: string; expiresIn?: number } = {}) =>
      provider.mint({ subject: "alice-subject", audience: more.audience ?? audience, claims, ...more });

    for (const aud of [audience, webAudience]) {
      const result = await authenticate(name, await mint(alice, { audience: aud }));
      assert.equal(result.authenticated, true, JSON.stringify(result));
      assert.ok(result.authenticated);
      assert.equal(result.user.username, "alice@example.com");
      assert.deepEqual(result.user.groups, ["devs", "admins"]);
    }
    const bob = await authenticate(name, await mint({ username: "bob", roles: "solo-group" }));
    assert.ok(bob.authenticated);
    assert.deepEqual([bob.user.username, bob.user.groups], ["bob", ["solo-group"]]);

    const good = await mint(alice);
    const [header, payload, signature] = good.split(".");
    const tampered = [
      header,
      Buffer.from(
        JSON.stringify({
          ...JSON.parse(Buffer.from(payload ?? "", "base64url").toString()),
          username: "mallory",
        }),
      ).toString("base64url"),
      signature,
    ].join(".");
    const { privateKey } = await generateKeyPair("RS256");
    const forged = await new SignJWT({ username: "mallory", aud: audience })
      .setProtectedHeader({ alg: "RS256", kid: "not-the-providers" })
      .setIssuer(provider.issuer)
      .setSubject("mallory")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(privateKey);
    const bad: [string, string][] = [
      ["another audience", await mint(alice, { audience: strangerAudience })],
      ["expired", await mint(alice, { expiresIn: -120 })],
      ["tampered payload", tampered],
      ["signed with a key not in the provider's JWKS", forged],
      ["no username claim", await mint({ roles: ["devs"] })],
      ["a system: username (systemPrefixPolicy Reject by default)", await mint({ username: "system:admin" })],
      ["not a JWT", "not-a-jwt"],
    ];
    for (const [why, token] of bad) {
      assert.equal((await authenticate(name, token)).authenticated, false, why);
    }
  });

  it("follows the provider's key rotation with the authenticator it already cached", async () => {
    const rotating = await startOIDCProvider({ audiences: [audience] });
    try {
      const name = await create("rotation", specFor(rotating));
      await waitForPhase(name, "Ready");
      const entry = await eventually("the authenticator in the cache", () => cached(name), polling);
      const claims = { username: "carol", groups: ["ops"] };
      const before = await rotating.mint({ subject: "carol", audience, claims });
      assert.equal((await authenticate(name, before)).authenticated, true);

      const oldKid = rotating.kids()[0];
      await rotating.rotateKeys({ dropOld: true, algorithm: "ES256" });
      assert.notEqual(rotating.kids()[0], oldKid);
      const afterRotation = await rotating.mint({ subject: "carol", audience, claims });
      // An unknown kid makes the key set refetch the JWKS, rate-limited to one fetch every few seconds.
      const result = await eventually(
        "a token signed by the new key to authenticate",
        async () => {
          const r = await entry.authenticator.authenticateToken(afterRotation);
          return r.authenticated ? r : undefined;
        },
        { ...polling, timeoutMs: 20_000 },
      );
      assert.equal(result.user.username, "carol");
      assert.equal(cached(name), entry, "the same cached authenticator, not a re-validated one");
      assert.equal((await authenticate(name, before)).authenticated, false, "the dropped key's token");
      assert.equal((await get(name)).status?.phase, "Ready");
    } finally {
      await rotating.close();
    }
  });

  describe("broken authenticators get upstream's conditions", () => {
    const cases: { name: string; spec: () => Promise<JWTAuthenticatorSpec>; want: () => Expected[] }[] = [
      {
        name: "a CA that is not base64",
        spec: async () =>
          specFor(provider, { tls: { certificateAuthorityData: "invalid base64-encoded data" } }),
        want: () =>
          conditionSet([
            {
              type: "TLSConfigurationValid",
              status: "False",
              reason: "InvalidTLSConfig",
              message: "spec.tls.certificateAuthorityData is invalid: illegal base64 data at input byte 7",
            },
            unknown("DiscoveryURLValid"),
            ...afterDiscovery,
          ]),
      },
      {
        name: "a CA that did not sign the issuer's certificate",
        spec: async () => specFor(provider, { tls: { certificateAuthorityData: b64(notAPEM) } }),
        want: () =>
          conditionSet([
            {
              type: "DiscoveryURLValid",
              status: "False",
              reason: "InvalidDiscoveryProbe",
              message: `could not perform oidc discovery on provider issuer: Get "${provider.issuer}/.well-known/openid-configuration": tls: failed to verify certificate: x509: certificate signed by unknown authority`,
            },
            ...afterDiscovery,
          ]),
      },
      (() => {
        let port = 0;
        return {
          name: "an unreachable issuer",
          spec: async () => {
            port = await unusedPort();
            return specFor(provider, { issuer: `https://127.0.0.1:${port}/some-fake-issuer-path` });
          },
          want: () =>
            conditionSet([
              {
                type: "DiscoveryURLValid",
                status: "False",
                reason: "InvalidDiscoveryProbe",
                message: `could not perform oidc discovery on provider issuer: Get "https://127.0.0.1:${port}/some-fake-issuer-path/.well-known/openid-configuration": dial tcp 127.0.0.1:${port}: connect: connection refused`,
              },
              ...afterDiscovery,
            ]),
        };
      })(),
      {
        name: "a discovery document for another issuer (a trailing slash is another issuer)",
        spec: async () => specFor(provider, { issuer: `${provider.issuer}/` }),
        want: () =>
          conditionSet([
            {
              type: "DiscoveryURLValid",
              status: "False",
              reason: "InvalidDiscoveryProbe",
              message: `could not perform oidc discovery on provider issuer: oidc: issuer did not match the issuer returned by provider, expected "${provider.issuer}/" got "${provider.issuer}"`,
            },
            ...afterDiscovery,
          ]),
      },
      ...(
        [
          ["query", "?tenant=a", "InvalidIssuerURLContainsQueryParams", "cannot include query params"],
          ["fragment", "#here", "InvalidIssuerURLContainsFragment", "cannot include fragment"],
          [
            "well-known path",
            "/.well-known/openid-configuration",
            "InvalidIssuerURLContainsWellKnownEndpoint",
            "cannot include path '/.well-known/openid-configuration'",
          ],
        ] as const
      ).map(([what, suffix, reason, detail]) => ({
        name: `an issuer with a ${what}`,
        spec: async () => specFor(provider, { issuer: `${provider.issuer}${suffix}` }),
        want: () =>
          conditionSet([
            {
              type: "IssuerURLValid",
              status: "False",
              reason,
              message: `spec.issuer ${provider.issuer}${suffix} ${detail}`,
            },
            unknown("DiscoveryURLValid"),
            ...afterDiscovery,
          ]),
      })),
      {
        name: "claims with both username and usernameExpression",
        spec: async () => specFor(provider, { claims: { username: "foo", usernameExpression: "bar" } }),
        want: () =>
          conditionSet([
            notReady,
            {
              type: "AuthenticatorValid",
              status: "False",
              reason: "InvalidAuthenticator",
              message: `could not initialize jwt authenticator: claims.username: Invalid value: "": claim and expression can't both be set`,
            },
          ]),
      },
      {
        name: "an extra key with an equals sign",
        spec: async () =>
          specFor(provider, { claims: { extra: [{ key: "a=b", valueExpression: '"value"' }] } }),
        want: () =>
          including(
            conditionSet([
              notReady,
              {
                type: "AuthenticatorValid",
                status: "False",
                reason: "InvalidAuthenticator",
                message:
                  `could not initialize jwt authenticator: [` +
                  `claims.extra[0].key: Invalid value: "a=b": must be a domain-prefixed path (such as "acme.io/foo"), ` +
                  `claims.extra[0].key: Invalid value: "a=b": Pinniped does not allow extra key names to contain equals sign]`,
              },
            ]),
            extrasNotDeliverable,
          ),
      },
    ];
    for (const tc of cases) {
      it(tc.name, async () => {
        const name = await create("broken", await tc.spec());
        const o = await waitForPhase(name, "Error");
        assert.deepEqual(strip(o.status?.conditions), tc.want());
        assert.equal(cached(name), undefined);
      });
    }

    it("an http issuer never gets this far: the CRD refuses it", async () => {
      const err = await create("http", { issuer: "http://www.example.com", audience }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof ApiError && err.code === 422, String(err));
      assert.match(
        err.message,
        /spec\.issuer: Invalid value: "http:\/\/www\.example\.com": spec\.issuer in body should match '\^https:\/\/'/,
      );
    });
  });

  for (const kind of ["Secret", "ConfigMap"] as const) {
    it(`takes the CA from a ${kind}, following its changes Error → Ready → Error → Ready`, async () => {
      const objectName = c.uniqueName("ca-bundle");
      const collection = `/api/v1/namespaces/${namespace}/${kind === "Secret" ? "secrets" : "configmaps"}`;
      const content = (pem: string) =>
        kind === "Secret" ? { type: "Opaque", data: { "ca.crt": b64(pem) } } : { data: { "ca.crt": pem } };
      const name = await create(
        `ca-from-${kind.toLowerCase()}`,
        specFor(provider, {
          tls: { certificateAuthorityDataSource: { kind, name: objectName, key: "ca.crt" } },
        }),
      );
      const missing = await waitForPhase(name, "Error");
      const lower = kind.toLowerCase();
      assert.equal(
        missing.status?.conditions?.find((x) => x.type === "TLSConfigurationValid")?.message,
        `spec.tls.certificateAuthorityDataSource is invalid: failed to get ${lower} "${namespace}/${objectName}": ${lower} "${objectName}" not found`,
      );

      await admin.request({
        method: "POST",
        path: collection,
        body: { metadata: { name: objectName }, ...content(provider.caPEM) },
      });
      const ready = await waitForPhase(name, "Ready");
      assert.deepEqual(strip(ready.status?.conditions), conditionSet());
      await eventually("the authenticator in the cache", () => cached(name), polling);

      const patch = (pem: string) =>
        admin.request({
          method: "PATCH",
          path: `${collection}/${objectName}`,
          contentType: "application/merge-patch+json",
          body: content(pem),
        });
      const junk = "this is not a valid CA bundle value";
      await patch(junk);
      const broken = await waitForPhase(name, "Error");
      assert.equal(
        broken.status?.conditions?.find((x) => x.type === "TLSConfigurationValid")?.message,
        `spec.tls.certificateAuthorityDataSource is invalid: key "ca.crt" with ${junk.length} bytes of data in ${lower} "${namespace}/${objectName}" is not a PEM-encoded certificate (PEM certificates must begin with "-----BEGIN CERTIFICATE-----")`,
      );
      assert.equal(cached(name), undefined, "evicted with the broken bundle");

      await patch(provider.caPEM);
      await waitForPhase(name, "Ready");
      await eventually("the authenticator back in the cache", () => cached(name), polling);
    });
  }

  it("reverts manual status edits", async () => {
    const name = await create("edited", specFor(provider));
    const ready = await waitForPhase(name, "Ready");
    const conditions = structuredClone(ready.status?.conditions ?? []);
    const original = conditions[0]?.message;
    assert.ok(conditions[0]);
    conditions[0].message = "this is a manually edited message that should go away";
    await admin.request({
      method: "PATCH",
      path: `${path}/${name}/status`,
      contentType: "application/merge-patch+json",
      body: { status: { phase: "Pending", conditions } },
    });
    await eventually(
      "the controller to restore the status",
      async () => {
        const o = await get(name);
        return o.status?.phase === "Ready" && o.status.conditions?.[0]?.message === original;
      },
      polling,
    );
    assert.deepEqual((await get(name)).status, ready.status);
  });

  it("shows an authenticator mapping claims.extra as not Ready, and Ready once the extras are gone", async () => {
    const extra = [{ key: "example.com/tenant", valueExpression: "claims.tenant" }];
    const name = await create("extras", specFor(provider, { claims: { extra } }));
    const broken = await waitForPhase(name, "Error");
    assert.deepEqual(
      strip(broken.status?.conditions),
      including(conditionSet([notReady]), extrasNotDeliverable),
    );
    assert.equal(cached(name), undefined);
    // What a GitOps health check reads: Ready is False, with the reason one condition away.
    const notYet = await c.kubectl([
      "wait",
      "--for=condition=ClaimsExtraDeliverable=False",
      `jwtauthenticator/${name}`,
      "--timeout=30s",
    ]);
    assert.equal(notYet.code, 0, notYet.stderr);

    await admin.request({
      method: "PATCH",
      path: `${path}/${name}`,
      contentType: "application/merge-patch+json",
      body: { spec: { claims: null } },
    });
    const fixed = await waitForPhase(name, "Ready");
    assert.deepEqual(strip(fixed.status?.conditions), conditionSet());
    await eventually("the authenticator in the cache", () => cached(name), polling);
  });

  it("a server-side apply of the same file twice writes nothing the second time, status included", async () => {
    const name = c.uniqueName("gitops");
    const file = JSON.stringify({
      apiVersion: `${authenticationGroup}/v1alpha1`,
      kind: "JWTAuthenticator",
      metadata: { name, labels: { [label]: "yes" } },
      spec: specFor(provider),
    });
    const kubectl = (verb: string[]) =>
      c.kubectl([...verb, "--server-side", "--field-manager=gitops-test", "-f", "-"], { input: file });
    const first = await kubectl(["apply"]);
    assert.equal(first.code, 0, first.stderr);
    await waitForPhase(name, "Ready");
    await eventually("the authenticator in the cache", () => cached(name), polling);
    const settled = await get(name);
    const again = await kubectl(["apply", "-o", "jsonpath={.metadata.resourceVersion}"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, settled.metadata?.resourceVersion);
    const diff = await kubectl(["diff"]);
    assert.equal(diff.code, 0, `kubectl diff found drift:\n${diff.stdout}${diff.stderr}`);
  });

  it("re-validates a changed spec and evicts a deleted authenticator", async () => {
    const name = await create("lifecycle", specFor(provider));
    await waitForPhase(name, "Ready");
    const first = await eventually("the authenticator in the cache", () => cached(name), polling);

    await admin.request({
      method: "PATCH",
      path: `${path}/${name}`,
      contentType: "application/merge-patch+json",
      body: { spec: { audience: webAudience } },
    });
    const changed = await eventually(
      "conditions of generation 2",
      async () => {
        const o = await get(name);
        return o.status?.conditions?.every((x) => x.observedGeneration === 2) ? o : undefined;
      },
      polling,
    );
    assert.equal(changed.status?.phase, "Ready");
    const second = await eventually(
      "a new authenticator in the cache",
      () => {
        const entry = cached(name);
        return entry && entry !== first ? entry : undefined;
      },
      polling,
    );
    const token = await provider.mint({
      subject: "dave",
      audience: webAudience,
      claims: { username: "dave" },
    });
    assert.equal((await second.authenticator.authenticateToken(token)).authenticated, true);

    await admin.request({ method: "DELETE", path: `${path}/${name}` });
    await eventually("the authenticator to leave the cache", () => cached(name) === undefined, polling);
    await eventually(
      "the object to be gone",
      () =>
        get(name).then(
          () => false,
          (err: unknown) => isNotFound(err),
        ),
      polling,
    );
  });
});
