import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLocalJWKSet, jwtVerify } from "jose";
import { JWTCredentialIssuer } from "./issuer.ts";
import { generateStoredKey, loadKeys, publicJWK } from "./keys.ts";

const issuerURL = "https://concierge.example.com/jwt";
const user = { username: "pinny", groups: ["seals"], uid: "42", extra: { "example.com/team": ["blue"] } };

function loadedIssuer(options: { ttlSeconds?: number } = {}) {
  const issuer = new JWTCredentialIssuer({ issuer: issuerURL, audience: "kube", ...options });
  const old = generateStoredKey(Date.now() - 1000);
  const current = generateStoredKey(Date.now());
  issuer.keys.set(loadKeys([old, current], current.kid));
  return { issuer, old, current };
}

describe("JWTCredentialIssuer", () => {
  it("names its key by its RFC 7638 thumbprint and publishes only public members", () => {
    const stored = generateStoredKey(0);
    const jwk = publicJWK(stored.privateKeyPEM);
    assert.equal(jwk.kid, stored.kid);
    assert.deepEqual(Object.keys(jwk).sort(), ["alg", "crv", "kid", "kty", "use", "x", "y"]);
  });

  it("issues an ES256 token the published JWKS verifies, with the user's name, groups, uid and extras", async () => {
    const { issuer, current } = loadedIssuer();
    const result = await issuer.issue({ user, ttlSeconds: 300 });
    assert.ok(result.ok && result.credential.type === "token");
    const jwks = createLocalJWKSet({ keys: issuer.keys.get()!.jwks });
    const { payload, protectedHeader } = await jwtVerify(result.credential.token, jwks, {
      issuer: issuerURL,
      audience: "kube",
      algorithms: ["ES256"],
    });
    assert.equal(protectedHeader.kid, current.kid);
    assert.equal(payload.sub, "pinny");
    assert.equal(payload.username, "pinny");
    assert.deepEqual(payload.groups, ["seals"]);
    assert.equal(payload.uid, "42");
    assert.deepEqual(payload.extra, { "example.com/team": ["blue"] });
    assert.equal(payload.exp! - payload.iat!, 300);
    assert.equal(result.credential.expiresAt.getTime(), payload.exp! * 1000);
  });

  it("gives the configured lifetime when it is shorter than the request's, never longer", async () => {
    const { issuer } = loadedIssuer({ ttlSeconds: 120 });
    for (const [asked, given] of [
      [300, 120],
      [60, 60],
    ]) {
      const result = await issuer.issue({ user, ttlSeconds: asked! });
      assert.ok(result.ok && result.credential.type === "token");
      const seconds = (result.credential.expiresAt.getTime() - Date.now()) / 1000;
      assert.ok(seconds <= given! && seconds > given! - 5, `${seconds}`);
    }
  });

  it("is unhealthy without a key or before kube-apiserver accepted a probe token, and refuses a client's CSR", async () => {
    const empty = new JWTCredentialIssuer({ issuer: issuerURL, audience: "kube" });
    assert.deepEqual(empty.health(), { ok: false, reason: "JWT issuer: no signing key is loaded" });
    assert.deepEqual(await empty.issue({ user, ttlSeconds: 300 }), {
      ok: false,
      reason: "JWT issuer: no signing key is loaded",
    });
    const { issuer } = loadedIssuer();
    assert.deepEqual(issuer.health(), { ok: false, reason: "JWT issuer: not probed yet" });
    issuer.state.set({ ok: true });
    assert.deepEqual(issuer.health(), { ok: true });
    const refused = await issuer.issue({ user, ttlSeconds: 300, certificateSigningRequestPEM: "csr" });
    assert.equal(refused.ok, false);
  });

  it("refuses keys whose kid is not their thumbprint", () => {
    const stored = generateStoredKey(0);
    assert.throws(() => loadKeys([{ ...stored, kid: "edited" }], "edited"), /does not match its kid/);
  });
});
