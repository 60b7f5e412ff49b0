import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import type { Socket } from "node:net";
import { describe, it } from "node:test";
import { testCA } from "../test/harness/tls.ts";
import {
  chainError,
  dialError,
  goTransportError,
  handshakeError,
  joinHostPort,
  type NodeError,
  validityError,
  verifyHostname,
} from "./goerrors.ts";
import { HTTPSError } from "./https.ts";

const nodeError = (message: string, fields: Omit<NodeError, "name" | "message">): NodeError =>
  Object.assign(new Error(message), fields);

describe("Go's error words", () => {
  it("joinHostPort brackets IPv6 addresses only", () => {
    assert.equal(joinHostPort("127.0.0.1", 443), "127.0.0.1:443");
    assert.equal(joinHostPort("example.com", "8443"), "example.com:8443");
    assert.equal(joinHostPort("::1", 443), "[::1]:443");
  });

  it("dialError words lookups and connect(2) failures as net.Dial", () => {
    const target = { host: "example.invalid", port: 443 };
    const lookup = nodeError("getaddrinfo ENOTFOUND example.invalid", {
      code: "ENOTFOUND",
      syscall: "getaddrinfo",
      hostname: "example.invalid",
    });
    assert.equal(dialError(lookup, target), "dial tcp: lookup example.invalid: no such host");
    const refused = nodeError("connect ECONNREFUSED ::1:8443", {
      code: "ECONNREFUSED",
      syscall: "connect",
      address: "::1",
      port: 8443,
    });
    assert.equal(dialError(refused, target), "dial tcp [::1]:8443: connect: connection refused");
    const unreachable = nodeError("connect EHOSTUNREACH", { code: "EHOSTUNREACH", syscall: "connect" });
    assert.equal(dialError(unreachable, target), "dial tcp example.invalid:443: connect: no route to host");
    const odd = nodeError("connect EWHATEVER", { code: "EWHATEVER", syscall: "connect" });
    assert.equal(dialError(odd, target), "dial tcp example.invalid:443: connect: connect EWHATEVER");
  });

  it("handshakeError words what OpenSSL reports as tls.Conn.Handshake", () => {
    const socket = {
      localAddress: "127.0.0.1",
      localPort: 50000,
      remoteAddress: "127.0.0.1",
      remotePort: 443,
    } as Socket;
    const words = (message: string, code: string) => handshakeError(nodeError(message, { code }), socket);
    assert.equal(
      words("Client network socket disconnected before secure TLS connection was established", "ECONNRESET"),
      "EOF",
    );
    assert.equal(
      words("read ECONNRESET", "ECONNRESET"),
      "read tcp 127.0.0.1:50000->127.0.0.1:443: read: connection reset by peer",
    );
    assert.equal(
      words("write EPIPE", "EPIPE"),
      "write tcp 127.0.0.1:50000->127.0.0.1:443: write: broken pipe",
    );
    assert.equal(
      words("wrong version number", "ERR_SSL_WRONG_VERSION_NUMBER"),
      "tls: first record does not look like a TLS handshake",
    );
    assert.equal(
      words("tlsv1 alert unknown ca", "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"),
      "remote error: tls: unknown certificate authority",
    );
    assert.equal(
      words("sslv3 alert handshake failure", "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE"),
      "remote error: tls: handshake failure",
    );
    assert.equal(
      words(
        "C0D7:error:0A000102:SSL routines:ssl_choose_client_version:unsupported protocol:ssl/statem/statem_lib.c:1:",
        "ERR_SSL_UNSUPPORTED_PROTOCOL",
      ),
      "tls: unsupported protocol",
    );
  });

  it("chainError has Go's words for the codes Go has them for", () => {
    for (const code of ["UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "DEPTH_ZERO_SELF_SIGNED_CERT"]) {
      assert.equal(chainError(code), "x509: certificate signed by unknown authority");
    }
    assert.equal(chainError("CERT_HAS_EXPIRED"), "x509: certificate has expired or is not yet valid");
    assert.equal(chainError("INVALID_PURPOSE"), "x509: certificate specifies an incompatible key usage");
    assert.equal(chainError("CERT_REVOKED"), undefined);
  });

  it("validityError names the current time and the bound it is outside", () => {
    const cert = {
      validFromDate: new Date("2026-01-01T00:00:00Z"),
      validToDate: new Date("2027-01-01T00:00:00Z"),
    } as X509Certificate;
    assert.equal(validityError(cert, Date.parse("2026-06-01T00:00:00Z")), undefined);
    assert.equal(
      validityError(cert, Date.parse("2025-12-31T23:59:59.5Z")),
      "x509: certificate has expired or is not yet valid: current time 2025-12-31T23:59:59Z is before 2026-01-01T00:00:00Z",
    );
    assert.equal(
      validityError(cert, Date.parse("2027-01-02T00:00:00Z")),
      "x509: certificate has expired or is not yet valid: current time 2027-01-02T00:00:00Z is after 2027-01-01T00:00:00Z",
    );
  });

  it("verifyHostname matches wildcards one label deep, case-insensitively, and IPs canonically", async () => {
    const { certPEM } = await (await testCA()).issue({
      cn: "x",
      dnsNames: ["*.Example.com", "exact.test"],
      ips: ["0:0:0:0:0:0:0:1", "192.0.2.1"],
    });
    const cert = new X509Certificate(certPEM);
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

  it("goTransportError words an HTTPS request's failure as net/http", () => {
    const failed = (cause: NodeError) => new HTTPSError("https://127.0.0.1:1/", cause.message, { cause });
    assert.equal(
      goTransportError(
        failed(
          nodeError("connect ECONNREFUSED 127.0.0.1:1", {
            code: "ECONNREFUSED",
            address: "127.0.0.1",
            port: 1,
          }),
        ),
      ),
      "dial tcp 127.0.0.1:1: connect: connection refused",
    );
    assert.equal(
      goTransportError(failed(nodeError("self-signed certificate", { code: "DEPTH_ZERO_SELF_SIGNED_CERT" }))),
      "tls: failed to verify certificate: x509: certificate signed by unknown authority",
    );
    assert.equal(
      goTransportError(failed(nodeError("certificate has expired", { code: "CERT_HAS_EXPIRED" }))),
      "tls: failed to verify certificate: x509: certificate has expired or is not yet valid",
    );
    assert.equal(
      goTransportError(
        new HTTPSError("https://127.0.0.1:1/", "request to https://127.0.0.1:1/ timed out after 100 ms"),
      ),
      "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
    );
  });

  it("goTransportError keeps Node's words for failures without a Go equivalent here", () => {
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
