import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { inspect } from "node:util";
import { CertificateAuthority, InvalidCACertificateError, keyIdOf } from "./ca.ts";
import type { CertEnv } from "./env.ts";
import { generateKey, keyPEM, openssl, opensslCA, selfSignedCertificate } from "./testing.ts";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "certs-ca-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The base64 body of a PEM key, which must never appear in an error or a log line. */
const keyBody = (pem: string) => pem.split("\n")[3] ?? "";

describe("CertificateAuthority.load", () => {
  it("accepts openssl-made CAs with RSA PKCS#1 and EC SEC1 keys, keeping the raw subject", () => {
    for (const kind of ["rsa", "ec"] as const) {
      const { certPEM, keyPEM: pem } = opensslCA(dir, kind, "/O=Acme, Inc./CN=cluster-ca");
      assert.match(
        pem,
        kind === "rsa" ? /^-----BEGIN RSA PRIVATE KEY-----/ : /^-----BEGIN EC PRIVATE KEY-----/,
      );
      const ca = CertificateAuthority.load(certPEM, pem);
      assert.equal(ca.certificate.subject, "O=Acme\\, Inc.\nCN=cluster-ca");
      assert.ok(ca.subjectKeyId && ca.subjectKeyId.length === 20);
      assert.equal(ca.scheme.hash, "sha256");
      // The subject bytes are the certificate's own: they sit inside its DER.
      assert.ok(ca.certificate.raw.includes(ca.subjectDER));
      assert.equal(ca.subjectDER[0], 0x30);
    }
  });

  it("accepts PKCS#8 keys of both types and picks Go's signature hash per curve", async () => {
    const cases = [
      ["rsa-2048", "sha256"],
      ["ec-p256", "sha256"],
      ["ec-p384", "sha384"],
      ["ec-p521", "sha512"],
      ["ed25519", null],
    ] as const;
    for (const [type, hash] of cases) {
      const key = generateKey(type);
      const ca = CertificateAuthority.load(await selfSignedCertificate(key), keyPEM(key, "pkcs8"));
      assert.equal(ca.scheme.hash, hash, type);
    }
  });

  it("refuses a certificate that is not a CA, with upstream's message", async () => {
    const key = generateKey("ec-p256");
    const cert = await selfSignedCertificate(key, { isCA: false });
    assert.throws(() => CertificateAuthority.load(cert, keyPEM(key, "sec1")), {
      name: "InvalidCACertificateError",
      message: "invalid CA certificate: passed in key pair is not a CA",
    });
  });

  it("refuses more than one certificate", async () => {
    const key = generateKey("ec-p256");
    const cert = await selfSignedCertificate(key);
    const other = await selfSignedCertificate(generateKey("ec-p256"));
    assert.throws(
      () => CertificateAuthority.load(cert + other, keyPEM(key, "sec1")),
      (error) =>
        error instanceof InvalidCACertificateError &&
        error.message === "invalid CA certificate: expected a single certificate, found 2 certificates",
    );
  });

  it("refuses a key that does not match, garbage, and missing PEM, without echoing key material", async () => {
    const key = generateKey("rsa-2048");
    const cert = await selfSignedCertificate(key);
    const wrong = keyPEM(generateKey("rsa-2048"), "pkcs1");
    const garbage = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
    const cases: Array<[string, string, string]> = [
      [cert, wrong, "could not load CA: tls: private key does not match public key"],
      [cert, garbage, "could not load CA: tls: failed to parse private key"],
      ["", keyPEM(key, "pkcs1"), "could not load CA: tls: failed to find any PEM data in certificate input"],
      [cert, "", "could not load CA: tls: failed to find any PEM data in key input"],
      [
        keyPEM(key, "pkcs1"),
        cert,
        "could not load CA: tls: failed to find any PEM data in certificate input",
      ],
    ];
    for (const [certPEM, pem, message] of cases) {
      assert.throws(
        () => CertificateAuthority.load(certPEM, pem),
        (error: Error) => {
          assert.equal(error.message, message);
          assert.ok(!error.message.includes(keyBody(wrong)));
          return true;
        },
      );
    }
  });

  it("never shows its private key when inspected or serialised", async () => {
    const key = generateKey("ec-p256");
    const pem = keyPEM(key, "sec1");
    const ca = CertificateAuthority.load(await selfSignedCertificate(key), pem);
    assert.ok(!inspect(ca, { depth: 10, showHidden: true }).includes(keyBody(pem)));
    assert.ok(!JSON.stringify(ca).includes(keyBody(pem)));
    assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(ca))), ["subject", "validTo"]);
  });
});

describe("CertificateAuthority.create", () => {
  const now = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
  const env: CertEnv = { now: () => now, randomBytes: (n) => Buffer.alloc(n, 0x42) };

  it("makes upstream's self-signed P-256 CA, backdated 5 minutes (golden against openssl)", async () => {
    const ca = await CertificateAuthority.create("Pinniped Aggregation CA", 3_600_000, env);
    const keyPEMText = ca.privateKeyPEM();
    assert.match(keyPEMText, /^-----BEGIN EC PRIVATE KEY-----\n/);
    writeFileSync(join(dir, "created-ca.pem"), ca.certPEM);
    const text = openssl(dir, "x509", "-in", "created-ca.pem", "-noout", "-text");
    const expected = [
      "Version: 3 (0x2)",
      "42:42:42:42:42:42:42:42:42:42:42:42:42:42:42:42",
      "Signature Algorithm: ecdsa-with-SHA256",
      "Issuer: CN = Pinniped Aggregation CA",
      "Not Before: Jan  2 02:59:05 2026 GMT",
      "Not After : Jan  2 04:04:05 2026 GMT",
      "Subject: CN = Pinniped Aggregation CA",
      "Public Key Algorithm: id-ecPublicKey",
      "NIST CURVE: P-256",
      "X509v3 Key Usage: critical\n                Digital Signature, Certificate Sign",
      "X509v3 Extended Key Usage: \n                TLS Web Client Authentication, TLS Web Server Authentication",
      "X509v3 Basic Constraints: critical\n                CA:TRUE\n",
      "X509v3 Subject Key Identifier: ",
    ];
    for (const line of expected)
      assert.ok(text.includes(line), `missing ${JSON.stringify(line)} in\n${text}`);
    assert.ok(!text.includes("Authority Key Identifier"), "Go writes no AKI on a self-signed CA");
    const ski = createPublicKey(createPrivateKey(keyPEMText)).export({ type: "spki", format: "der" });
    assert.deepEqual(ca.subjectKeyId, keyIdOf(ski));
    assert.ok(ca.certificate.verify(ca.certificate.publicKey));
    assert.ok(ca.certificate.ca);
    // Self-signed and valid at its own "now", by openssl's own chain builder.
    const at = String(Math.floor(now / 1000));
    assert.match(
      openssl(dir, "verify", "-attime", at, "-CAfile", "created-ca.pem", "created-ca.pem"),
      /: OK/,
    );
    // What it writes to the Secret loads back.
    const loaded = CertificateAuthority.load(ca.certPEM, keyPEMText);
    assert.deepEqual(loaded.subjectDER, ca.subjectDER);
  });
});
