import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CertificateAuthority } from "./ca.ts";
import { createSigningRequest, signingRequestPublicKey } from "./csr.ts";
import { issueClientCertificateForKey } from "./issue.ts";
import { openssl } from "./testing.ts";

const dir = mkdtempSync(join(tmpdir(), "csr-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("createSigningRequest", () => {
  it("writes a request openssl verifies, for the user and groups, with a P-256 key", async () => {
    const { csrPEM, keyPEM } = await createSigningRequest({ username: "jane", groups: ["devs", "admins"] });
    writeFileSync(join(dir, "req.pem"), csrPEM);
    const out = openssl(dir, "req", "-in", "req.pem", "-noout", "-verify", "-subject", "-nameopt", "RFC2253");
    assert.match(out, /^subject=CN=jane,O=admins\+O=devs$/m);
    const text = openssl(dir, "req", "-in", "req.pem", "-noout", "-text");
    assert.match(text, /NIST CURVE: P-256|prime256v1/);
    assert.match(keyPEM, /^-----BEGIN PRIVATE KEY-----\n/);
  });
});

describe("signingRequestPublicKey", () => {
  const request = (name: string, keyArgs: string[]) => {
    openssl(dir, ...keyArgs, "-out", `${name}.key`);
    openssl(
      dir,
      "req",
      "-new",
      "-key",
      `${name}.key`,
      "-subj",
      "/CN=whatever-the-client-says/O=system:masters",
      "-out",
      `${name}.csr`,
    );
    return readFileSync(join(dir, `${name}.csr`), "utf8");
  };

  it("takes the key of a request signed with it: P-256, P-384, Ed25519, RSA-2048", () => {
    for (const [name, args] of [
      ["p256", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]],
      ["p384", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]],
      ["ed25519", ["genpkey", "-algorithm", "ED25519"]],
      ["rsa2048", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]],
    ] as const) {
      const spki = signingRequestPublicKey(request(name, [...args]));
      const expected = createPublicKey(readFileSync(join(dir, `${name}.key`))).export({
        type: "spki",
        format: "der",
      });
      assert.ok(spki.equals(expected), name);
    }
  });

  it("refuses weak keys, other curves, a broken signature and what is not a request", () => {
    assert.throws(
      () =>
        signingRequestPublicKey(
          request("rsa1024", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]),
        ),
      /^Error: RSA keys must have at least 2048 bits, not 1024$/,
    );
    assert.throws(
      () =>
        signingRequestPublicKey(
          request("p521", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"]),
        ),
      /^Error: unsupported EC curve secp521r1: use P-256 or P-384$/,
    );
    const good = request("tamper", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ""), "base64");
    // Flip a bit inside the subject: the signature no longer covers what is there.
    der[40] = (der[40] ?? 0) ^ 1;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    assert.throws(
      () => signingRequestPublicKey(tampered),
      /signature does not verify|malformed|cannot be read/,
    );
    // The good one is remembered once accepted; the tampered one is refused every time.
    assert.deepEqual(signingRequestPublicKey(good), signingRequestPublicKey(good));
    assert.throws(
      () => signingRequestPublicKey(tampered),
      /signature does not verify|malformed|cannot be read/,
    );
    assert.throws(() => signingRequestPublicKey("hello"), /^Error: not a PEM CERTIFICATE REQUEST$/);
    assert.throws(
      () =>
        signingRequestPublicKey(
          "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
        ),
      /^Error: malformed certificate request/,
    );
  });

  it("lets a CA issue for the client's key, with the user as the subject whatever the request said", async () => {
    const csr = request("issue", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    const ca = await CertificateAuthority.create("test CA", 3_600_000);
    const issued = await issueClientCertificateForKey(
      ca,
      { username: "jane", groups: ["devs"] },
      signingRequestPublicKey(csr),
      60_000,
    );
    const cert = new X509Certificate(issued.certPEM);
    assert.equal(cert.subject, "O=devs\nCN=jane");
    assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, "issue.key")))));
    assert.ok(cert.checkIssued(ca.certificate));
    assert.equal("keyPEM" in issued, false);
  });
});
