import assert from "node:assert/strict";
import { createServer as createHTTPServer } from "node:http";
import { createServer as createNetServer, type Server } from "node:net";
import { after, before, describe, it } from "node:test";
import { createServer as createTLSServer } from "node:tls";
import type { CertSpec } from "../../hack/pki.ts";
import { type TestCA, testCA } from "../../test/harness/tls.ts";
import { unusedPort } from "../../test/harness/tokenreview-webhook.ts";
import { tlsDial } from "./dial.ts";

describe("tlsDial", () => {
  let ca: TestCA;
  let caPEM: string;
  let otherCAPEM: string;
  const servers: Server[] = [];

  async function listen(server: Server): Promise<number> {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  async function tlsServer(spec: Omit<CertSpec, "name" | "usage">): Promise<number> {
    const { certPEM, keyPEM } = await ca.issue(spec);
    return listen(createTLSServer({ cert: certPEM, key: keyPEM }, (socket) => socket.end()));
  }

  before(async () => {
    const [ours, other] = await Promise.all([testCA(), testCA("other test CA")]);
    ca = ours;
    caPEM = ours.caPEM;
    otherCAPEM = other.caPEM;
  });
  after(() => {
    for (const s of servers) s.close();
  });

  const dial = (host: string, port: number, options: { pem?: string | undefined; timeoutMs?: number } = {}) =>
    tlsDial(
      { host, port },
      {
        caPEM: "pem" in options ? options.pem : caPEM,
        signal: new AbortController().signal,
        timeoutMs: options.timeoutMs,
      },
    );

  it("succeeds with the right CA, by IP and by name", async () => {
    const port = await tlsServer({ cn: "good", ips: ["127.0.0.1"], dnsNames: ["localhost"] });
    await dial("127.0.0.1", port);
    await dial("localhost", port);
  });

  it("reports certificate problems as Go does", async () => {
    const good = await tlsServer({ cn: "good", ips: ["127.0.0.1"] });
    await assert.rejects(dial("127.0.0.1", good, { pem: otherCAPEM }), {
      message: "tls: failed to verify certificate: x509: certificate signed by unknown authority",
    });
    await assert.rejects(dial("127.0.0.1", good, { pem: undefined }), {
      message: "tls: failed to verify certificate: x509: certificate signed by unknown authority",
    });
    const namesOnly = await tlsServer({ cn: "x", dnsNames: ["localhost"] });
    await assert.rejects(dial("127.0.0.1", namesOnly), {
      message:
        "tls: failed to verify certificate: x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs",
    });
    const exampleCom = await tlsServer({
      cn: "x",
      dnsNames: ["example.com", "*.example.org"],
    });
    await assert.rejects(dial("localhost", exampleCom), {
      message:
        "tls: failed to verify certificate: x509: certificate is valid for example.com, *.example.org, not localhost",
    });
    const otherIP = await tlsServer({ cn: "x", ips: ["10.2.3.4", "::1"] });
    await assert.rejects(dial("127.0.0.1", otherIP), {
      message:
        "tls: failed to verify certificate: x509: certificate is valid for 10.2.3.4, ::1, not 127.0.0.1",
    });
    const legacy = await tlsServer({ cn: "localhost" });
    await assert.rejects(dial("localhost", legacy), {
      message:
        "tls: failed to verify certificate: x509: certificate relies on legacy Common Name field, use SANs instead",
    });
  });

  it("reports connection problems as Go does", async () => {
    const closed = await unusedPort();
    await assert.rejects(dial("127.0.0.1", closed), {
      message: `dial tcp 127.0.0.1:${closed}: connect: connection refused`,
    });
    const http = createHTTPServer((_req, res) => res.end("plain"));
    const httpPort = await listen(http as unknown as Server);
    await assert.rejects(dial("127.0.0.1", httpPort), {
      message: "tls: first record does not look like a TLS handshake",
    });
    const hangUp = await listen(createNetServer((socket) => socket.end()));
    await assert.rejects(dial("127.0.0.1", hangUp), { message: "EOF" });
    const silent = await listen(createNetServer(() => {}));
    await assert.rejects(dial("127.0.0.1", silent, { timeoutMs: 100 }), {
      message: "context deadline exceeded",
    });
    await assert.rejects(dial("nonexistent.invalid", 443), /^Error: dial tcp: lookup nonexistent\.invalid: /);
  });

  it("never dials a link-local or metadata address", async () => {
    const meta = "is a link-local or cloud metadata address, which is not dialled unless";
    await assert.rejects(dial("169.254.169.254", 443), {
      message: `dial tcp 169.254.169.254:443: 169.254.169.254 ${meta} outbound.allowLinkLocalAddresses in the Concierge config allows it`,
    });
    await assert.rejects(
      dial("::ffff:169.254.169.254", 80),
      new RegExp(`^Error: dial tcp \\[::ffff:169.254.169.254\\]:80: ::ffff:169.254.169.254 ${meta}`),
    );
    await assert.rejects(dial("2852039166", 443), new RegExp(`169.254.169.254 ${meta}`));
  });

  it("stops when the signal aborts", async () => {
    const silent = await listen(createNetServer(() => {}));
    const abort = new AbortController();
    const pending = tlsDial({ host: "127.0.0.1", port: silent }, { caPEM, signal: abort.signal });
    setTimeout(() => abort.abort(), 20);
    await assert.rejects(pending, { message: "context canceled" });
  });
});
