// The aggregated API's bounds: concurrent requests, body size and time, TLS handshake time.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { connect } from "node:http2";
import { request as h1request } from "node:https";
import { connect as netConnect } from "node:net";
import { after, before, describe, it } from "node:test";
import { AuthenticatorCache, authenticationGroup } from "../authenticators/cache.ts";
import { ServingCertHolder } from "../certs/servingcert.ts";
import { type TestPKI, testPKI } from "../test/harness/frontproxy-pki.ts";
import { assertTooManyRequests } from "../test/harness/too-many-requests.ts";
import { createWebhookHandler, validatePath } from "../webhooks/server.ts";
import { type AggregatedAPIServer, defaultMaxBodyBytes, startAggregatedAPIServer } from "./aggregated.ts";
import { FrontProxyConfigHolder } from "./frontproxy.ts";

const tcrPath = "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests";
const tcr = (token: string) =>
  JSON.stringify({
    apiVersion: "login.concierge.pinniped.dev/v1alpha1",
    kind: "TokenCredentialRequest",
    spec: { token, authenticator: { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" } },
  });

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const webhook = createWebhookHandler({ maxBodyBytes: 1024, maxDrainBytes: 2048 });

describe("aggregated API bounds", () => {
  let pki: TestPKI;
  let server: AggregatedAPIServer;
  // Tokens named "hold" wait here until released.
  const held: (() => void)[] = [];

  before(async () => {
    pki = await testPKI();
    const certs = new ServingCertHolder();
    certs.set(pki.serving);
    const frontProxy = new FrontProxyConfigHolder();
    frontProxy.set(pki.config);
    const authenticators = new AuthenticatorCache();
    authenticators.store(
      { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" },
      {
        fingerprint: "f",
        authenticator: {
          authenticateToken: async (token) => {
            if (token === "hold") await new Promise<void>((resolve) => held.push(resolve));
            return { authenticated: false, reason: "no" };
          },
          close: () => {},
        },
      },
    );
    server = await startAggregatedAPIServer({
      certs,
      frontProxy,
      host: "127.0.0.1",
      port: 0,
      authenticators,
      issuer: {
        issue: async () => {
          throw new Error("not in these tests");
        },
      },
      maxInFlight: 2,
      extraRoutes: new Map([
        [validatePath, (req, res) => webhook(req as IncomingMessage, res as ServerResponse)],
      ]),
      bodyTimeoutMs: 300,
      handshakeTimeoutMs: 300,
    });
  });

  after(() => server?.close());

  function send(path: string, body?: string, options: { partial?: boolean } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = h1request(
        {
          host: "127.0.0.1",
          port: server.port,
          path,
          method: body === undefined ? "GET" : "POST",
          ca: pki.servingCAPEM,
          cert: pki.proxyClient.certPEM,
          key: pki.proxyClient.keyPEM,
          agent: false,
          headers: {
            "x-remote-user": "admin",
            "content-type": "application/json",
            ...(body === undefined
              ? {}
              : { "content-length": String(Buffer.byteLength(body) + (options.partial ? 10 : 0)) }),
          },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            text += c;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on("error", reject);
      if (options.partial) req.write(body);
      else req.end(body);
    });
  }

  it("answers past its in-flight limit with kube-apiserver's 429, but always answers health checks", async () => {
    const first = send(tcrPath, tcr("hold"));
    const second = send(tcrPath, tcr("hold"));
    while (held.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    assertTooManyRequests(await send(tcrPath, tcr("other")));
    assert.equal((await send("/healthz")).status, 200);
    for (const release of held.splice(0)) release();
    assert.equal((await first).status, 201);
    assert.equal((await second).status, 201);
    assert.equal((await send(tcrPath, tcr("other"))).status, 201, "slots come back");
  });

  it("takes a request with the largest token an authenticator accepts, and nothing much larger", async () => {
    assert.equal(defaultMaxBodyBytes, 80 * 1024);
    // This server keeps the default body limit.
    assert.equal((await send(tcrPath, tcr("t".repeat(64 * 1024)))).status, 201);
    const huge = await send(tcrPath, tcr("t".repeat(250_000)));
    assert.equal(huge.status, 413);
    assert.equal(JSON.parse(huge.body).message, `the request body is larger than ${80 * 1024} bytes`);
  });

  it("answers a body that trickles in too slowly with 408 and frees its slot", async () => {
    const slow = await send(tcrPath, tcr("x"), { partial: true });
    assert.equal(slow.status, 408);
    assert.equal(JSON.parse(slow.body).message, "the request body did not arrive within 300 ms");
    assert.equal((await send(tcrPath, tcr("other"))).status, 201);
  });

  it("gives back the slot of an HTTP/2 request whose oversized body it refused to read", {
    timeout: 20_000,
  }, async () => {
    const session = connect(`https://127.0.0.1:${server.port}`, {
      ca: pki.servingCAPEM,
      cert: pki.proxyClient.certPEM,
      key: pki.proxyClient.keyPEM,
    });
    session.on("error", () => {});
    try {
      // More than the flow-control window and without a length: the client is still sending when
      // the 413 comes, and would go on holding the stream open.
      const oversized = (path: string) =>
        new Promise<number>((resolve) => {
          const stream = session.request({
            ":method": "POST",
            ":path": path,
            "content-type": "application/json",
            "x-remote-user": "admin",
          });
          let status = 0;
          stream.on("response", (h) => {
            status = Number(h[":status"]);
          });
          stream.on("data", () => {});
          stream.on("error", () => resolve(status));
          stream.on("close", () => resolve(status));
          stream.end(tcr("t".repeat(250_000)));
        });
      for (let i = 0; i < 3; i++) assert.equal(await oversized(tcrPath), 413);
      // The admission webhook shares the listener, and refuses past what it drains.
      for (let i = 0; i < 3; i++) assert.equal(await oversized(validatePath), 413);
      assert.equal((await send(tcrPath, tcr("other"))).status, 201, "no slot is left held");
    } finally {
      session.close();
    }
  });

  it("drops connections that never finish the TLS handshake", async () => {
    const socket = netConnect({ host: "127.0.0.1", port: server.port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    // Say nothing: the server must hang up on its own.
    await new Promise<void>((resolve) => socket.once("close", () => resolve()));
    assert.ok(socket.destroyed);
  });
});
