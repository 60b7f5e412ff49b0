import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { type CABundleLookups, resolveCABundle } from "./cabundle.ts";

const caPEM = readFileSync(new URL("testdata/ca.pem", import.meta.url), "utf8");
const b64 = (s: string) => Buffer.from(s).toString("base64");

const secrets: Record<string, { type: string; data: Record<string, string> }> = {
  "concierge/ca-tls": { type: "kubernetes.io/tls", data: { "ca.crt": b64(caPEM) } },
  "concierge/ca-opaque": { type: "Opaque", data: { bundle: b64(caPEM), empty: "", junk: b64("not a cert") } },
  "concierge/sa-token": { type: "kubernetes.io/service-account-token", data: { "ca.crt": b64(caPEM) } },
};
const configMaps: Record<string, { data: Record<string, string> }> = {
  "concierge/ca-cm": { data: { "ca.crt": caPEM, empty: "", junk: "garbage" } },
};
const lookups: CABundleLookups = {
  secret: (ns, name) => secrets[`${ns}/${name}`],
  configMap: (ns, name) => configMaps[`${ns}/${name}`],
};

function resolve(tls: Parameters<typeof resolveCABundle>[0]) {
  return resolveCABundle(tls, "spec.tls", "concierge", lookups);
}

describe("resolveCABundle (upstream TLSConfigurationValid)", () => {
  const noTLS =
    "spec.tls is valid: no TLS configuration provided: using default root CA bundle from container image";
  const cases: [string, Parameters<typeof resolveCABundle>[0], "True" | "False", string][] = [
    ["no tls", undefined, "True", noTLS],
    ["empty tls", {}, "True", noTLS],
    ["empty data", { certificateAuthorityData: "" }, "True", noTLS],
    [
      "inline bundle",
      { certificateAuthorityData: b64(caPEM) },
      "True",
      "spec.tls is valid: using configured CA bundle",
    ],
    [
      "both set",
      {
        certificateAuthorityData: b64(caPEM),
        certificateAuthorityDataSource: { kind: "Secret", name: "ca-tls", key: "ca.crt" },
      },
      "False",
      "spec.tls is invalid: both tls.certificateAuthorityDataSource and tls.certificateAuthorityData provided",
    ],
    [
      "bad base64",
      { certificateAuthorityData: "this is not base64!" },
      "False",
      "spec.tls.certificateAuthorityData is invalid: illegal base64 data at input byte 4",
    ],
    [
      "base64 but not PEM",
      { certificateAuthorityData: b64("hello") },
      "False",
      'spec.tls.certificateAuthorityData is invalid: no base64-encoded PEM certificates found in 8 bytes of data (PEM certificates must begin with "-----BEGIN CERTIFICATE-----")',
    ],
    [
      "TLS secret",
      { certificateAuthorityDataSource: { kind: "Secret", name: "ca-tls", key: "ca.crt" } },
      "True",
      "spec.tls is valid: using configured CA bundle",
    ],
    [
      "Opaque secret",
      { certificateAuthorityDataSource: { kind: "Secret", name: "ca-opaque", key: "bundle" } },
      "True",
      "spec.tls is valid: using configured CA bundle",
    ],
    [
      "ConfigMap",
      { certificateAuthorityDataSource: { kind: "ConfigMap", name: "ca-cm", key: "ca.crt" } },
      "True",
      "spec.tls is valid: using configured CA bundle",
    ],
    [
      "missing secret",
      { certificateAuthorityDataSource: { kind: "Secret", name: "nope", key: "ca.crt" } },
      "False",
      'spec.tls.certificateAuthorityDataSource is invalid: failed to get secret "concierge/nope": secret "nope" not found',
    ],
    [
      "missing configmap",
      { certificateAuthorityDataSource: { kind: "ConfigMap", name: "nope", key: "ca.crt" } },
      "False",
      'spec.tls.certificateAuthorityDataSource is invalid: failed to get configmap "concierge/nope": configmap "nope" not found',
    ],
    [
      "wrong secret type",
      { certificateAuthorityDataSource: { kind: "Secret", name: "sa-token", key: "ca.crt" } },
      "False",
      'spec.tls.certificateAuthorityDataSource is invalid: secret "concierge/sa-token" of type "kubernetes.io/service-account-token" cannot be used as a certificate authority data source',
    ],
    [
      "missing key",
      { certificateAuthorityDataSource: { kind: "Secret", name: "ca-opaque", key: "nokey" } },
      "False",
      'spec.tls.certificateAuthorityDataSource is invalid: key "nokey" not found in secret "concierge/ca-opaque"',
    ],
    [
      "empty key",
      { certificateAuthorityDataSource: { kind: "ConfigMap", name: "ca-cm", key: "empty" } },
      "False",
      'spec.tls.certificateAuthorityDataSource is invalid: key "empty" has empty value in configmap "concierge/ca-cm"',
    ],
    [
      "not PEM in secret",
      { certificateAuthorityDataSource: { kind: "Secret", name: "ca-opaque", key: "junk" } },
      "False",
      'spec.tls.certificateAuthorityDataSource is invalid: key "junk" with 10 bytes of data in secret "concierge/ca-opaque" is not a PEM-encoded certificate (PEM certificates must begin with "-----BEGIN CERTIFICATE-----")',
    ],
  ];
  for (const [name, tls, status, message] of cases) {
    it(name, () => {
      const got = resolve(tls);
      assert.equal(got.condition.status, status);
      assert.equal(got.condition.reason, status === "True" ? "Success" : "InvalidTLSConfig");
      assert.equal(got.condition.message, message);
      assert.equal(got.bundle !== undefined, message.endsWith("using configured CA bundle"));
    });
  }

  it("keeps only certificates in the bundle and hashes what was configured", () => {
    const got = resolve({ certificateAuthorityData: b64(`junk\n${caPEM}`) });
    assert.equal(got.bundle?.pem.trim(), caPEM.trim());
    const again = resolve({
      certificateAuthorityDataSource: { kind: "ConfigMap", name: "ca-cm", key: "ca.crt" },
    });
    assert.match(again.bundle?.sha256 ?? "", /^[0-9a-f]{64}$/);
    assert.notEqual(again.bundle?.sha256, got.bundle?.sha256);
  });
});
