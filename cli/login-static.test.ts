import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
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
  let answer: { status: number; body: unknown } = { status: 201, body: {} };
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
      req.on("end", () => {
        seen.push({ path: req.url ?? "", authorization: req.headers.authorization, body: JSON.parse(text) });
        res.writeHead(answer.status, { "Content-Type": "application/json" });
        res.end(JSON.stringify(answer.body));
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

  it("POSTs an anonymous TokenCredentialRequest and returns the certificate, key and expiry", async () => {
    const o = parseLoginStatic(["--token=the-token", ...conciergeArgs()], {});
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
