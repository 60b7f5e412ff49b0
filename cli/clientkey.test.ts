import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { describe, it } from "node:test";
import { CertificateAuthority } from "../certs/ca.ts";
import { signingRequestPublicKey } from "../certs/csr.ts";
import { issueClientCertificate, issueClientCertificateForKey } from "../certs/issue.ts";
import { certifiesKey, newClientKey } from "./clientkey.ts";

describe("client-held keys", () => {
  it("makes a P-256 key and a request the Concierge's check accepts, with the public key only", () => {
    const { keyPEM, csrPEM } = newClientKey();
    const key = createPrivateKey(keyPEM);
    assert.equal(key.asymmetricKeyType, "ec");
    assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.match(keyPEM, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(
      csrPEM,
      /^-----BEGIN CERTIFICATE REQUEST-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE REQUEST-----\n$/,
    );
    const spki = signingRequestPublicKey(csrPEM);
    assert.deepEqual(spki, createPublicKey(key).export({ type: "spki", format: "der" }));
    assert.doesNotMatch(csrPEM, /PRIVATE/);
  });

  it("writes a request openssl verifies", () => {
    const { csrPEM } = newClientKey();
    const out = execFileSync("openssl", ["req", "-verify", "-noout"], { input: csrPEM, stdio: "pipe" });
    assert.equal(out.toString(), "");
  });

  it("tells a certificate for its key from one for another", async () => {
    const ca = await CertificateAuthority.create("test CA", 3_600_000);
    const user = { username: "pinny", groups: [] };
    const { keyPEM, csrPEM } = newClientKey();
    const mine = await issueClientCertificateForKey(ca, user, signingRequestPublicKey(csrPEM), 60_000);
    const other = await issueClientCertificate(ca, user, 60_000);
    assert.equal(certifiesKey(mine.certPEM, keyPEM), true);
    assert.equal(certifiesKey(other.certPEM, keyPEM), false);
    assert.equal(certifiesKey("not a certificate", keyPEM), false);
  });
});
