// Property-based fuzzing: whatever the input, these parts answer with a clear error (or a value),
// never an exception of the wrong kind, a hang or a 500. The DER writer is held to two independent
// parsers: every certificate it writes parses in Node's X509Certificate and round-trips through
// `openssl x509` byte for byte.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { AuthenticatorCache, authenticationGroup } from "../../authenticators/cache.ts";
import { compileClaims } from "../../authenticators/cel/claims.ts";
import { type JWTTokenAuthenticator, newJWTAuthenticator } from "../../authenticators/jwt/authenticator.ts";
import {
  newSigningKey,
  type SigningKey,
  signToken,
  startTestIssuer,
  type TestIssuer,
} from "../../authenticators/jwt/testing.ts";
import { CertificateAuthority } from "../../certs/ca.ts";
import { issueClientCertificate } from "../../certs/issue.ts";
import { CredentialCache } from "../../cli/cache.ts";
import { SessionCache } from "../../cli/oidc/sessioncache.ts";
import { ConfigError, parseConfig } from "../../server/config.ts";
import { createTokenCredentialRequestHandler } from "../../server/tokencredentialrequest.ts";
import { createWhoAmIRequest } from "../../server/whoamirequest.ts";

const b64url = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** Any JSON value, deep and wide enough to reach every branch of a decoder. */
const json = fc.jsonValue({ maxDepth: 6 });
const tcrLike = fc.record(
  {
    apiVersion: fc.oneof(fc.constant("login.concierge.pinniped.dev/v1alpha1"), json),
    kind: fc.oneof(fc.constant("TokenCredentialRequest"), json),
    metadata: fc.oneof(fc.record({ name: fc.oneof(fc.string(), json) }, { requiredKeys: [] }), json),
    spec: fc.oneof(
      fc.record(
        {
          token: fc.oneof(fc.string(), json),
          authenticator: fc.oneof(
            fc.record(
              {
                apiGroup: fc.oneof(fc.constant(authenticationGroup), json),
                kind: fc.oneof(fc.constant("JWTAuthenticator"), json),
                name: fc.oneof(fc.constant("corp"), json),
              },
              { requiredKeys: [] },
            ),
            json,
          ),
        },
        { requiredKeys: [] },
      ),
      json,
    ),
  },
  { requiredKeys: [] },
);

describe("property: request bodies", () => {
  const authenticators = new AuthenticatorCache();
  authenticators.store(
    { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" },
    {
      fingerprint: "f",
      authenticator: {
        authenticateToken: async (token) =>
          token === "good"
            ? { authenticated: true, user: { username: "jane", groups: [] } }
            : { authenticated: false, reason: "no" },
        close: () => {},
      },
    },
  );
  const handler = createTokenCredentialRequestHandler({
    authenticators,
    issuer: {
      issue: async () => ({
        ok: true,
        credential: { type: "certificate", certificatePEM: "C", keyPEM: "K", notAfter: new Date(0) },
      }),
    },
  });

  // Upstream's 422 names the object, as kube-apiserver's do; a 400 names only what is wrong.
  it("TokenCredentialRequest answers any body with 201, 400 or 422, and a 400 quotes no input", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(json, tcrLike),
        fc.array(fc.string(), { maxLength: 2 }),
        async (body, dryRun) => {
          const res = await handler(body, { dryRun, auditID: "a" });
          assert.ok([201, 400, 422].includes(res.code), `code ${res.code}`);
          if (res.code !== 400) return;
          const message = (res.body as { message: string }).message;
          for (const s of strings(body)) {
            if (s.length >= 8 && !vocabulary.some((v) => v.includes(s)))
              assert.ok(!message.includes(s), message);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("WhoAmIRequest answers any body with 201, 400 or 422", () => {
    fc.assert(
      fc.property(json, (body) => {
        const res = createWhoAmIRequest(body, { dryRun: [], user: { username: "u", groups: [], extra: {} } });
        assert.ok([201, 400, 422].includes(res.code), `code ${res.code}`);
      }),
      { numRuns: 400 },
    );
  });
});

/** Words a 400 may contain because they are ours, whoever else also sent them. */
const vocabulary = [
  'TokenCredentialRequest in version "v1alpha1" cannot be handled as a TokenCredentialRequest: spec.authenticator.apiGroup must be a string',
  'not a TokenCredentialRequest: apiVersion must be "login.concierge.pinniped.dev/v1alpha1"',
  "the body is an array, not a JSON object; metadata.name must be a string; spec.token; spec must be an object",
];

/** Every string in a JSON value, keys included. */
function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const v of value) strings(v, out);
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      out.push(k);
      strings(v, out);
    }
  }
  return out;
}

describe("property: JWT headers and payloads", () => {
  let issuer: TestIssuer;
  let key: SigningKey;
  let authenticator: JWTTokenAuthenticator;

  before(async () => {
    issuer = await startTestIssuer();
    key = await newSigningKey("RS256", "k1");
    issuer.setKeys([key]);
    authenticator = newJWTAuthenticator({
      name: "fuzz",
      issuer: issuer.url,
      audiences: ["concierge"],
      compiled: compileClaims({}).compiled,
      claimValidationRules: [],
      systemPrefixPolicy: "Reject",
      jwksURL: issuer.jwksURL,
      caPEM: issuer.caPEM,
    });
  });
  after(() => {
    authenticator?.close();
    return issuer?.close();
  });

  it("refuses any forged header or payload with a reason, never an exception", async () => {
    const header = fc.oneof(
      json,
      fc.record(
        {
          alg: fc.oneof(fc.constantFrom("RS256", "none", "HS256", "ES256", "RS256 "), json),
          kid: fc.oneof(fc.constant("k1"), json),
          typ: json,
          crit: json,
          jku: fc.constant("https://169.254.169.254/keys"),
          b64: json,
        },
        { requiredKeys: [] },
      ),
    );
    await fc.assert(
      fc.asyncProperty(header, json, fc.string({ maxLength: 40 }), async (h, payload, signature) => {
        const token = `${b64url(h)}.${b64url(payload)}.${Buffer.from(signature).toString("base64url")}`;
        const result = await authenticator.authenticateToken(token);
        assert.equal(result.authenticated, false);
        assert.ok(!result.authenticated && result.reason.length > 0);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses any string that is not a token, never an exception", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 300 }), async (token) => {
        const result = await authenticator.authenticateToken(token);
        assert.equal(result.authenticated, false);
      }),
      { numRuns: 300 },
    );
  });

  it("accepts a validly signed token whatever extra header fields it carries", async () => {
    const now = Math.floor(Date.now() / 1000);
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(
          fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !["alg", "kid", "crit", "b64"].includes(k)),
          json,
          { maxKeys: 3 },
        ),
        async (extra) => {
          const token = await signToken(
            key,
            { iss: issuer.url, aud: "concierge", username: "jane", iat: now, exp: now + 300 },
            extra,
          );
          const result = await authenticator.authenticateToken(token);
          assert.ok(result.authenticated, result.authenticated ? "" : result.reason);
        },
      ),
      { numRuns: 30 },
    );
  });
});

describe("property: the config loader", () => {
  const env = { env: { POD_NAMESPACE: "concierge" }, readNamespaceFile: () => undefined };
  it("loads or refuses any YAML with a ConfigError, never another exception", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          json.map((v) => JSON.stringify(v)),
        ),
        (text) => {
          try {
            parseConfig(text, env);
          } catch (err) {
            assert.ok(err instanceof ConfigError, String(err));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("refuses any value of the wrong type for a known key by naming the key", () => {
    const keys = [
      "aggregatedAPIServerPort",
      "healthPort",
      "labels",
      "names",
      "tokenCredentialRequest",
      "outbound",
      "logLevel",
      "extraServingSANs",
    ];
    fc.assert(
      fc.property(fc.constantFrom(...keys), json, (key, value) => {
        try {
          parseConfig(JSON.stringify({ [key]: value }), env);
        } catch (err) {
          assert.ok(err instanceof ConfigError, String(err));
          assert.match(err.message, /invalid config file/);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe("property: the CLI's cache files", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "concierge-fuzz-cache-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const contents = fc.oneof(
    fc.string(),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("latin1")),
    json.map((v) => JSON.stringify(v)),
    fc.array(json, { maxLength: 3 }).map((credentials) =>
      JSON.stringify({
        apiVersion: "config.supervisor.pinniped.dev/v1alpha1",
        kind: "CredentialCache",
        credentials,
      }),
    ),
    fc.array(json, { maxLength: 3 }).map((sessions) =>
      JSON.stringify({
        apiVersion: "config.supervisor.pinniped.dev/v1alpha1",
        kind: "SessionCache",
        sessions,
      }),
    ),
  );

  it("an ExecCredential cache file of any content is a miss, never a failed kubectl", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(contents, async (text) => {
        const path = join(dir, `credentials-${n++}.yaml`);
        await writeFile(path, text);
        const cache = new CredentialCache(path);
        const fresh = { token: "t", expirationTimestamp: new Date(Date.now() + 3_600_000).toISOString() };
        assert.deepEqual(await cache.getOrCreate("k", async () => fresh), fresh);
      }),
      { numRuns: 150 },
    );
  });

  it("a session cache file of any content is a miss, never a failed login", async () => {
    let n = 0;
    const key = {
      issuer: "https://issuer.example.com",
      clientID: "c",
      scopes: ["openid"],
      redirect_uri: "http://127.0.0.1/cb",
    };
    await fc.assert(
      fc.asyncProperty(contents, async (text) => {
        const path = join(dir, `sessions-${n++}.yaml`);
        await writeFile(path, text);
        const cache = new SessionCache(path);
        const found = await cache.get(key);
        assert.equal(found, undefined);
        await cache.put(key, { refresh: { token: "r" } });
        assert.deepEqual(await cache.get(key), { refresh: { token: "r" } });
      }),
      { numRuns: 150 },
    );
  });
});

describe("property: the DER writer, against Node's and openssl's parsers", () => {
  let ca: CertificateAuthority;
  let dir: string;
  before(async () => {
    ca = await CertificateAuthority.create("fuzz CA", 3_600_000);
    dir = await mkdtemp(join(tmpdir(), "concierge-fuzz-der-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("every client certificate parses alike in both and round-trips through openssl unchanged", async () => {
    const name = fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(name, fc.array(name, { maxLength: 6 }), async (username, groups) => {
        const issued = await issueClientCertificate(ca, { username, groups });
        const cert = new X509Certificate(issued.certPEM);
        assert.ok(cert.checkIssued(ca.certificate));
        assert.ok(cert.verify(ca.certificate.publicKey));
        const path = join(dir, `c${n++}.pem`);
        await writeFile(path, issued.certPEM);
        const der = execFileSync("openssl", ["x509", "-in", path, "-outform", "DER"]);
        assert.ok(der.equals(cert.raw), "openssl re-encodes the certificate to other bytes");
        const text = execFileSync("openssl", ["x509", "-in", path, "-noout", "-serial", "-dates"], {
          encoding: "utf8",
        });
        assert.match(text, new RegExp(`^serial=${cert.serialNumber}$`, "m"));
        assert.equal(Date.parse(/notAfter=(.*)/.exec(text)?.[1] ?? ""), Date.parse(cert.validTo));
        assert.equal(Date.parse(/notBefore=(.*)/.exec(text)?.[1] ?? ""), Date.parse(cert.validFrom));
      }),
      { numRuns: 60 },
    );
  });
});
