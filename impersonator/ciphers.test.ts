// tls.onedottwo.allowedCiphers on the impersonation proxy's listener, seen by TLS clients: a
// TLS 1.2 client offering only a suite left out is refused in the handshake, one offering an
// allowed suite gets it, and TLS 1.3 is unaffected (its suites are not configurable, as upstream).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ConnectionOptions, connect } from "node:tls";
import { testCA } from "../test/harness/tls.ts";
import { type ImpersonationProxyServer, startImpersonationProxy } from "./server.ts";
import { ProxyTLSHolder } from "./tlsholder.ts";

/** The suite and version the handshake agreed on, or the handshake's error. */
function handshake(port: number, caPEM: string, options: ConnectionOptions) {
  return new Promise<{ cipher: string; version: string } | { error: string }>((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, ca: caPEM, ...options }, () => {
      resolve({ cipher: socket.getCipher().standardName, version: socket.getProtocol() ?? "" });
      socket.destroy();
    });
    socket.on("error", (err) => resolve({ error: err.message }));
  });
}

describe("the impersonation proxy's TLS 1.2 suites, narrowed by tls.onedottwo.allowedCiphers", () => {
  let caPEM: string;
  let narrowed: ImpersonationProxyServer;
  let whole: ImpersonationProxyServer;

  before(async () => {
    const ca = await testCA("cipher test CA");
    caPEM = ca.caPEM;
    // An EC key: the ECDSA suites are the ones it can serve.
    const serving = await ca.issue({ cn: "127.0.0.1", ips: ["127.0.0.1"] });
    const start = (allowedCiphers?: string[]) =>
      startImpersonationProxy({
        port: 0,
        host: "127.0.0.1",
        tls: new ProxyTLSHolder({ certPEM: serving.certPEM, keyPEM: serving.keyPEM, clientCAPEMs: [] }),
        decide: async () => ({ action: "refuse", code: 401, reason: "Unauthorized", message: "no" }),
        // Never dialled: these tests end at the handshake.
        upstream: { url: "https://127.0.0.1:1" },
        ...(allowedCiphers ? { allowedCiphers } : {}),
      });
    narrowed = await start(["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]);
    whole = await start();
  });
  after(async () => {
    await narrowed?.close();
    await whole?.close();
  });

  const tls12 = (ciphers: string): ConnectionOptions => ({ maxVersion: "TLSv1.2", ciphers });

  it("refuses a TLS 1.2 client that offers only a suite the list leaves out", async () => {
    const result = await handshake(narrowed.port, caPEM, tls12("ECDHE-ECDSA-AES128-GCM-SHA256"));
    assert.ok("error" in result, JSON.stringify(result));
    assert.match(result.error, /handshake failure|no shared cipher/i);
  });

  it("accepts a TLS 1.2 client offering an allowed suite, and agrees on it", async () => {
    const result = await handshake(
      narrowed.port,
      caPEM,
      tls12("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"),
    );
    assert.deepEqual(result, { cipher: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", version: "TLSv1.2" });
  });

  it("still speaks TLS 1.3 with its own suites", async () => {
    const result = await handshake(narrowed.port, caPEM, { minVersion: "TLSv1.3" });
    assert.ok("version" in result, JSON.stringify(result));
    assert.equal(result.version, "TLSv1.3");
  });

  it("without a list, offers every suite of upstream's Default profile", async () => {
    for (const [offered, agreed] of [
      ["ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
      ["ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"],
    ] as const) {
      const result = await handshake(whole.port, caPEM, tls12(offered));
      assert.deepEqual(result, { cipher: agreed, version: "TLSv1.2" });
    }
    // A suite outside the profile, which OpenSSL would otherwise offer.
    assert.ok("error" in (await handshake(whole.port, caPEM, tls12("ECDHE-ECDSA-AES128-SHA256"))));
  });
});
