import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHTTPServer } from "node:http";
import { createServer as createNetServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createServer as createTLSServer } from "node:tls";
import { type CertFiles, type CertSpec, newCA, newCert } from "../../hack/pki.ts";
import { unusedPort } from "../../test/harness/tokenreview-webhook.ts";
import { tlsDial, verifyHostname } from "./dial.ts";

describe("tlsDial", () => {
  let dir: string;
  let ca: CertFiles;
  let caPEM: string;
  let otherCAPEM: string;
  const servers: Server[] = [];

  async function listen(server: Server): Promise<number> {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  async function tlsServer(spec: Omit<CertSpec, "usage">): Promise<number> {
    const cert = await newCert(dir, ca, { ...spec, usage: "server" });
    const server = createTLSServer(
      { cert: await readFile(cert.cert), key: await readFile(cert.key) },
      (socket) => socket.end(),
    );
    return listen(server);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "concierge-dial-"));
    ca = await newCA(dir, "ca", "dial-ca", "ec");
    caPEM = await readFile(ca.cert, "utf8");
    otherCAPEM = await readFile((await newCA(dir, "other", "other-ca", "ec")).cert, "utf8");
  });
  after(async () => {
    for (const s of servers) s.close();
    await rm(dir, { recursive: true, force: true });
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
    const port = await tlsServer({ name: "good", cn: "good", ips: ["127.0.0.1"], dnsNames: ["localhost"] });
    await dial("127.0.0.1", port);
    await dial("localhost", port);
  });

  it("reports certificate problems as Go does", async () => {
    const good = await tlsServer({ name: "good2", cn: "good", ips: ["127.0.0.1"] });
    await assert.rejects(dial("127.0.0.1", good, { pem: otherCAPEM }), {
      message: "tls: failed to verify certificate: x509: certificate signed by unknown authority",
    });
    await assert.rejects(dial("127.0.0.1", good, { pem: undefined }), {
      message: "tls: failed to verify certificate: x509: certificate signed by unknown authority",
    });
    const namesOnly = await tlsServer({ name: "names", cn: "x", dnsNames: ["localhost"] });
    await assert.rejects(dial("127.0.0.1", namesOnly), {
      message:
        "tls: failed to verify certificate: x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs",
    });
    const exampleCom = await tlsServer({
      name: "example",
      cn: "x",
      dnsNames: ["example.com", "*.example.org"],
    });
    await assert.rejects(dial("localhost", exampleCom), {
      message:
        "tls: failed to verify certificate: x509: certificate is valid for example.com, *.example.org, not localhost",
    });
    const otherIP = await tlsServer({ name: "otherip", cn: "x", ips: ["10.2.3.4", "::1"] });
    await assert.rejects(dial("127.0.0.1", otherIP), {
      message:
        "tls: failed to verify certificate: x509: certificate is valid for 10.2.3.4, ::1, not 127.0.0.1",
    });
    const legacy = await tlsServer({ name: "legacy", cn: "localhost" });
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

  it("stops when the signal aborts", async () => {
    const silent = await listen(createNetServer(() => {}));
    const abort = new AbortController();
    const pending = tlsDial({ host: "127.0.0.1", port: silent }, { caPEM, signal: abort.signal });
    setTimeout(() => abort.abort(), 20);
    await assert.rejects(pending, { message: "context canceled" });
  });

  it("verifyHostname matches wildcards one label deep, case-insensitively, and IPs canonically", async () => {
    const files = await newCert(dir, ca, {
      name: "hostnames",
      cn: "x",
      usage: "server",
      dnsNames: ["*.Example.com", "exact.test"],
      ips: ["0:0:0:0:0:0:0:1", "192.0.2.1"],
    });
    const cert = new X509Certificate(await readFile(files.cert));
    assert.equal(verifyHostname(cert, "a.example.com"), undefined);
    assert.equal(verifyHostname(cert, "EXACT.test."), undefined);
    assert.equal(verifyHostname(cert, "::1"), undefined);
    assert.equal(verifyHostname(cert, "[::1]"), undefined);
    assert.equal(verifyHostname(cert, "192.0.2.1"), undefined);
    assert.equal(
      verifyHostname(cert, "a.b.example.com"),
      "x509: certificate is valid for *.Example.com, exact.test, not a.b.example.com",
    );
    assert.equal(
      verifyHostname(cert, "10.0.0.1"),
      "x509: certificate is valid for ::1, 192.0.2.1, not 10.0.0.1",
    );
  });
});
