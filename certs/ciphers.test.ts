import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { getCiphers } from "node:tls";
import { defaultProfileCiphers, validateAllowedCiphers } from "./ciphers.ts";

describe("TLS 1.2 cipher suites from upstream's config", () => {
  it("takes upstream's names, its legacy ChaCha20 names too", () => {
    assert.deepEqual(
      validateAllowedCiphers([
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
      ]),
      {
        ok: true,
        names: [
          "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
          "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
          "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        ],
      },
    );
  });

  it("refuses unknown names with upstream's message, naming each and the list to pick from", () => {
    const result = validateAllowedCiphers([
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
      "TLS_RSA_WITH_AES_128_CBC_SHA",
      "ECDHE-RSA-AES128-GCM-SHA256",
      "TLS_AES_128_GCM_SHA256",
    ]);
    assert.equal(result.ok, false);
    assert.match(
      (result as { error: string }).error,
      /^unrecognized ciphers \[TLS_RSA_WITH_AES_128_CBC_SHA, ECDHE-RSA-AES128-GCM-SHA256, TLS_AES_128_GCM_SHA256\], ciphers must be from list \[TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .*TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA\]$/,
    );
  });

  it("narrows the Default profile to the allowed suites, keeping TLS 1.3's, and keeps it whole when none is shared", () => {
    const tls13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
    assert.equal(
      defaultProfileCiphers([
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
      ]),
      `${tls13}:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384`,
    );
    const all = `${tls13}:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305`;
    assert.equal(defaultProfileCiphers([]), all);
    // Upstream: only LDAP clients use the CBC suites, so a list of those leaves servers as they are.
    assert.equal(defaultProfileCiphers(["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]), all);
  });

  it("maps every name to a suite this Node's OpenSSL has", () => {
    const known = new Set(getCiphers());
    const all = defaultProfileCiphers().split(":");
    for (const suite of all.filter((s) => !s.startsWith("TLS_")))
      assert.ok(known.has(suite.toLowerCase()), suite);
  });
});
