import assert from "node:assert/strict";
import { createServer } from "node:https";
import { after, before, describe, it } from "node:test";
import { tlsDial } from "../controllers/webhookauthenticator/dial.ts";
import { type ConnectProxy, startConnectProxy } from "../test/harness/connect-proxy.ts";
import { testCA } from "../test/harness/tls.ts";
import { httpsGetJSON, httpsRequest } from "./https.ts";
import { bypassesProxy, proxyAuthorization, proxyFor, setProxyEnvironment } from "./proxy.ts";

describe("NO_PROXY, read as Go's httpproxy reads it", () => {
  const cases: [string, string, number, boolean][] = [
    ["", "idp.example.com", 443, false],
    ["", "localhost", 443, true],
    ["", "127.0.0.2", 443, true],
    ["", "::1", 443, true],
    ["*", "idp.example.com", 443, true],
    ["example.com", "example.com", 443, true],
    ["example.com", "idp.example.com", 443, true],
    ["example.com", "notexample.com", 443, false],
    [".example.com", "example.com", 443, false],
    [".example.com", "idp.example.com", 443, true],
    ["*.example.com", "idp.example.com", 443, true],
    ["*.example.com", "example.com", 443, false],
    ["example.com:8443", "idp.example.com", 443, false],
    ["example.com:8443", "idp.example.com", 8443, true],
    [" other.org , EXAMPLE.com ", "idp.example.com", 443, true],
    ["10.0.0.0/8", "10.1.2.3", 443, true],
    ["10.0.0.0/8", "11.1.2.3", 443, false],
    ["10.0.0.0/8", "ten.example.com", 443, false],
    ["10.1.2.3", "10.1.2.3", 443, true],
    ["10.1.2.3:8443", "10.1.2.3", 443, false],
    ["fd00::/8", "fd12::1", 443, true],
    ["fd00::/8", "fe80::1", 443, false],
    ["[fd12::1]:443", "[fd12::1]", 443, true],
  ];
  for (const [noProxy, host, port, bypass] of cases) {
    it(`${JSON.stringify(noProxy)} ${bypass ? "sends" : "does not send"} ${host}:${port} direct`, () =>
      assert.equal(bypassesProxy(host, port, noProxy), bypass));
  }

  it("uses HTTPS_PROXY (either case) for https, never HTTP_PROXY", () => {
    assert.equal(proxyFor("idp.example.com", 443, {}), undefined);
    assert.equal(proxyFor("idp.example.com", 443, { HTTP_PROXY: "http://p:3128" }), undefined);
    assert.equal(proxyFor("idp.example.com", 443, { HTTPS_PROXY: "http://p:3128" })?.href, "http://p:3128/");
    assert.equal(proxyFor("idp.example.com", 443, { https_proxy: "p:3128" })?.href, "http://p:3128/");
    assert.equal(
      proxyFor("idp.example.com", 443, { HTTPS_PROXY: "http://p:3128", no_proxy: "example.com" }),
      undefined,
    );
    assert.throws(
      () => proxyFor("idp.example.com", 443, { HTTPS_PROXY: "socks5://p:1080" }),
      /HTTPS_PROXY socks5:\/\/ proxies are not supported/,
    );
  });

  it("sends the proxy URL's user information as Basic Proxy-Authorization", () => {
    assert.equal(proxyAuthorization(new URL("http://p:3128")), undefined);
    assert.equal(
      proxyAuthorization(new URL("http://us%40er:p%3Ass@p:3128")),
      `Basic ${Buffer.from("us@er:p:ss").toString("base64")}`,
    );
  });
});

describe("identity providers and webhooks behind a CONNECT proxy", () => {
  const host = "idp.proxy.test";
  let proxy: ConnectProxy;
  let server: ReturnType<typeof createServer>;
  let base: string;
  let caPEM: string;
  let authority: string;

  before(async () => {
    const ca = await testCA();
    caPEM = ca.caPEM;
    const serving = await ca.issue({ cn: host, dnsNames: [host] });
    server = createServer({ cert: serving.certPEM, key: serving.keyPEM }, (_req, res) =>
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}'),
    );
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    authority = `${host}:${port}`;
    base = `https://${authority}`;
    // Only the proxy knows where the name lives: a request that bypassed it could not resolve it.
    proxy = await startConnectProxy({ [host]: "127.0.0.1" });
  });
  after(async () => {
    setProxyEnvironment(process.env);
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
    await proxy.close();
  });

  it("fetches through one tunnel, kept alive for the next request", async () => {
    setProxyEnvironment({ HTTPS_PROXY: proxy.url });
    const before = proxy.tunnels.length;
    assert.deepEqual(await httpsGetJSON(`${base}/.well-known/openid-configuration`, { caPEM }), { ok: true });
    assert.deepEqual(await httpsGetJSON(`${base}/jwks`, { caPEM }), { ok: true });
    assert.deepEqual(proxy.tunnels.slice(before), [authority]);
  });

  it("dials the webhook probe through a tunnel of its own, with the proxy's credentials", async () => {
    setProxyEnvironment({ HTTPS_PROXY: proxy.url.replace("http://", "http://probe:secret@") });
    const before = proxy.tunnels.length;
    const port = Number(authority.split(":")[1]);
    await tlsDial({ host, port }, { caPEM, signal: AbortSignal.timeout(10_000) });
    assert.deepEqual(proxy.tunnels.slice(before), [authority]);
    assert.equal(proxy.authorizations.at(-1), `Basic ${Buffer.from("probe:secret").toString("base64")}`);
  });

  it("goes direct for NO_PROXY hosts, so the name is resolved here (and fails)", async () => {
    setProxyEnvironment({ HTTPS_PROXY: proxy.url, NO_PROXY: ".proxy.test" });
    const before = proxy.tunnels.length;
    await assert.rejects(httpsRequest(`${base}/x`, { caPEM, timeoutMs: 10_000 }), /ENOTFOUND|EAI_AGAIN/);
    assert.equal(proxy.tunnels.length, before);
  });

  it("reports a proxy that refuses the tunnel", async (t) => {
    // Other credentials, so no connection kept alive from the tests above is reused.
    setProxyEnvironment({ HTTPS_PROXY: proxy.url.replace("http://", "http://refused:x@") });
    proxy.refuseWith = 403;
    t.after(() => {
      proxy.refuseWith = undefined;
    });
    const port = Number(authority.split(":")[1]);
    await assert.rejects(
      tlsDial({ host, port }, { caPEM, signal: AbortSignal.timeout(10_000) }),
      new RegExp(`^Error: proxyconnect tcp: proxy refused CONNECT ${authority}: 403 Refused By Test$`),
    );
    await assert.rejects(httpsRequest(`${base}/refused`, { caPEM, timeoutMs: 10_000 }), /403/);
  });
});
