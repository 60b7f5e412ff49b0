import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseConfig } from "./config.ts";

const env = { env: {}, readNamespaceFile: () => "concierge-ns" };

describe("config: strategies", () => {
  it("runs upstream's strategies only, in upstream's order, without the key", () => {
    const { strategies } = parseConfig("", env);
    assert.equal(strategies.secretSigningCertificate, undefined);
    assert.equal(strategies.certificateSigningRequestAPI, undefined);
    assert.deepEqual(strategies.order, [
      "KubeClusterSigningCertificate",
      "SecretSigningCertificate",
      "CertificateSigningRequestAPI",
      "JWTCredential",
      "ImpersonationProxy",
    ]);
  });

  it("completes the JWT issuer's settings, keeping the issuer URL exactly as written", () => {
    const { strategies } = parseConfig(
      "strategies:\n  jwtCredential: {issuer: 'https://concierge.example.com/jwt/', audience: kubernetes}\n",
      env,
    );
    assert.deepEqual(strategies.jwtCredential, {
      issuer: "https://concierge.example.com/jwt/",
      audience: "kubernetes",
      probeIntervalSeconds: 60,
    });
  });

  it("completes the Secrets' data keys and the probe interval, and keeps the order given", () => {
    const { strategies } = parseConfig(
      [
        "strategies:",
        "  order: [CertificateSigningRequestAPI, SecretSigningCertificate]",
        "  secretSigningCertificate:",
        "    secrets:",
        "    - {namespace: openshift-kube-controller-manager-operator, name: csr-signer}",
        "    - {namespace: ns, name: other, certificateKey: ca.crt, privateKeyKey: ca.key}",
        "  certificateSigningRequestAPI: {}",
      ].join("\n"),
      env,
    );
    assert.deepEqual(strategies, {
      order: ["CertificateSigningRequestAPI", "SecretSigningCertificate"],
      secretSigningCertificate: {
        secrets: [
          {
            namespace: "openshift-kube-controller-manager-operator",
            name: "csr-signer",
            certificateKey: "tls.crt",
            privateKeyKey: "tls.key",
          },
          { namespace: "ns", name: "other", certificateKey: "ca.crt", privateKeyKey: "ca.key" },
        ],
      },
      certificateSigningRequestAPI: { probeIntervalSeconds: 300 },
    });
  });

  it("names the key of a mistake", () => {
    const error = (text: string) => {
      try {
        parseConfig(text, env);
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.message;
      }
      assert.fail("accepted");
    };
    assert.match(
      error("strategies: {order: [Jwt]}"),
      /strategies\.order\.0: must be equal to one of the allowed values/,
    );
    assert.match(
      error("strategies: {secretSigningCertificate: {secrets: []}}"),
      /strategies\.secretSigningCertificate\.secrets: must NOT have fewer than 1 items/,
    );
    assert.match(
      error("strategies: {secretSigningCertificate: {secrets: [{name: x}]}}"),
      /must have required property 'namespace'/,
    );
    assert.match(
      error("strategies: {certificateSigningRequestAPI: {probeIntervalSeconds: 1}}"),
      /must be >= 10/,
    );
    assert.match(
      error("strategies: {jwtCredential: {issuer: 'http://x', audience: a}}"),
      /strategies\.jwtCredential\.issuer: must match pattern/,
    );
    assert.match(
      error("strategies: {jwtCredential: {issuer: 'https://x'}}"),
      /must have required property 'audience'/,
    );
  });
});
