import assert from "node:assert/strict";
import { afterEach, before, describe, it } from "node:test";
import { SignerHolder } from "../../certs/signer.ts";
import { generateKey, keyPEM, selfSignedCertificate } from "../../certs/testing.ts";
import { settle } from "../../kube/clock.ts";
import type { KubeObject } from "../../kube/resource.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { StrategyHolder } from "../credentialissuer/holder.ts";
import { Controller } from "../runtime/controller.ts";
import { FakeInformer } from "../runtime/testing.ts";
import type { SecretSource } from "./decide.ts";
import { secretSignerController } from "./reconciler.ts";

type Obj = KubeObject & { data?: Record<string, string> };
const b64 = (s: string) => Buffer.from(s).toString("base64");
const source: SecretSource = {
  namespace: "signers",
  name: "csr-signer",
  certificateKey: "tls.crt",
  privateKeyKey: "tls.key",
};
const authenticationName = { namespace: "kube-system", name: "extension-apiserver-authentication" };
const clusterInfo: Obj = {
  metadata: { namespace: "kube-public", name: "cluster-info" },
  data: {
    kubeconfig:
      "apiVersion: v1\nkind: Config\nclusters:\n- name: ''\n  cluster:\n    certificate-authority-data: Y2E=\n    server: https://k8s.example.com\n",
  },
};

let first: { cert: string; key: string };
let second: { cert: string; key: string };
before(async () => {
  const a = generateKey("ec-p256");
  const b = generateKey("ec-p256");
  first = { cert: await selfSignedCertificate(a, { commonName: "first" }), key: keyPEM(a, "sec1") };
  second = { cert: await selfSignedCertificate(b, { commonName: "second" }), key: keyPEM(b, "pkcs8") };
});

const stops: AbortController[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop.abort();
  await settle();
});

function fixture(trusted: string[]) {
  const secrets = new FakeInformer<Obj>();
  const authentication = new FakeInformer<Obj>({
    objects: [{ metadata: authenticationName, data: { "client-ca-file": trusted.join("") } }],
  });
  const configMaps = new FakeInformer<Obj>({ objects: [clusterInfo] });
  const signer = new SignerHolder("Secret signing CA");
  const strategies = new StrategyHolder();
  const { log, lines } = memoryLogger();
  const controller = secretSignerController(
    {
      secrets: [secrets],
      authentication,
      authenticationName,
      clusterInfo: configMaps,
      controller: (o) => new Controller({ ...o, log }),
    },
    { sources: [source], strategyHolder: strategies, signerHolder: signer },
  );
  const stop = new AbortController();
  stops.push(stop);
  void controller.run(stop.signal);
  const put = (pair: { cert: string; key: string }) =>
    secrets.upsert({
      metadata: { ...source },
      data: { "tls.crt": b64(pair.cert), "tls.key": b64(pair.key) },
    });
  return { secrets, authentication, signer, strategies, put, lines, idle: () => settle(20) };
}

describe("secret-signer reconciler", () => {
  it("loads the Secret's CA, reloads it when the Secret changes, and unloads it when it goes", async () => {
    const f = fixture([first.cert, second.cert]);
    await f.idle();
    assert.equal(f.signer.get(), undefined);
    assert.deepEqual(f.strategies.get(), [
      {
        type: "SecretSigningCertificate",
        status: "Error",
        reason: "CouldNotFetchKey",
        message: "Secret signers/csr-signer not found",
      },
    ]);

    f.put(first);
    await f.idle();
    assert.equal(f.signer.get()?.certPEM, first.cert);
    assert.deepEqual(f.strategies.get(), [
      {
        type: "SecretSigningCertificate",
        status: "Success",
        reason: "FetchedKey",
        message: "key was loaded from Secret signers/csr-signer",
        frontend: {
          type: "TokenCredentialRequestAPI",
          tokenCredentialRequestInfo: { server: "https://k8s.example.com", certificateAuthorityData: "Y2E=" },
        },
      },
    ]);

    f.put(second);
    await f.idle();
    assert.equal(f.signer.get()?.certPEM, second.cert);

    f.secrets.remove(source.name, source.namespace);
    await f.idle();
    assert.equal(f.signer.get(), undefined);
    assert.equal(f.strategies.get()[0]?.status, "Error");
    assert.ok(f.lines.some((l) => l.message === "unloading the Secret's signing CA"));
  });

  it("refuses a CA that kube-apiserver stops trusting", async () => {
    const f = fixture([first.cert]);
    f.put(first);
    await f.idle();
    assert.ok(f.signer.get());
    f.authentication.upsert({ metadata: authenticationName, data: { "client-ca-file": second.cert } });
    await f.idle();
    assert.equal(f.signer.get(), undefined);
    assert.match(
      f.strategies.get()[0]?.message ?? "",
      /kube-apiserver does not trust its CA \(subject "CN=first"\)/,
    );
  });
});
