import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CertificateAuthority } from "../certs/ca.ts";
import { ClientCAError, clientCAFromConfigMap } from "./clientca.ts";

describe("clientCAFromConfigMap", () => {
  it("returns the client-ca-file bundle", async () => {
    const a = await CertificateAuthority.create("a", 60_000);
    const b = await CertificateAuthority.create("b", 60_000);
    const pem = a.certPEM + b.certPEM;
    assert.equal(clientCAFromConfigMap({ data: { "client-ca-file": pem, other: "x" } }), pem);
  });

  it("refuses a missing, empty or broken bundle", () => {
    const bundles: (Record<string, string> | undefined)[] = [
      undefined,
      {},
      { "client-ca-file": " \n" },
      { "client-ca-file": "junk" },
    ];
    for (const data of bundles) {
      assert.throws(() => clientCAFromConfigMap(data ? { data } : {}), ClientCAError);
    }
    assert.throws(
      () =>
        clientCAFromConfigMap({
          data: { "client-ca-file": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" },
        }),
      /holds an invalid certificate/,
    );
    assert.throws(() => clientCAFromConfigMap({}), {
      message: "ConfigMap kube-system/extension-apiserver-authentication has no client-ca-file",
    });
  });
});
