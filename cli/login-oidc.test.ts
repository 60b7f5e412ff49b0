import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeJwt } from "jose";
import { parse } from "yaml";
import { closeBrowser, loginWithBrowser } from "../test/harness/browser.ts";
import { startOIDCProvider, type TestOIDCProvider } from "../test/harness/oidc-provider.ts";
import { startHTTPSServer, type TestHTTPSServer } from "../test/harness/tls.ts";

const bin = join(import.meta.dirname, "..", "bin", "pinniped");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/pinniped; when it prints a login URL, `onURL` plays the user. */
function pinniped(
  args: string[],
  env: NodeJS.ProcessEnv,
  onURL?: (url: string) => Promise<unknown>,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let acting: Promise<unknown> | undefined;
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
      const url = /Log in by visiting this link:\n\n {4}(\S+)\n\n/.exec(stderr)?.[1];
      if (url && !acting) {
        if (!onURL) child.kill();
        acting = onURL?.(url) ?? Promise.resolve();
      }
    });
    child.on("error", reject);
    // The user's side may still be reading the callback page when the CLI exits.
    child.on("close", (code) =>
      (acting ?? Promise.resolve()).then(() => resolve({ code: code ?? 1, stdout, stderr }), reject),
    );
  });
}

describe("login oidc", () => {
  let provider: TestOIDCProvider;
  let shortLived: TestOIDCProvider;
  let dir: string;
  const users = { pinny: { groups: ["sea-lions", "walruses"] } };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cli-login-oidc-"));
    [provider, shortLived] = await Promise.all([
      startOIDCProvider({ interactive: { users } }),
      startOIDCProvider({ interactive: { users, idTokenTTLSeconds: 60 } }),
    ]);
  });
  after(async () => {
    await closeBrowser();
    await Promise.all([provider.close(), shortLived.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  const args = (p: TestOIDCProvider, home: string, extra: string[] = []) => [
    "login",
    "oidc",
    `--issuer=${p.issuer}`,
    `--ca-bundle-data=${Buffer.from(p.caPEM).toString("base64")}`,
    "--skip-browser",
    `--session-cache=${join(home, "sessions.yaml")}`,
    "--credential-cache=",
    ...extra,
  ];
  const browse = (url: string) => loginWithBrowser(url, { username: "pinny", password: "any" });
  const secretsIn = async (home: string) => {
    const doc = parse(await readFile(join(home, "sessions.yaml"), "utf8"));
    const t = doc.sessions[0].tokens;
    return [t.id?.token, t.access?.token, t.refresh?.token].filter(Boolean) as string[];
  };

  it("logs in through the browser, prints the ID token, then reuses the session without a browser", async () => {
    const home = join(dir, "main");
    const before = provider.stats();
    let page = "";
    const r = await pinniped(args(provider, home), {}, async (url) => {
      page = (await browse(url)).pageText;
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(page, /you have been logged in and may now close this tab/);
    const cred = JSON.parse(r.stdout);
    assert.equal(cred.kind, "ExecCredential");
    const claims = decodeJwt(cred.status.token);
    assert.equal(claims.iss, provider.issuer);
    assert.equal(claims.username, "pinny");
    assert.deepEqual(claims.groups, ["sea-lions", "walruses"]);
    assert.equal(cred.status.expirationTimestamp, new Date((claims.exp ?? 0) * 1000).toISOString());
    assert.equal(provider.stats().interactiveLogins, before.interactiveLogins + 1);
    assert.equal(provider.stats().authorizationCodeGrants, before.authorizationCodeGrants + 1);
    const file = await stat(join(home, "sessions.yaml"));
    assert.equal(file.mode & 0o777, 0o600);
    const doc = parse(await readFile(join(home, "sessions.yaml"), "utf8"));
    assert.equal(doc.kind, "SessionCache");
    assert.deepEqual(doc.sessions[0].key.scopes, [...doc.sessions[0].key.scopes].sort());
    assert.equal(doc.sessions[0].key.redirect_uri, "http://localhost:0/callback");
    const secrets = await secretsIn(home);
    assert.equal(secrets.length, 3, "id, access and refresh tokens are cached");

    const again = await pinniped(args(provider, home), { PINNIPED_DEBUG: "true" });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout).status.token, cred.status.token);
    assert.match(again.stderr, /Found unexpired cached token/);
    assert.equal(provider.stats().interactiveLogins, before.interactiveLogins + 1);
    for (const s of secrets) {
      assert.ok(!r.stderr.includes(s) && !again.stderr.includes(s), "a token leaked to stderr");
    }
  });

  it("refreshes a nearly expired ID token without a browser, and falls back to the browser when the refresh token is dead", async () => {
    const home = join(dir, "refresh");
    let r = await pinniped(args(shortLived, home), {}, browse);
    assert.equal(r.code, 0, r.stderr);
    const before = shortLived.stats();
    r = await pinniped(args(shortLived, home), { PINNIPED_DEBUG: "true" });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(decodeJwt(JSON.parse(r.stdout).status.token).username, "pinny");
    assert.equal(shortLived.stats().refreshGrants, before.refreshGrants + 1);
    assert.equal(shortLived.stats().interactiveLogins, before.interactiveLogins);
    for (const s of await secretsIn(home)) assert.ok(!r.stderr.includes(s), "a token leaked to stderr");

    // Replace the refresh token by garbage: the refresh fails and the user logs in again.
    const path = join(home, "sessions.yaml");
    const text = await readFile(path, "utf8");
    const [, , refreshToken] = await secretsIn(home);
    await writeFile(path, text.replace(refreshToken!, "garbage"));
    r = await pinniped(args(shortLived, home), { PINNIPED_DEBUG: "true" }, browse);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Refresh failed/);
    assert.equal(shortLived.stats().interactiveLogins, before.interactiveLogins + 1);
  });

  it("fails clearly on a callback with the wrong state or with an error from the provider", async () => {
    const home = join(dir, "errors");
    const callback = (query: (state: string) => string) => async (url: string) => {
      const u = new URL(url);
      const redirect = u.searchParams.get("redirect_uri");
      const res = await fetch(`${redirect}?${query(u.searchParams.get("state") ?? "")}`);
      return res.text();
    };
    let r = await pinniped(
      args(provider, home),
      {},
      callback(() => "state=wrong&code=abc"),
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^Error: could not complete Pinniped login: error handling callback: missing or invalid state parameter\n$/m,
    );
    r = await pinniped(
      args(provider, home),
      {},
      callback((s) => `state=${s}&error=access_denied&error_description=End-User+aborted+interaction`),
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /login failed with code "access_denied": End-User aborted interaction/);
  });

  it("skips the token exchange when --request-audience is already in the ID token's aud", async () => {
    const home = join(dir, "audience");
    const r = await pinniped(args(provider, home, ["--request-audience=pinniped-cli"]), {}, browse);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(decodeJwt(JSON.parse(r.stdout).status.token).aud, "pinniped-cli");
  });

  it("reports a failed token exchange clearly", async () => {
    const home = join(dir, "exchange");
    const r = await pinniped(args(provider, home, ["--request-audience=cluster-a"]), {}, browse);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /could not complete Pinniped login: failed to exchange token: oauth2: "unsupported_grant_type"/,
    );
  });

  it("needs --issuer and reports discovery failures", async () => {
    let r = await pinniped(["login", "oidc"], {});
    assert.equal(r.code, 1);
    assert.match(r.stderr, /required flag\(s\) "issuer" not set/);
    r = await pinniped(
      ["login", "oidc", `--issuer=${provider.issuer}`, "--credential-cache=", "--session-cache="],
      {},
    );
    assert.match(r.stderr, new RegExp(`could not perform OIDC discovery for "${provider.issuer}"`));
  });

  describe("with the Concierge", () => {
    let concierge: TestHTTPSServer;
    const sent: string[] = [];
    before(async () => {
      concierge = await startHTTPSServer((req, res) => {
        let text = "";
        req.on("data", (c) => {
          text += c;
        });
        req.on("end", () => {
          sent.push(JSON.parse(text).spec.token);
          res.writeHead(201, { "Content-Type": "application/json" });
          res.end(
            JSON.stringify({
              status: {
                credential: {
                  expirationTimestamp: new Date(Date.now() + 300_000).toISOString(),
                  clientCertificateData: "cert",
                  clientKeyData: "key",
                },
              },
            }),
          );
        });
      });
    });
    after(() => concierge.close());

    it("sends the ID token in a TokenCredentialRequest and caches the credential 0600", async () => {
      const home = join(dir, "concierge");
      const credentialCache = join(home, "credentials.yaml");
      const conciergeArgs = [
        "--enable-concierge",
        `--concierge-endpoint=${concierge.base}`,
        `--concierge-ca-bundle-data=${concierge.caBase64}`,
        "--concierge-authenticator-type=jwt",
        "--concierge-authenticator-name=corp",
        `--credential-cache=${credentialCache}`,
      ];
      const all = [...args(provider, home), ...conciergeArgs];
      let r = await pinniped(all, {}, browse);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).status.clientCertificateData, "cert");
      const [idToken] = await secretsIn(home);
      assert.deepEqual(sent, [idToken]);
      assert.equal((await stat(credentialCache)).mode & 0o777, 0o600);
      r = await pinniped(all, {});
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sent.length, 1, "the second run uses the credential cache");
    });
  });
});
