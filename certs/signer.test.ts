import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { CertificateAuthority } from "./ca.ts";
import { SignerHolder } from "./signer.ts";

let kubeCA: CertificateAuthority;
let proxyCA: CertificateAuthority;
before(async () => {
  kubeCA = await CertificateAuthority.create("kube cluster CA", 3_600_000);
  proxyCA = await CertificateAuthority.create("impersonation proxy CA", 3_600_000);
});

describe("SignerHolder", () => {
  it("holds a CA, tells listeners about each change, and stops after unsubscribe", () => {
    const holder = new SignerHolder("kube cluster signing CA");
    const seen: Array<string | undefined> = [];
    const unsubscribe = holder.onChange((ca) => seen.push(ca?.certificate.subject));
    assert.equal(holder.get(), undefined);
    holder.set(kubeCA);
    holder.set(kubeCA);
    assert.equal(holder.get(), kubeCA);
    holder.set(undefined);
    unsubscribe();
    holder.set(proxyCA);
    assert.deepEqual(seen, ["CN=kube cluster CA", undefined]);
    assert.equal(holder.get(), proxyCA);
  });
});
