import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { generateKey, keyPEM, selfSignedCertificate } from "../../certs/testing.ts";
import { decideSecretSigner, type SecretSource } from "./decide.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");
const source: SecretSource = {
  namespace: "openshift-kube-controller-manager-operator",
  name: "csr-signer",
  certificateKey: "tls.crt",
  privateKeyKey: "tls.key",
};
const other: SecretSource = {
  namespace: "ns",
  name: "backup",
  certificateKey: "ca.crt",
  privateKeyKey: "ca.key",
};

let caPEM: string;
let caKey: string;
let otherPEM: string;
let otherKey: string;
let leafPEM: string;
before(async () => {
  const key = generateKey("ec-p256");
  caPEM = await selfSignedCertificate(key, { commonName: "csr-signer" });
  caKey = keyPEM(key, "sec1");
  const second = generateKey("rsa-2048");
  otherPEM = await selfSignedCertificate(second, { commonName: "backup" });
  otherKey = keyPEM(second, "pkcs1");
  leafPEM = await selfSignedCertificate(key, { commonName: "not a CA", isCA: false });
});

const trusting = (...pems: string[]) => ({ data: { "client-ca-file": pems.join("") } });
const secret = (cert: string, key: string, keys = { cert: "tls.crt", key: "tls.key" }) => ({
  data: { [keys.cert]: b64(cert), [keys.key]: b64(key) },
});

describe("decideSecretSigner", () => {
  it("loads a CA that kube-apiserver trusts for client certificates", () => {
    const result = decideSecretSigner([source], () => secret(caPEM, caKey), trusting(otherPEM, caPEM));
    assert.ok(result.ok);
    assert.equal(result.ca.certPEM, caPEM);
    assert.equal(result.source, source);
  });

  it("takes the first Secret that works, with its own data keys", () => {
    const secrets = new Map([[other, secret(otherPEM, otherKey, { cert: "ca.crt", key: "ca.key" })]]);
    const result = decideSecretSigner([source, other], (s) => secrets.get(s), trusting(otherPEM));
    assert.ok(result.ok);
    assert.equal(result.source, other);
  });

  it("says why no Secret can sign, each in order", () => {
    const fail = (
      secretOf: (s: SecretSource) => object | undefined,
      authentication: { data: Record<string, string> } = trusting(caPEM),
    ) => {
      const result = decideSecretSigner([source], secretOf, authentication);
      assert.ok(!result.ok);
      return result.message;
    };
    const where = "Secret openshift-kube-controller-manager-operator/csr-signer";
    assert.equal(
      fail(() => undefined),
      `${where} not found`,
    );
    assert.equal(
      fail(() => ({ data: {} })),
      `${where} has no "tls.crt" or "tls.key" key`,
    );
    assert.equal(
      fail(() => ({ data: { "tls.crt": b64(caPEM) } })),
      `${where} has no "tls.key" key`,
    );
    assert.equal(
      fail(() => secret(leafPEM, caKey)),
      `${where}: invalid CA certificate: passed in key pair is not a CA`,
    );
    assert.equal(
      fail(() => secret(caPEM, otherKey)),
      `${where}: could not load CA: tls: private key does not match public key`,
    );
    assert.equal(
      fail(() => secret(otherPEM, otherKey)),
      `${where}: kube-apiserver does not trust its CA (subject "CN=backup") for client certificates: ` +
        "it is not in the client-ca-file of kube-system/extension-apiserver-authentication",
    );
    assert.deepEqual(
      decideSecretSigner([source], () => secret(caPEM, caKey), undefined),
      {
        ok: false,
        message: `${where}: cannot tell whether kube-apiserver trusts it: ConfigMap kube-system/extension-apiserver-authentication not found`,
      },
    );
    assert.equal(
      fail(() => secret(caPEM, caKey), { data: {} }),
      `${where}: cannot tell whether kube-apiserver trusts it: ConfigMap kube-system/extension-apiserver-authentication has no client-ca-file`,
    );
    const both = decideSecretSigner([source, other], () => undefined, trusting(caPEM));
    assert.deepEqual(both, { ok: false, message: `${where} not found; Secret ns/backup not found` });
    assert.deepEqual(
      decideSecretSigner([], () => undefined, trusting(caPEM)),
      {
        ok: false,
        message: "no Secrets are configured",
      },
    );
  });

  it("never puts key material in a message", () => {
    const result = decideSecretSigner(
      [source],
      () => secret(caPEM, "-----BEGIN EC PRIVATE KEY-----\nsecretstuff\n-----END EC PRIVATE KEY-----\n"),
      trusting(caPEM),
    );
    assert.ok(!result.ok);
    assert.doesNotMatch(result.message, /secretstuff/);
  });
});
