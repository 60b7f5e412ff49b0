import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type JSONSchemaProps, tokenCredentialRequest } from "../apis/index.ts";
import { CertificateAuthority } from "../certs/ca.ts";
import { signingRequestPublicKey } from "../certs/csr.ts";
import { issueClientCertificate, issueClientCertificateForKey } from "../certs/issue.ts";
import { kindShape, strictDecodingError, strictErrors } from "../server/strictdecode.ts";
import { startHTTPSServer, type TestHTTPSServer } from "../test/harness/tls.ts";
import { UsageError } from "./flags.ts";
import {
  type ConciergeParams,
  defaultCredentialCachePath,
  exchangeToken,
  execInfo,
  LoginError,
  loginStatic,
  parseLoginStatic,
} from "./login-static.ts";

describe("login static", () => {
  let server: TestHTTPSServer;
  let dir: string;
  const seen: { path: string; authorization: string | undefined; body: Record<string, unknown> }[] = [];
  type Answer = { status: number; body: unknown };
  let answer: Answer | ((body: Record<string, unknown>) => Promise<Answer>) = { status: 201, body: {} };
  const issued = {
    expirationTimestamp: "2030-01-01T00:05:00Z",
    clientCertificateData: "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n",
    clientKeyData: "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n",
  };
  const conciergeArgs = () => [
    "--enable-concierge",
    `--concierge-endpoint=${server.base}`,
    `--concierge-ca-bundle-data=${server.caBase64}`,
    "--concierge-authenticator-type=webhook",
    "--concierge-authenticator-name=corp",
  ];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cli-login-"));
    server = await startHTTPSServer((req, res) => {
      let text = "";
      req.on("data", (c) => {
        text += c;
      });
      req.on("end", async () => {
        const body = JSON.parse(text);
        seen.push({ path: req.url ?? "", authorization: req.headers.authorization, body });
        const { status, body: out } = typeof answer === "function" ? await answer(body) : answer;
        res.writeHead(status, { "Content-Type": "application/json" });
        res.end(JSON.stringify(out));
      });
    });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("needs a token, from --token or a set, non-empty --token-env", () => {
    assert.throws(() => parseLoginStatic([], {}), /one of --token or --token-env must be set/);
    assert.throws(() => parseLoginStatic(["--token-env", "T"], {}), /--token-env variable "T" is not set/);
    assert.throws(
      () => parseLoginStatic(["--token-env", "T"], { T: "" }),
      /--token-env variable "T" is empty/,
    );
    const o = parseLoginStatic(["--token-env=T"], { T: "tok" });
    assert.ok(o !== "help");
    assert.equal(o.token, "tok");
    assert.equal(o.concierge, undefined);
    assert.equal(parseLoginStatic(["--help"], {}), "help");
    assert.throws(() => parseLoginStatic(["--bogus"], {}), UsageError);
  });

  it("validates the Concierge parameters the way upstream does", () => {
    const base = ["--token=x", ...conciergeArgs()];
    const o = parseLoginStatic(base, {});
    assert.ok(o !== "help" && o.concierge);
    assert.equal(o.concierge.apiGroupSuffix, "pinniped.dev");
    assert.equal(o.concierge.caPEM, server.caPEM);
    assert.equal(o.concierge.clientHeldKey, true);
    const heldKey = (...flags: string[]) => {
      const parsed = parseLoginStatic([...base, ...flags], {});
      assert.ok(parsed !== "help" && parsed.concierge);
      return parsed.concierge.clientHeldKey;
    };
    assert.equal(heldKey("--client-held-key=false"), false);
    assert.equal(heldKey("--client-held-key=false", "--client-held-key"), true);
    assert.equal(heldKey("--client-held-key", "--client-held-key=0"), false);
    const without = (flag: string) => base.filter((a) => !a.startsWith(flag));
    assert.throws(
      () => parseLoginStatic(without("--concierge-endpoint"), {}),
      /invalid Concierge parameters: endpoint/,
    );
    assert.throws(
      () => parseLoginStatic([...without("--concierge-endpoint"), "--concierge-endpoint=http://x"], {}),
      /invalid endpoint scheme "http" \(must be "https"\)/,
    );
    assert.throws(
      () =>
        parseLoginStatic(
          [...without("--concierge-ca-bundle-data"), "--concierge-ca-bundle-data=bm90IGEgY2VydA=="],
          {},
        ),
      /invalid CA bundle data/,
    );
    assert.throws(
      () => parseLoginStatic(without("--concierge-authenticator-name"), {}),
      /authenticator name/,
    );
    assert.throws(
      () =>
        parseLoginStatic(
          [...without("--concierge-authenticator-type"), "--concierge-authenticator-type=ldap"],
          {},
        ),
      /invalid authenticator type "ldap"/,
    );
    assert.throws(
      () => parseLoginStatic([...base, "--concierge-api-group-suffix=nodots"], {}),
      /API group suffix/,
    );
  });

  it("defaults the cache to $XDG_CONFIG_HOME or ~/.config, and --credential-cache= disables it", () => {
    assert.equal(defaultCredentialCachePath({ XDG_CONFIG_HOME: "/x" }), "/x/pinniped/credentials.yaml");
    assert.match(defaultCredentialCachePath({}), /\/\.config\/pinniped\/credentials\.yaml$/);
    const o = parseLoginStatic(["--token=x", "--credential-cache="], {});
    assert.ok(o !== "help");
    assert.equal(o.credentialCache, "");
  });

  it("answers in the ExecCredential version kubectl asks for in KUBERNETES_EXEC_INFO, else v1", () => {
    assert.equal(execInfo({}).apiVersion, "client.authentication.k8s.io/v1");
    const info = execInfo({
      KUBERNETES_EXEC_INFO: JSON.stringify({
        apiVersion: "client.authentication.k8s.io/v1beta1",
        kind: "ExecCredential",
        spec: { interactive: false },
      }),
    });
    assert.deepEqual(info, {
      apiVersion: "client.authentication.k8s.io/v1beta1",
      spec: { interactive: false },
    });
    assert.equal(execInfo({ KUBERNETES_EXEC_INFO: "{" }).apiVersion, "client.authentication.k8s.io/v1");
  });

  it("with --client-held-key=false, POSTs upstream's anonymous TokenCredentialRequest and returns the certificate, key and expiry", async () => {
    const o = parseLoginStatic(["--token=the-token", ...conciergeArgs(), "--client-held-key=false"], {});
    assert.ok(o !== "help" && o.concierge);
    answer = { status: 201, body: { status: { credential: issued } } };
    seen.length = 0;
    assert.deepEqual(await exchangeToken(o.concierge, "the-token"), issued);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.path, "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests");
    assert.equal(seen[0]!.authorization, undefined);
    assert.deepEqual(seen[0]!.body, {
      apiVersion: "login.concierge.pinniped.dev/v1alpha1",
      kind: "TokenCredentialRequest",
      metadata: {},
      spec: {
        token: "the-token",
        authenticator: {
          apiGroup: "authentication.concierge.pinniped.dev",
          kind: "WebhookAuthenticator",
          name: "corp",
        },
      },
    });
  });

  it("returns a token credential (the JWTCredential strategy's) as the ExecCredential's token, as upstream's CLI does", async () => {
    const o = parseLoginStatic(["--token=the-token", ...conciergeArgs()], {});
    assert.ok(o !== "help" && o.concierge);
    const credential = { expirationTimestamp: "2030-01-01T00:00:00Z", token: "a.jwt.token" };
    answer = { status: 201, body: { status: { credential } } };
    assert.deepEqual(await exchangeToken(o.concierge, "the-token"), credential);
  });

  describe("client-held keys (the default)", () => {
    let ca: CertificateAuthority;
    const user = { username: "pinny", groups: ["seals"] };
    const csrOf = (body: Record<string, unknown>) =>
      (body.spec as { certificateSigningRequest?: string }).certificateSigningRequest;
    /** Our Concierge: signs the request's key and answers the certificate alone. */
    const signsTheRequest = async (body: Record<string, unknown>): Promise<Answer> => {
      const spki = signingRequestPublicKey(csrOf(body)!);
      const issued = await issueClientCertificateForKey(ca, user, spki, 300_000);
      return {
        status: 201,
        body: {
          status: {
            credential: {
              expirationTimestamp: "2030-01-01T00:05:00Z",
              clientCertificateData: issued.certPEM,
            },
          },
        },
      };
    };
    const params = () => {
      const o = parseLoginStatic(["--token=the-token", ...conciergeArgs()], {});
      assert.ok(o !== "help" && o.concierge);
      return o.concierge;
    };

    before(async () => {
      ca = await CertificateAuthority.create("test CA", 3_600_000);
    });

    it("sends a certificate signing request, strictly validated, and pairs the answer's certificate with the key made here", async () => {
      answer = signsTheRequest;
      seen.length = 0;
      const credential = await exchangeToken(params(), "the-token");
      assert.equal(seen.length, 1);
      assert.equal(
        seen[0]!.path,
        "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests?fieldValidation=Strict",
      );
      assert.match(csrOf(seen[0]!.body) ?? "", /^-----BEGIN CERTIFICATE REQUEST-----\n/);
      // The request holds the public key only.
      assert.doesNotMatch(JSON.stringify(seen[0]!.body), /PRIVATE KEY/);
      assert.match(credential.clientKeyData ?? "", /^-----BEGIN PRIVATE KEY-----\n/);
      const cert = new X509Certificate(credential.clientCertificateData ?? "");
      assert.ok(cert.checkPrivateKey(createPrivateKey(credential.clientKeyData ?? "")));
      assert.equal(cert.subject, "O=seals\nCN=pinny");
      assert.equal(
        createPrivateKey(credential.clientKeyData ?? "").asymmetricKeyDetails?.namedCurve,
        "prime256v1",
      );
      // A new key for every exchange.
      const again = await exchangeToken(params(), "the-token");
      assert.notEqual(again.clientKeyData, credential.clientKeyData);
    });

    it("falls back to upstream's request when the Concierge refuses the unknown field, as upstream's does", async () => {
      const upstreamKey = await issueClientCertificate(ca, user, 300_000);
      // Upstream's schema has no spec.certificateSigningRequest: the server's strict decoding,
      // given that schema, words the refusal.
      const upstreamSchema = structuredClone(tokenCredentialRequest.schema) as {
        properties: { spec: { properties: Record<string, unknown> } };
      };
      delete upstreamSchema.properties.spec.properties.certificateSigningRequest;
      const refusal = (body: Record<string, unknown>) =>
        strictDecodingError({
          directive: "Strict",
          errors: strictErrors(JSON.stringify(body), kindShape(upstreamSchema as JSONSchemaProps)),
          warnings: [],
        });
      answer = async (body) =>
        refusal(body) !== undefined
          ? {
              status: 400,
              body: {
                kind: "Status",
                apiVersion: "v1",
                metadata: {},
                status: "Failure",
                message: `TokenCredentialRequest in version "v1alpha1" cannot be handled as a TokenCredentialRequest: ${refusal(body)}`,
                reason: "BadRequest",
                code: 400,
              },
            }
          : {
              status: 201,
              body: {
                status: {
                  credential: {
                    expirationTimestamp: "2030-01-01T00:05:00Z",
                    clientCertificateData: upstreamKey.certPEM,
                    clientKeyData: upstreamKey.keyPEM,
                  },
                },
              },
            };
      seen.length = 0;
      const credential = await exchangeToken(params(), "the-token");
      assert.equal(seen.length, 2);
      assert.equal(seen[1]!.path, "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests");
      assert.equal(csrOf(seen[1]!.body), undefined);
      assert.equal(credential.clientKeyData, upstreamKey.keyPEM);
    });

    it("uses a key the Concierge made when it answers one (no strategy could sign the request), and a token as it is", async () => {
      answer = { status: 201, body: { status: { credential: issued } } };
      assert.deepEqual(await exchangeToken(params(), "the-token"), issued);
      const token = { expirationTimestamp: "2030-01-01T00:05:00Z", token: "a.jwt.token" };
      answer = { status: 201, body: { status: { credential: token } } };
      assert.deepEqual(await exchangeToken(params(), "the-token"), token);
    });

    it("refuses a certificate for some other key", async () => {
      const other = await issueClientCertificate(ca, user, 300_000);
      answer = {
        status: 201,
        body: {
          status: {
            credential: { expirationTimestamp: "2030-01-01T00:05:00Z", clientCertificateData: other.certPEM },
          },
        },
      };
      await assert.rejects(exchangeToken(params(), "the-token"), /not for the key this CLI sent/);
    });

    it("keeps the key with the certificate in the 0600 credential cache", async () => {
      const cachePath = join(dir, "client-held.yaml");
      const o = parseLoginStatic(["--token=t", `--credential-cache=${cachePath}`, ...conciergeArgs()], {});
      assert.ok(o !== "help");
      answer = signsTheRequest;
      const first = await loginStatic(o, { env: {}, now: () => new Date("2030-01-01T00:00:00Z") });
      assert.equal((await stat(cachePath)).mode & 0o777, 0o600);
      const cached = JSON.parse(await readFile(cachePath, "utf8")) as {
        credentials: { credential: { clientKeyData: string } }[];
      };
      assert.equal(cached.credentials[0]?.credential.clientKeyData, first.status.clientKeyData);
    });
  });

  it("fails clearly on 'authentication failed', HTTP errors and an untrusted server, without the token", async () => {
    const o = parseLoginStatic(["--token=the-token", ...conciergeArgs()], {});
    assert.ok(o !== "help" && o.concierge);
    const params: ConciergeParams = o.concierge;
    answer = { status: 201, body: { status: { message: "authentication failed" } } };
    await assert.rejects(exchangeToken(params, "the-token"), (err: Error) => {
      assert.ok(err instanceof LoginError);
      assert.equal(
        err.message,
        "could not complete Concierge credential exchange: login failed: authentication failed",
      );
      return true;
    });
    answer = { status: 201, body: { status: {} } };
    await assert.rejects(exchangeToken(params, "the-token"), /login failed: unknown cause/);
    // Upstream's request must be answered with a key.
    answer = { status: 201, body: { status: { credential: { ...issued, clientKeyData: undefined } } } };
    await assert.rejects(
      exchangeToken({ ...params, clientHeldKey: false }, "the-token"),
      /login failed: unknown cause/,
    );
    answer = {
      status: 404,
      body: { kind: "Status", message: "the server could not find the requested resource" },
    };
    await assert.rejects(
      exchangeToken(params, "the-token"),
      /could not login: HTTP 404: the server could not find/,
    );
    const untrusted = { ...params, caPEM: server.otherCAPEM };
    await assert.rejects(exchangeToken(untrusted, "the-token"), (err: Error) => {
      assert.match(err.message, /could not login: .*certificate/);
      assert.doesNotMatch(err.message, /the-token/);
      return true;
    });
  });

  it("exchanges once and serves the cache until near expiry; no cache without the Concierge", async () => {
    const cachePath = join(dir, "credentials.yaml");
    const o = parseLoginStatic(["--token=t", `--credential-cache=${cachePath}`, ...conciergeArgs()], {});
    assert.ok(o !== "help");
    let exchanges = 0;
    let now = Date.parse("2030-01-01T00:00:00Z");
    const deps = {
      env: {},
      now: () => new Date(now),
      exchange: async () => {
        exchanges++;
        return { ...issued };
      },
    };
    const first = await loginStatic(o, deps);
    assert.deepEqual(first, {
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      spec: { interactive: false },
      status: issued,
    });
    await loginStatic(o, deps);
    assert.equal(exchanges, 1);
    now = Date.parse("2030-01-01T00:04:45Z");
    await loginStatic(o, deps);
    assert.equal(exchanges, 2);
    const noCache = parseLoginStatic(["--token=t", "--credential-cache=", ...conciergeArgs()], {});
    assert.ok(noCache !== "help");
    await loginStatic(noCache, deps);
    await loginStatic(noCache, deps);
    assert.equal(exchanges, 4);
    const direct = parseLoginStatic(["--token=t"], {});
    assert.ok(direct !== "help");
    assert.deepEqual((await loginStatic(direct, deps)).status, { token: "t" });
    assert.equal(exchanges, 4);
  });
});
