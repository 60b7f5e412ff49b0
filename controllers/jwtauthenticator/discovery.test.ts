import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { discover, goTransportError } from "./discovery.ts";
import { startTLSServer, type TestTLSServer } from "./testing.ts";

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  await new Promise((ok) => server.close(ok));
  return typeof address === "object" && address ? address.port : 0;
}

describe("discover", () => {
  let server: TestTLSServer;

  before(async () => {
    server = await startTLSServer((req, res) => {
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
    const port = await closedPort();
    const refused = `https://127.0.0.1:${port}/x/.well-known/openid-configuration`;
    assert.deepEqual(await discover(refused, server.caPEM), {
      ok: false,
      error: `Get "${refused}": dial tcp 127.0.0.1:${port}: connect: connection refused`,
    });
  });

  it("keeps Node's words for failures without a Go equivalent here", () => {
    assert.equal(goTransportError(new Error("socket hang up")), "socket hang up");
    assert.equal(
      goTransportError(
        Object.assign(new Error("getaddrinfo ENOTFOUND nope.invalid"), {
          code: "ENOTFOUND",
          hostname: "nope.invalid",
        }),
      ),
      "dial tcp: lookup nope.invalid: no such host",
    );
  });
});
