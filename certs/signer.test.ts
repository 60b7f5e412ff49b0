import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import { CertificateAuthority } from "./ca.ts";
import { issueClientCertificateFrom, NoSignerError, SignerHolder } from "./signer.ts";

let kubeCA: CertificateAuthority;
let proxyCA: CertificateAuthority;
before(async () => {
  kubeCA = await CertificateAuthority.create("kube cluster CA", 3_600_000);
  proxyCA = await CertificateAuthority.create("impersonation proxy CA", 3_600_000);
});

const identity = { username: "jane", groups: ["devs"] };

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

describe("issueClientCertificateFrom", () => {
  it("uses the first holder with a CA, falling back in order", async () => {
    const kube = new SignerHolder("kube cluster signing CA");
    const proxy = new SignerHolder("impersonation proxy signer CA");
    proxy.set(proxyCA);
    const fromProxy = await issueClientCertificateFrom([kube, proxy], identity);
    assert.ok(new X509Certificate(fromProxy.certPEM).checkIssued(proxyCA.certificate));
    kube.set(kubeCA);
    const fromKube = await issueClientCertificateFrom([kube, proxy], identity);
    assert.ok(new X509Certificate(fromKube.certPEM).checkIssued(kubeCA.certificate));
    assert.ok(fromKube.notAfter.getTime() - Date.now() <= 5 * 60_000);
  });

  it("falls back when a loaded signer fails", async () => {
    const broken = new SignerHolder("broken");
    // A stand-in whose signing throws, to reach the fallback without a real failing CA.
    broken.set({ ...kubeCA, signingKey: () => undefined } as unknown as CertificateAuthority);
    const proxy = new SignerHolder("proxy");
    proxy.set(proxyCA);
    const issued = await issueClientCertificateFrom([broken, proxy], identity);
    assert.ok(new X509Certificate(issued.certPEM).checkIssued(proxyCA.certificate));
  });

  it("fails with every signer's reason when none can issue", async () => {
    const kube = new SignerHolder("kube cluster signing CA");
    const proxy = new SignerHolder("impersonation proxy signer CA");
    await assert.rejects(issueClientCertificateFrom([kube, proxy], identity), {
      name: "NoSignerError",
      message:
        "[kube cluster signing CA failed to issue client cert: no CA is loaded, " +
        "impersonation proxy signer CA failed to issue client cert: no CA is loaded]",
    });
    await assert.rejects(issueClientCertificateFrom([kube], identity), {
      message: "kube cluster signing CA failed to issue client cert: no CA is loaded",
    });
    await assert.rejects(
      issueClientCertificateFrom([], identity),
      (error) =>
        error instanceof NoSignerError && error.message === "failed to issue cert: no signers configured",
    );
  });
});
