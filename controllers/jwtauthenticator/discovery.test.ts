import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startHTTPSServer, type TestHTTPSServer } from "../../test/harness/tls.ts";
import { unusedPort } from "../../test/harness/tokenreview-webhook.ts";
import { discover } from "./discovery.ts";

describe("discover", () => {
  let server: TestHTTPSServer;

  before(async () => {
    server = await startHTTPSServer((req, res) => {
      if (req.url === "/good/.well-known/openid-configuration") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ issuer: "x", jwks_uri: "y" }));
      } else if (req.url === "/text/.well-known/openid-configuration") {
        res.setHeader("content-type", "text/html");
        res.end("<html>");
      } else {
        res.statusCode = 404;
        res.end("no such page");
      }
    });
  });
  after(() => server.close());

  it("fetches and parses the document with the CA bundle", async () => {
    const url = `${server.base}/good/.well-known/openid-configuration`;
    assert.deepEqual(await discover(url, server.caPEM), {
      ok: true,
      document: { issuer: "x", jwks_uri: "y" },
    });
  });

  it("words failures as Go and go-oidc do", async () => {
    const url = (path: string) => `${server.base}/${path}/.well-known/openid-configuration`;
    assert.deepEqual(await discover(url("good"), server.otherCAPEM), {
      ok: false,
      error: `Get "${url("good")}": tls: failed to verify certificate: x509: certificate signed by unknown authority`,
    });
    assert.deepEqual(await discover(url("good"), undefined), {
      ok: false,
      error: `Get "${url("good")}": tls: failed to verify certificate: x509: certificate signed by unknown authority`,
    });
    assert.deepEqual(await discover(url("missing"), server.caPEM), {
      ok: false,
      error: "404 Not Found: no such page",
    });
    const text = await discover(url("text"), server.caPEM);
    assert.equal(text.ok, false);
    assert.match(
      text.ok ? "" : text.error,
      /^oidc: failed to decode provider discovery object: expected Content-Type = application\/json, got "text\/html": /,
    );
    const port = await unusedPort();
    const refused = `https://127.0.0.1:${port}/x/.well-known/openid-configuration`;
    assert.deepEqual(await discover(refused, server.caPEM), {
      ok: false,
      error: `Get "${refused}": dial tcp 127.0.0.1:${port}: connect: connection refused`,
    });
  });
});
