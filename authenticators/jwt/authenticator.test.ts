import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { FakeClock } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { type ClaimsSpecInput, compileClaims } from "../cel/claims.ts";
import type { AuthenticationResult } from "../types.ts";
import {
  type JWTAuthenticatorConfig,
  type JWTTokenAuthenticator,
  maxTokenBytes,
  newJWTAuthenticator,
} from "./authenticator.ts";
import { credentialIDKey } from "./identity.ts";
import { newSigningKey, type SigningKey, signToken, startTestIssuer, type TestIssuer } from "./testing.ts";

const b64 = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

describe("JWT authenticator: token validation", () => {
  let issuer: TestIssuer;
  let rsa: SigningKey;
  let ec: SigningKey;
  let stranger: SigningKey;
  const clock = new FakeClock(Date.UTC(2026, 10, 28, 12, 0, 0));
  const nowS = () => Math.floor(clock.now() / 1000);
  const open: JWTTokenAuthenticator[] = [];

  before(async () => {
    issuer = await startTestIssuer();
    [rsa, ec, stranger] = await Promise.all([
      newSigningKey("RS256", "rsa-1"),
      newSigningKey("ES256", "ec-1"),
      newSigningKey("RS256", "rsa-1"),
    ]);
    issuer.setKeys([rsa, ec]);
  });

  after(() => issuer.close());

  afterEach(() => {
    for (const a of open.splice(0)) a.close();
  });

  function authenticator(
    spec: ClaimsSpecInput = {},
    overrides: Partial<JWTAuthenticatorConfig> = {},
  ): JWTTokenAuthenticator {
    const { compiled, errors } = compileClaims(spec);
    assert.deepEqual(errors, []);
    const a = newJWTAuthenticator({
      name: "test",
      issuer: issuer.url,
      audiences: ["concierge"],
      compiled,
      claimValidationRules: (spec.claimValidationRules ?? []).filter((r) => r.claim !== undefined),
      systemPrefixPolicy: "Reject",
      jwksURL: issuer.jwksURL,
      caPEM: issuer.caPEM,
      clock,
      ...overrides,
    });
    open.push(a);
    return a;
  }

  const claims = (extra: JWTPayload = {}): JWTPayload => ({
    iss: issuer.url,
    aud: "concierge",
    sub: "u-1",
    username: "jane",
    groups: ["devs", "ops"],
    iat: nowS(),
    exp: nowS() + 300,
    ...extra,
  });

  async function accepted(a: JWTTokenAuthenticator, token: string) {
    const result = await a.authenticateToken(token);
    assert.ok(result.authenticated, result.authenticated ? "" : `rejected: ${result.reason}`);
    return result.user;
  }

  async function rejected(a: JWTTokenAuthenticator, token: string, reason: RegExp): Promise<void> {
    const result: AuthenticationResult = await a.authenticateToken(token);
    assert.equal(result.authenticated, false);
    if (result.authenticated) return;
    assert.match(result.reason, reason);
    if (token.length > 20) assert.ok(!result.reason.includes(token), "the reason contains the token");
    for (const part of token.split(".")) {
      if (part.length > 20) assert.ok(!result.reason.includes(part), "the reason contains part of the token");
    }
  }

  it("accepts valid RS256 and ES256 tokens, with username and groups and no prefixes", async () => {
    const a = authenticator();
    assert.deepEqual(await accepted(a, await signToken(rsa, claims())), {
      username: "jane",
      groups: ["devs", "ops"],
    });
    assert.deepEqual(await accepted(a, await signToken(ec, claims({ groups: "solo" }))), {
      username: "jane",
      groups: ["solo"],
    });
    assert.deepEqual(await accepted(a, await signToken(ec, claims({ groups: undefined }))), {
      username: "jane",
      groups: [],
    });
  });

  it("uses the configured username and groups claims", async () => {
    const a = authenticator({}, { usernameClaim: "sub", groupsClaim: "roles" });
    assert.deepEqual(await accepted(a, await signToken(rsa, claims({ roles: ["r"] }))), {
      username: "u-1",
      groups: ["r"],
    });
  });

  it("adds the credential-id extra from jti, as Kubernetes does", async () => {
    const user = await accepted(authenticator(), await signToken(rsa, claims({ jti: "id-7" })));
    assert.deepEqual(user.extra, { [credentialIDKey]: ["JTI=id-7"] });
  });

  it("rejects expired tokens, with no leeway on exp", async () => {
    const a = authenticator();
    await rejected(a, await signToken(rsa, claims({ exp: nowS() - 1 })), /^token expired$/);
    await accepted(a, await signToken(rsa, claims({ exp: nowS() })));
    await rejected(a, await signToken(rsa, claims({ exp: undefined })), /^token has no exp claim$/);
    await rejected(
      a,
      await signToken(rsa, claims({ exp: "soon" as unknown as number })),
      /exp claim is not a number/,
    );
  });

  it("rejects tokens not valid yet, allowing go-oidc's 5 minutes of clock skew on nbf and none on iat", async () => {
    const a = authenticator();
    await accepted(a, await signToken(rsa, claims({ nbf: nowS() + 300 })));
    await rejected(
      a,
      await signToken(rsa, claims({ nbf: nowS() + 301 })),
      /^token is not valid yet \(nbf\)$/,
    );
    // A provider whose clock runs ahead: upstream accepts its tokens, whose iat it never compares.
    await accepted(a, await signToken(rsa, claims({ iat: nowS() + 61 })));
    await accepted(a, await signToken(rsa, claims({ iat: nowS() + 3600, nbf: nowS() + 240 })));
    await rejected(
      a,
      await signToken(rsa, claims({ iat: "x" as unknown as number })),
      /^iat claim is not a number$/,
    );
    await rejected(
      a,
      await signToken(rsa, claims({ nbf: "x" as unknown as number })),
      /nbf claim is not a number/,
    );
  });

  it("requires the exact issuer", async () => {
    const a = authenticator();
    await rejected(a, await signToken(rsa, claims({ iss: "https://evil.example.com" })), /^issuer mismatch/);
    await rejected(
      a,
      await signToken(rsa, claims({ iss: `${issuer.url}/` })),
      /^issuer mismatch: token iss is "https/,
    );
    await rejected(
      a,
      await signToken(rsa, claims({ iss: undefined })),
      /^issuer mismatch: token iss is absent$/,
    );
    // Deeper than JSON.stringify (or jose's SignJWT) recurses; no signature needed to fail the issuer.
    const deep = `{"iss":${"[".repeat(20000)}${"]".repeat(20000)}}`;
    await rejected(
      a,
      `${b64({ alg: "RS256", kid: rsa.kid })}.${b64(deep)}.c2ln`,
      /^issuer mismatch: token iss is a JSON array$/,
    );
  });

  it("requires the audience, as a string or in an array", async () => {
    const a = authenticator();
    await accepted(a, await signToken(rsa, claims({ aud: ["other", "concierge"] })));
    await rejected(
      a,
      await signToken(rsa, claims({ aud: "other" })),
      /^audience mismatch: token aud is "other"$/,
    );
    await rejected(a, await signToken(rsa, claims({ aud: [] })), /^audience mismatch/);
    await rejected(a, await signToken(rsa, claims({ aud: undefined })), /^token has no aud claim$/);
    await rejected(
      a,
      await signToken(rsa, claims({ aud: [1] as unknown as string[] })),
      /aud claim is not a string/,
    );
  });

  it("accepts any of several audiences with MatchAny", async () => {
    const a = authenticator({}, { audiences: ["concierge", "web-app"], audienceMatchPolicy: "MatchAny" });
    await accepted(a, await signToken(rsa, claims({ aud: "web-app" })));
    await accepted(a, await signToken(rsa, claims({ aud: ["x", "web-app"] })));
    await accepted(a, await signToken(rsa, claims({ aud: "concierge" })));
    await rejected(a, await signToken(rsa, claims({ aud: "x" })), /^audience mismatch/);
  });

  it("rejects unsigned tokens (alg none)", async () => {
    const a = authenticator();
    const payload = b64(claims());
    await rejected(a, `${b64({ alg: "none" })}.${payload}.`, /^unsigned token \(alg "none"\)$/);
    await rejected(a, `${b64({ alg: "none", kid: "rsa-1" })}.${payload}.c2ln`, /^unsigned token/);
    await rejected(a, `${b64({ alg: "None" })}.${payload}.`, /^unsupported alg "None"/);
    await rejected(a, `${b64({ typ: "JWT" })}.${payload}.c2ln`, /^unsupported alg absent/);
  });

  it("rejects HS256 tokens whose secret is the issuer's public key, as PEM or as JWK", async () => {
    const a = authenticator();
    const pem = await exportSPKI(rsa.publicKey);
    const jwk = JSON.stringify(await exportJWK(rsa.publicKey));
    for (const secret of [pem, jwk, JSON.stringify(rsa.jwk)]) {
      const token = await new SignJWT(claims())
        .setProtectedHeader({ alg: "HS256", kid: rsa.kid })
        .sign(new TextEncoder().encode(secret));
      await rejected(a, token, /^unsupported alg "HS256", want one of RS256, ES256$/);
    }
  });

  it("rejects other algorithms, even when the key type would fit", async () => {
    const a = authenticator();
    const { privateKey } = await generateKeyPair("RS384");
    const rs384 = await new SignJWT(claims())
      .setProtectedHeader({ alg: "RS384", kid: rsa.kid })
      .sign(privateKey);
    await rejected(a, rs384, /^unsupported alg "RS384"/);
  });

  it("rejects bad signatures: a tampered payload, a foreign key with a known kid, a swapped algorithm", async () => {
    const a = authenticator();
    const [header, , signature] = (await signToken(rsa, claims())).split(".");
    await rejected(a, `${header}.${b64(claims({ username: "admin" }))}.${signature}`, /^signature invalid$/);
    await rejected(a, await signToken(stranger, claims()), /^signature invalid$/);
    // An ES256 header on an RSA signature finds no EC key with that kid.
    const ecHeader = b64({ alg: "ES256", kid: rsa.kid });
    await rejected(a, `${ecHeader}.${b64(claims())}.${signature}`, /^no key in the JWKS has kid "rsa-1"/);
  });

  it("rejects garbage without parsing much", async () => {
    const a = authenticator();
    const header = b64({ alg: "RS256", kid: rsa.kid });
    for (const [token, reason] of [
      ["", /^empty token$/],
      ["abc", /not a JWS in compact serialization/],
      ["a.b", /not a JWS/],
      ["a.b.c.d", /not a JWS/],
      ["!!!.###.$$$", /not a JWS/],
      [" eyJ.eyJ.sig", /not a JWS/],
      [`${b64("not json")}.${b64(claims())}.c2ln`, /header is not a JSON object/],
      [`${b64([1])}.${b64(claims())}.c2ln`, /header is not a JSON object/],
      [`${header}.${b64("null")}.c2ln`, /payload is not a JSON object/],
      [`${header}.${b64("[1,2]")}.c2ln`, /payload is not a JSON object/],
      [`${header}..c2ln`, /not a JWS/],
      [`${b64({ alg: "RS256", kid: 5 })}.${b64(claims())}.c2ln`, /kid is not a string/],
      [`${b64({ alg: "RS256", crit: ["b64"], b64: false })}.${b64(claims())}.c2ln`, /crit/],
    ] as const) {
      await rejected(a, token, reason);
    }
  });

  it("rejects oversized tokens before parsing them", async () => {
    const a = authenticator();
    const big = await signToken(rsa, claims({ padding: "x".repeat(maxTokenBytes) }));
    await rejected(a, big, /^token is longer than 65536 bytes$/);
    await rejected(a, "x".repeat(10 * maxTokenBytes), /longer than/);
    // Just under the limit is fine.
    const base = (await signToken(rsa, claims({ padding: "" }))).length;
    const fits = await signToken(
      rsa,
      claims({ padding: "x".repeat(Math.floor(((maxTokenBytes - base) * 3) / 4)) }),
    );
    assert.ok(fits.length <= maxTokenBytes && fits.length > maxTokenBytes - 8, String(fits.length));
    await accepted(a, fits);
  });

  it("requires a non-empty string username claim", async () => {
    const a = authenticator();
    await rejected(
      a,
      await signToken(rsa, claims({ username: undefined })),
      /^username claim "username" is missing$/,
    );
    await rejected(
      a,
      await signToken(rsa, claims({ username: 7 })),
      /^username claim "username" is not a string$/,
    );
    await rejected(a, await signToken(rsa, claims({ username: "" })), /is empty/);
  });

  it("enforces email_verified when the username claim is email", async () => {
    const a = authenticator({}, { usernameClaim: "email" });
    assert.equal(
      (await accepted(a, await signToken(rsa, claims({ email: "j@example.com" })))).username,
      "j@example.com",
    );
    await accepted(a, await signToken(rsa, claims({ email: "j@example.com", email_verified: true })));
    await rejected(
      a,
      await signToken(rsa, claims({ email: "j@example.com", email_verified: false })),
      /^email not verified$/,
    );
  });

  it("rejects groups that are neither a string nor strings", async () => {
    await rejected(
      authenticator(),
      await signToken(rsa, claims({ groups: [1] })),
      /groups claim "groups" is not a string/,
    );
  });

  it("maps and validates with every CEL feature, and fails the login on an evaluation error", async () => {
    const a = authenticator(
      {
        claims: {
          usernameExpression: '"oidc:" + claims.sub',
          groupsExpression: 'claims.roles.split(",")',
          extra: [
            { key: "example.com/tenant", valueExpression: "claims.tenant" },
            { key: "example.com/empty", valueExpression: 'claims.?nothing.orValue("")' },
          ],
        },
        claimValidationRules: [
          { claim: "hd", requiredValue: "example.com" },
          {
            expression: "claims.exp - claims.iat <= 3600",
            message: "token lifetime must not exceed an hour",
          },
        ],
        userValidationRules: [
          { expression: "!user.groups.exists(g, g == 'banned')", message: "banned users may not log in" },
        ],
      },
      { systemPrefixPolicy: "Allow" },
    );
    const good = { roles: "dev,,ops", tenant: "t1", hd: "example.com" };
    assert.deepEqual(await accepted(a, await signToken(rsa, claims(good))), {
      username: "oidc:u-1",
      groups: ["dev", "ops"],
      extra: { "example.com/tenant": ["t1"] },
    });
    await rejected(
      a,
      await signToken(rsa, claims({ ...good, hd: "evil.com" })),
      /^required claim "hd" does not have/,
    );
    await rejected(
      a,
      await signToken(rsa, claims({ ...good, exp: nowS() + 7200 })),
      /^claimValidationRules\[1\]: token lifetime must not exceed an hour$/,
    );
    await rejected(
      a,
      await signToken(rsa, claims({ ...good, roles: "dev,banned" })),
      /^userValidationRules\[0\]: banned users may not log in$/,
    );
    await rejected(
      a,
      await signToken(rsa, claims({ ...good, roles: undefined })),
      /^groups expression: evaluation failed: No such key: roles$/,
    );
    await rejected(
      a,
      await signToken(rsa, claims({ ...good, sub: 42 as unknown as string })),
      /^username expression: evaluation failed/,
    );
  });

  it("rejects system: identities unless systemPrefixPolicy is Allow", async () => {
    const reject = authenticator();
    const allow = authenticator({}, { systemPrefixPolicy: "Allow" });
    const admin = await signToken(rsa, claims({ username: "system:admin" }));
    const masters = await signToken(rsa, claims({ groups: ["devs", "system:masters"] }));
    await rejected(reject, admin, /^username "system:admin" has the reserved "system:" prefix$/);
    await rejected(reject, masters, /^group "system:masters" has the reserved "system:" prefix$/);
    assert.equal((await accepted(allow, admin)).username, "system:admin");
    assert.deepEqual((await accepted(allow, masters)).groups, ["devs", "system:masters"]);
  });

  it("names the failure with a code, and gives a reason without the token's claim values for the info log", async () => {
    const result = await authenticator().authenticateToken(
      await signToken(rsa, claims({ iss: "https://evil.example.com" })),
    );
    assert.equal(result.authenticated, false);
    if (result.authenticated) return;
    assert.equal(result.code, "issuer");
    assert.equal(result.safeReason, "issuer mismatch");
    assert.match(result.reason, /evil\.example\.com/);
  });

  it("stops at once on an aborted request", async () => {
    const controller = new AbortController();
    controller.abort();
    const result = await authenticator().authenticateToken(await signToken(rsa, claims()), controller.signal);
    assert.deepEqual(result, { authenticated: false, reason: "the request was aborted", code: "aborted" });
  });

  it("counts verifications by result and reason, times them, and never logs the token", async () => {
    const metrics = new Metrics();
    const { log, lines } = memoryLogger("debug");
    const a = authenticator({}, { name: "counted", metrics, log });
    const good = await signToken(rsa, claims());
    const expired = await signToken(rsa, claims({ exp: nowS() - 10 }));
    await accepted(a, good);
    await accepted(a, good);
    await rejected(a, expired, /expired/);
    await rejected(a, "garbage", /not a JWS/);
    const text = await metrics.text();
    assert.match(
      text,
      /concierge_jwt_authenticator_verifications_total\{authenticator="counted",result="success",reason=""\} 2/,
    );
    assert.match(
      text,
      /concierge_jwt_authenticator_verifications_total\{authenticator="counted",result="failure",reason="expired"\} 1/,
    );
    assert.match(
      text,
      /concierge_jwt_authenticator_verifications_total\{authenticator="counted",result="failure",reason="malformed"\} 1/,
    );
    assert.match(
      text,
      /concierge_jwt_authenticator_latency_seconds_count\{authenticator="counted",result="success"\} 2/,
    );
    const logged = JSON.stringify(lines);
    assert.ok(lines.some((l) => l.message === "token rejected" && l.reason === "token expired"));
    for (const token of [good, expired]) {
      for (const part of token.split(".")) assert.ok(!logged.includes(part), "a log line contains the token");
    }
  });
});
