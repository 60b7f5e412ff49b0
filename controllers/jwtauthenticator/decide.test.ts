import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JWTAuthenticatorSpec } from "../../apis/index.ts";
import type { TLSResolution } from "../../authenticators/tls/cabundle.ts";
import { invalid } from "../../kube/fielderror.ts";
import type { ConditionUpdate } from "../runtime/conditions.ts";
import {
  type Decision,
  decide,
  extrasCondition,
  fingerprint,
  issuerCondition,
  jwksURLCondition,
  type Observation,
  readDiscoveryDocument,
  truncateLongError,
} from "./decide.ts";

const issuer = "https://issuer.example.com/path";
const spec: JWTAuthenticatorSpec = { issuer, audience: "aud" };
const unable = "unable to validate; see other conditions for details";

const tlsWithCA: TLSResolution = {
  condition: {
    type: "TLSConfigurationValid",
    status: "True",
    reason: "Success",
    message: "spec.tls is valid: using configured CA bundle",
  },
  bundle: { pem: "PEM", sha256: "abc" },
};
const tlsInvalid: TLSResolution = {
  condition: {
    type: "TLSConfigurationValid",
    status: "False",
    reason: "InvalidTLSConfig",
    message: "spec.tls.certificateAuthorityData is invalid: illegal base64 data at input byte 7",
  },
  bundle: undefined,
};

const goodDocument = { issuer, jwks_uri: `${issuer}/jwks.json` };

function observe(overrides: Partial<Observation> = {}): Observation {
  const base = { spec, tls: tlsWithCA, cachedFingerprint: undefined, specErrors: [], ...overrides };
  return { fingerprint: fingerprint(base.spec, base.tls.bundle?.sha256), ...base };
}

/** Every probe answered well, then `overrides`. */
function probed(overrides: Partial<Observation> = {}): Observation {
  return observe({ discovery: { ok: true, document: goodDocument }, keys: { ok: true }, ...overrides });
}

const happy: Record<string, ConditionUpdate> = {
  TLSConfigurationValid: tlsWithCA.condition,
  IssuerURLValid: {
    type: "IssuerURLValid",
    status: "True",
    reason: "Success",
    message: "issuer is a valid URL",
  },
  DiscoveryURLValid: {
    type: "DiscoveryURLValid",
    status: "True",
    reason: "Success",
    message: "discovery performed successfully",
  },
  JWKSURLValid: {
    type: "JWKSURLValid",
    status: "True",
    reason: "Success",
    message: "jwks_uri is a valid URL",
  },
  JWKSFetchValid: {
    type: "JWKSFetchValid",
    status: "True",
    reason: "Success",
    message: "successfully fetched jwks",
  },
  AuthenticatorValid: {
    type: "AuthenticatorValid",
    status: "True",
    reason: "Success",
    message: "authenticator initialized",
  },
  Ready: { type: "Ready", status: "True", reason: "Success", message: "the JWTAuthenticator is ready" },
};
const notReady: ConditionUpdate = {
  type: "Ready",
  status: "False",
  reason: "NotReady",
  message: "the JWTAuthenticator is not ready: see other conditions for details",
};
const unknownOf = (type: string): ConditionUpdate => ({
  type,
  status: "Unknown",
  reason: "UnableToValidate",
  message: unable,
});
const falseOf = (type: string, reason: string, message: string): ConditionUpdate => ({
  type,
  status: "False",
  reason,
  message,
});

/** Upstream's order, with `replace` swapped in by type. */
function want(...replace: ConditionUpdate[]): ConditionUpdate[] {
  return Object.values(happy).map((c) => replace.find((r) => r.type === c.type) ?? c);
}

function final(d: Decision) {
  assert.equal(d.next, undefined, `expected a final decision, got next probe ${JSON.stringify(d.next)}`);
  return d as Extract<Decision, { next: undefined }>;
}

describe("decide", () => {
  it("asks for discovery first, at the issuer's well-known URL without a doubled slash", () => {
    assert.deepEqual(decide(observe()).next, {
      probe: "discovery",
      url: `${issuer}/.well-known/openid-configuration`,
    });
    const slash = observe({ spec: { ...spec, issuer: `${issuer}/` } });
    assert.deepEqual(decide(slash).next, {
      probe: "discovery",
      url: `${issuer}/.well-known/openid-configuration`,
    });
  });

  it("then for the keys at the document's jwks_uri", () => {
    const o = observe({ discovery: { ok: true, document: goodDocument } });
    assert.deepEqual(decide(o).next, { probe: "keys", jwksURL: `${issuer}/jwks.json` });
  });

  const cases: {
    name: string;
    observation: Observation;
    conditions: ConditionUpdate[];
    skipped?: boolean;
    retry?: string;
  }[] = [
    { name: "every probe passed", observation: probed(), conditions: want() },
    {
      name: "the cache holds this very authenticator: nothing is probed",
      observation: observe({ cachedFingerprint: fingerprint(spec, "abc") }),
      conditions: want(),
      skipped: true,
    },
    {
      name: "bad base64 CA: everything downstream of TLS is unknown",
      observation: observe({ tls: tlsInvalid, cachedFingerprint: fingerprint(spec, undefined) }),
      conditions: want(
        tlsInvalid.condition,
        unknownOf("DiscoveryURLValid"),
        unknownOf("JWKSURLValid"),
        unknownOf("JWKSFetchValid"),
        unknownOf("AuthenticatorValid"),
        notReady,
      ),
    },
    {
      name: "an issuer with a query",
      observation: observe({ spec: { ...spec, issuer: `${issuer}?a=b` } }),
      conditions: want(
        falseOf(
          "IssuerURLValid",
          "InvalidIssuerURLContainsQueryParams",
          `spec.issuer ${issuer}?a=b cannot include query params`,
        ),
        unknownOf("DiscoveryURLValid"),
        unknownOf("JWKSURLValid"),
        unknownOf("JWKSFetchValid"),
        unknownOf("AuthenticatorValid"),
        notReady,
      ),
    },
    {
      name: "discovery failed: retried, and what follows is unknown",
      observation: observe({
        discovery: { ok: false, error: 'Get "x": dial tcp 127.0.0.1:1: connect: connection refused' },
      }),
      conditions: want(
        falseOf(
          "DiscoveryURLValid",
          "InvalidDiscoveryProbe",
          'could not perform oidc discovery on provider issuer: Get "x": dial tcp 127.0.0.1:1: connect: connection refused',
        ),
        unknownOf("JWKSURLValid"),
        unknownOf("JWKSFetchValid"),
        unknownOf("AuthenticatorValid"),
        notReady,
      ),
      retry:
        'could not perform oidc discovery on provider issuer: Get "x": dial tcp 127.0.0.1:1: connect: connection refused',
    },
    {
      name: "the discovery document names another issuer",
      observation: observe({ discovery: { ok: true, document: { ...goodDocument, issuer: `${issuer}/` } } }),
      conditions: want(
        falseOf(
          "DiscoveryURLValid",
          "InvalidDiscoveryProbe",
          `could not perform oidc discovery on provider issuer: oidc: issuer did not match the issuer returned by provider, expected "${issuer}" got "${issuer}/"`,
        ),
        unknownOf("JWKSURLValid"),
        unknownOf("JWKSFetchValid"),
        unknownOf("AuthenticatorValid"),
        notReady,
      ),
      retry: `could not perform oidc discovery on provider issuer: oidc: issuer did not match the issuer returned by provider, expected "${issuer}" got "${issuer}/"`,
    },
    {
      name: "an http jwks_uri",
      observation: observe({
        discovery: {
          ok: true,
          document: { issuer, jwks_uri: "http://.café.com/café/café/café/coffee/jwks.json" },
        },
      }),
      conditions: want(
        falseOf(
          "JWKSURLValid",
          "InvalidProviderJWKSURLScheme",
          "jwks_uri http://.café.com/café/café/café/coffee/jwks.json has invalid scheme, require 'https'",
        ),
        unknownOf("JWKSFetchValid"),
        unknownOf("AuthenticatorValid"),
        notReady,
      ),
      retry: "jwks_uri http://.café.com/café/café/café/coffee/jwks.json has invalid scheme, require 'https'",
    },
    {
      name: "a jwks_uri that does not parse",
      observation: observe({
        discovery: {
          ok: true,
          document: { issuer, jwks_uri: "https://.café   .com/café/café/café/coffee/jwks.json" },
        },
      }),
      conditions: want(
        falseOf(
          "JWKSURLValid",
          "InvalidProviderJWKSURL",
          'could not parse provider jwks_uri: parse "https://.café   .com/café/café/café/coffee/jwks.json": invalid character " " in host name',
        ),
        unknownOf("JWKSFetchValid"),
        unknownOf("AuthenticatorValid"),
        notReady,
      ),
      retry:
        'could not parse provider jwks_uri: parse "https://.café   .com/café/café/café/coffee/jwks.json": invalid character " " in host name',
    },
    {
      name: "no jwks_uri at all",
      observation: observe({ discovery: { ok: true, document: { issuer } } }),
      conditions: want(
        falseOf(
          "JWKSURLValid",
          "InvalidProviderJWKSURLScheme",
          "jwks_uri  has invalid scheme, require 'https'",
        ),
        unknownOf("JWKSFetchValid"),
        unknownOf("AuthenticatorValid"),
        notReady,
      ),
      retry: "jwks_uri  has invalid scheme, require 'https'",
    },
    {
      name: "the keys could not be fetched",
      observation: probed({ keys: { ok: false, stage: "fetch", error: "404 Not Found" } }),
      conditions: want(
        falseOf("JWKSFetchValid", "InvalidCouldNotFetchJWKS", "could not fetch keys: 404 Not Found"),
        unknownOf("AuthenticatorValid"),
        notReady,
      ),
      retry: "could not fetch keys: 404 Not Found",
    },
    {
      name: "the authenticator could not be built",
      observation: probed({ keys: { ok: false, stage: "init", error: "boom" } }),
      conditions: want(
        unknownOf("JWKSFetchValid"),
        falseOf("AuthenticatorValid", "InvalidAuthenticator", "could not initialize jwt authenticator: boom"),
        notReady,
      ),
    },
    {
      name: "the spec is invalid: not retried, a user must fix it",
      observation: probed({
        specErrors: [
          invalid("claims.extra[0].key", "a=b", 'must be a domain-prefixed path (such as "acme.io/foo")'),
          invalid(
            "claims.extra[0].key",
            "a=b",
            "Pinniped does not allow extra key names to contain equals sign",
          ),
        ],
      }),
      conditions: want(
        falseOf(
          "AuthenticatorValid",
          "InvalidAuthenticator",
          'could not initialize jwt authenticator: [claims.extra[0].key: Invalid value: "a=b": must be a domain-prefixed path (such as "acme.io/foo"), claims.extra[0].key: Invalid value: "a=b": Pinniped does not allow extra key names to contain equals sign]',
        ),
        notReady,
      ),
    },
    {
      name: "an invalid spec behind a failed discovery is unknown, as upstream",
      observation: observe({
        discovery: { ok: false, error: "nope" },
        specErrors: [invalid("claims.username", "", "claim and expression can't both be set")],
      }),
      conditions: want(
        falseOf(
          "DiscoveryURLValid",
          "InvalidDiscoveryProbe",
          "could not perform oidc discovery on provider issuer: nope",
        ),
        unknownOf("JWKSURLValid"),
        unknownOf("JWKSFetchValid"),
        unknownOf("AuthenticatorValid"),
        notReady,
      ),
      retry: "could not perform oidc discovery on provider issuer: nope",
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const d = final(decide(c.observation));
      assert.deepEqual(d.conditions, c.conditions);
      assert.equal(
        d.valid,
        c.conditions.every((x) => x.status === "True"),
      );
      assert.equal(d.skipped, c.skipped ?? false);
      assert.equal(d.retry, c.retry);
    });
  }

  it("an authenticator mapping claims.extra is not Ready, since no credential can carry extras", () => {
    const withExtra = {
      ...spec,
      claims: { extra: [{ key: "example.com/tenant", valueExpression: "claims.t" }] },
    };
    const d = final(decide(probed({ spec: withExtra })));
    const { Ready: _, ...probesPassed } = happy;
    assert.deepEqual(d.conditions, [
      ...Object.values(probesPassed),
      falseOf(
        "ClaimsExtraDeliverable",
        "NoStrategyCarriesExtras",
        "spec.claims.extra cannot be delivered: the Concierge's client certificates cannot carry extras to kube-apiserver; this authenticator serves no login until spec.claims.extra is removed",
      ),
      notReady,
    ]);
    assert.equal(d.valid, false);
    assert.equal(d.retry, undefined, "a user must fix the spec; retrying changes nothing");
    assert.equal(extrasCondition({ ...spec, claims: { extra: [] } }), undefined);
  });

  it("an authenticator mapping claims.extra is Ready, with no extra condition, when a strategy carries extras", () => {
    const withExtra = {
      ...spec,
      claims: { extra: [{ key: "example.com/tenant", valueExpression: "claims.t" }] },
    };
    const d = final(decide(probed({ spec: withExtra, extrasDeliverable: true })));
    assert.deepEqual(d.conditions, Object.values(happy));
    assert.equal(d.valid, true);
  });

  it("re-probes when the cached authenticator was built from anything else", () => {
    const o = observe({ cachedFingerprint: fingerprint({ ...spec, audience: "other" }, "abc") });
    assert.equal(decide(o).next?.probe, "discovery");
  });

  it("truncates long discovery errors, except go-oidc's and x509's, but retries with the whole error", () => {
    const long = `404 Not Found: ${"x".repeat(400)}`;
    const d = final(decide(observe({ discovery: { ok: false, error: long } })));
    const discovery = d.conditions.find((c) => c.type === "DiscoveryURLValid");
    assert.equal(
      discovery?.message,
      `could not perform oidc discovery on provider issuer: ${long.slice(0, 300)} [truncated 115 chars]`,
    );
    assert.equal(d.retry, `could not perform oidc discovery on provider issuer: ${long}`);
    assert.equal(truncateLongError(`x509: ${"y".repeat(400)}`).length, 406);
    assert.equal(truncateLongError(`oidc: ${"y".repeat(400)}`).length, 406);
  });
});

describe("issuerCondition", () => {
  const cases: [string, string, string][] = [
    ["https://example.com/a", "Success", "issuer is a valid URL"],
    [
      "https://.café   .com/café/café/café/coffee",
      "InvalidIssuerURL",
      'spec.issuer URL is invalid: parse "https://.café   .com/café/café/café/coffee": invalid character " " in host name',
    ],
    [
      "http://.café.com/café/café/café/coffee",
      "InvalidIssuerURLScheme",
      "spec.issuer http://.café.com/café/café/café/coffee has invalid scheme, require 'https'",
    ],
    [
      "https://example.com/a/.well-known/openid-configuration",
      "InvalidIssuerURLContainsWellKnownEndpoint",
      "spec.issuer https://example.com/a/.well-known/openid-configuration cannot include path '/.well-known/openid-configuration'",
    ],
    [
      "https://example.com/a?x=1",
      "InvalidIssuerURLContainsQueryParams",
      "spec.issuer https://example.com/a?x=1 cannot include query params",
    ],
    [
      "https://example.com/a#frag",
      "InvalidIssuerURLContainsFragment",
      "spec.issuer https://example.com/a#frag cannot include fragment",
    ],
    // Go's url.Query() of an empty query, and its empty Fragment, are empty.
    ["https://example.com/a?", "Success", "issuer is a valid URL"],
    ["https://example.com/a#", "Success", "issuer is a valid URL"],
    [
      "https://example.com:abc/",
      "InvalidIssuerURL",
      'spec.issuer URL is invalid: parse "https://example.com:abc/": invalid port ":abc" after host',
    ],
  ];
  for (const [input, reason, message] of cases) {
    it(`${input} → ${reason}`, () => {
      const c = issuerCondition(input);
      assert.deepEqual(
        { reason: c.reason, message: c.message, status: c.status },
        { reason, message, status: reason === "Success" ? "True" : "False" },
      );
    });
  }
});

describe("jwksURLCondition", () => {
  it("accepts https, refuses other schemes (a relative URL has none) and unparseable URLs", () => {
    assert.equal(jwksURLCondition("https://example.com/keys").status, "True");
    assert.equal(jwksURLCondition("/keys").message, "jwks_uri /keys has invalid scheme, require 'https'");
    assert.equal(jwksURLCondition("https://a b/").reason, "InvalidProviderJWKSURL");
  });
});

describe("readDiscoveryDocument", () => {
  it("needs an object whose issuer is the one asked for", () => {
    assert.deepEqual(readDiscoveryDocument(issuer, goodDocument), {
      ok: true,
      jwksURI: `${issuer}/jwks.json`,
    });
    assert.deepEqual(readDiscoveryDocument(issuer, [1]), {
      ok: false,
      error: "oidc: failed to decode provider discovery object: not a JSON object",
    });
    assert.deepEqual(readDiscoveryDocument(issuer, { issuer: 7 }), {
      ok: false,
      error: "oidc: failed to decode provider discovery object: field issuer is not a string",
    });
    assert.deepEqual(readDiscoveryDocument(issuer, {}), {
      ok: false,
      error: `oidc: issuer did not match the issuer returned by provider, expected "${issuer}" got ""`,
    });
  });
});

describe("fingerprint", () => {
  it("is the spec without tls, plus the CA bundle's hash, whatever the key order", () => {
    const a = fingerprint({ issuer, audience: "aud", claims: { username: "u", groups: "g" } }, "h");
    const b = fingerprint({ claims: { groups: "g", username: "u" }, audience: "aud", issuer }, "h");
    assert.equal(a, b);
    const withTLS = fingerprint(
      {
        issuer,
        audience: "aud",
        claims: { username: "u", groups: "g" },
        tls: { certificateAuthorityData: "x" },
      },
      "h",
    );
    assert.equal(withTLS, a);
    assert.notEqual(
      fingerprint({ issuer, audience: "aud", claims: { username: "u", groups: "g" } }, "other"),
      a,
    );
    for (const changed of [
      { issuer, audience: "aud2", claims: { username: "u", groups: "g" } },
      { issuer, audience: "aud", claims: { username: "u", groups: "g" }, audiences: ["x"] },
      {
        issuer,
        audience: "aud",
        claims: { username: "u", groups: "g" },
        systemPrefixPolicy: "Allow" as const,
      },
      {
        issuer,
        audience: "aud",
        claims: { username: "u", groups: "g" },
        userValidationRules: [{ expression: "true" }],
      },
    ]) {
      assert.notEqual(fingerprint(changed, "h"), a);
    }
  });
});
