import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import { CertificateAuthority } from "../certs/ca.ts";
import { createSigningRequest } from "../certs/csr.ts";
import { SignerHolder } from "../certs/signer.ts";
import type { Credential, IssueResult, Issuer } from "./issuer.ts";
import { LocalCAIssuer } from "./localca.ts";
import { OrderedIssuers } from "./ordered.ts";

let kubeCA: CertificateAuthority;
let proxyCA: CertificateAuthority;
before(async () => {
  kubeCA = await CertificateAuthority.create("kube cluster CA", 3_600_000);
  proxyCA = await CertificateAuthority.create("impersonation proxy CA", 3_600_000);
});

const request = { user: { username: "jane", groups: ["devs"] }, ttlSeconds: 300 };

function certificate(result: IssueResult): Extract<Credential, { type: "certificate" }> {
  assert.ok(result.ok, result.ok ? "" : result.reason);
  assert.equal(result.credential.type, "certificate");
  return result.credential as Extract<Credential, { type: "certificate" }>;
}

const issuersOf = (...holders: SignerHolder[]) =>
  new OrderedIssuers(holders.map((h) => new LocalCAIssuer(h)));

describe("OrderedIssuers of local CAs", () => {
  it("uses the first holder with a CA, falling back in order", async () => {
    const kube = new SignerHolder("kube cluster signing CA");
    const proxy = new SignerHolder("impersonation proxy signer CA");
    proxy.set(proxyCA);
    const issuers = issuersOf(kube, proxy);
    assert.equal(issuers.active()?.name, "impersonation proxy signer CA");
    const fromProxy = certificate(await issuers.issue(request));
    assert.ok(new X509Certificate(fromProxy.certificatePEM).checkIssued(proxyCA.certificate));
    kube.set(kubeCA);
    assert.equal(issuers.active()?.name, "kube cluster signing CA");
    const fromKube = certificate(await issuers.issue(request));
    assert.ok(new X509Certificate(fromKube.certificatePEM).checkIssued(kubeCA.certificate));
    assert.ok(fromKube.keyPEM);
    assert.ok(fromKube.notAfter.getTime() - Date.now() <= 5 * 60_000);
  });

  it("falls back when a loaded signer fails", async () => {
    const broken = new SignerHolder("broken");
    // A stand-in whose signing throws, to reach the fallback without a real failing CA.
    broken.set({ ...kubeCA, signingKey: () => undefined } as unknown as CertificateAuthority);
    const proxy = new SignerHolder("proxy");
    proxy.set(proxyCA);
    const issued = certificate(await issuersOf(broken, proxy).issue(request));
    assert.ok(new X509Certificate(issued.certificatePEM).checkIssued(proxyCA.certificate));
  });

  it("fails with every signer's reason when none can issue", async () => {
    const kube = new SignerHolder("kube cluster signing CA");
    const proxy = new SignerHolder("impersonation proxy signer CA");
    const none =
      "[kube cluster signing CA failed to issue client cert: no CA is loaded, " +
      "impersonation proxy signer CA failed to issue client cert: no CA is loaded]";
    assert.deepEqual(await issuersOf(kube, proxy).issue(request), { ok: false, reason: none });
    assert.deepEqual(issuersOf(kube, proxy).health(), { ok: false, reason: none });
    assert.deepEqual(await issuersOf(kube).issue(request), {
      ok: false,
      reason: "kube cluster signing CA failed to issue client cert: no CA is loaded",
    });
    assert.deepEqual(await issuersOf().issue(request), {
      ok: false,
      reason: "failed to issue cert: no signers configured",
    });
  });

  it("signs a client's CSR: the certificate alone, for the client's key and the user", async () => {
    const kube = new SignerHolder("kube cluster signing CA");
    kube.set(kubeCA);
    const { csrPEM, keyPEM } = await createSigningRequest({
      username: "mallory",
      groups: ["system:masters"],
    });
    const issued = certificate(
      await issuersOf(kube).issue({ ...request, certificateSigningRequestPEM: csrPEM }),
    );
    assert.equal(issued.keyPEM, undefined);
    const cert = new X509Certificate(issued.certificatePEM);
    assert.ok(cert.checkPrivateKey(createPrivateKey(keyPEM)));
    assert.equal(cert.subject, "O=devs\nCN=jane");
    // The handler refuses a malformed request before it gets here; the issuer still says why.
    const bad = await new LocalCAIssuer(kube).issue({ ...request, certificateSigningRequestPEM: "PEM" });
    assert.deepEqual(bad, {
      ok: false,
      reason: "kube cluster signing CA failed to issue client cert: not a PEM CERTIFICATE REQUEST",
    });
  });
});

describe("OrderedIssuers", () => {
  const token: Issuer = {
    name: "token minter",
    health: () => ({ ok: true }),
    issue: async () => ({
      ok: true,
      credential: { type: "token", token: "a.b.c", expiresAt: new Date(0) },
    }),
  };

  it("turns an issuer that throws into its reason and asks the next", async () => {
    const throwing: Issuer = {
      name: "csr api",
      health: () => ({ ok: true }),
      issue: async () => {
        throw new Error("watch closed");
      },
    };
    const result = await new OrderedIssuers([throwing, token]).issue(request);
    assert.deepEqual(result, {
      ok: true,
      credential: { type: "token", token: "a.b.c", expiresAt: new Date(0) },
    });
    assert.deepEqual(await new OrderedIssuers([throwing]).issue(request), {
      ok: false,
      reason: "csr api failed: watch closed",
    });
  });

  it("skips an unhealthy issuer without asking it", async () => {
    let asked = 0;
    const down: Issuer = {
      name: "secret CA",
      health: () => ({ ok: false, reason: "secret CA: Secret kube-system/csr-signer not found" }),
      issue: async () => {
        asked++;
        return { ok: false, reason: "asked" };
      },
    };
    const issuers = new OrderedIssuers([down, token]);
    assert.equal(issuers.active(), token);
    assert.equal((await issuers.issue(request)).ok, true);
    assert.equal(asked, 0);
  });

  it("when no issuer can sign the client's own key, answers as upstream does: a certificate with a key made here", async () => {
    const csrOnly: Issuer = {
      name: "csr api",
      health: () => ({ ok: true }),
      issue: async (r) =>
        r.certificateSigningRequestPEM === undefined
          ? {
              ok: true,
              credential: {
                type: "certificate",
                certificatePEM: "CERT",
                keyPEM: "KEY",
                notAfter: new Date(0),
              },
            }
          : { ok: false, reason: "csr api: cannot sign a client's certificate signing request" },
    };
    const { csrPEM } = await createSigningRequest({ username: "jane", groups: [] });
    const result = await new OrderedIssuers([csrOnly]).issue({
      ...request,
      certificateSigningRequestPEM: csrPEM,
    });
    assert.deepEqual(result, {
      ok: true,
      credential: { type: "certificate", certificatePEM: "CERT", keyPEM: "KEY", notAfter: new Date(0) },
    });
    // A token has no key to hold: it is the answer whatever the request.
    const tokens = await new OrderedIssuers([
      {
        ...token,
        issue: async (r) =>
          r.certificateSigningRequestPEM ? { ok: false, reason: "tokens only" } : token.issue(r),
      },
    ]).issue({ ...request, certificateSigningRequestPEM: csrPEM });
    assert.equal(tokens.ok && tokens.credential.type, "token");
    // With none that can issue at all, the reasons are those of the request as the client sent it.
    const down: Issuer = {
      name: "down",
      health: () => ({ ok: true }),
      issue: async () => ({ ok: false, reason: "down: broken" }),
    };
    assert.deepEqual(
      await new OrderedIssuers([down]).issue({ ...request, certificateSigningRequestPEM: csrPEM }),
      {
        ok: false,
        reason: "down: broken",
      },
    );
  });

  it("stops trying once the client has gone", async () => {
    const stop = new AbortController();
    let asked = 0;
    const aborting: Issuer = {
      name: "csr api",
      health: () => ({ ok: true }),
      issue: async () => {
        asked++;
        stop.abort();
        return { ok: false, reason: "csr api: aborted" };
      },
    };
    const result = await new OrderedIssuers([aborting, aborting]).issue({ ...request, signal: stop.signal });
    assert.deepEqual(result, { ok: false, reason: "csr api: aborted" });
    assert.equal(asked, 1);
  });
});

describe("OrderedIssuers and a user's uid and extras", () => {
  const token: Issuer = {
    name: "token issuer",
    carriesExtras: true,
    health: () => ({ ok: true }),
    issue: async () => ({ ok: true, credential: { type: "token", token: "t", expiresAt: new Date() } }),
  };

  it("carries extras only while the issuer that would serve does, and never gives them to one that cannot", async () => {
    const kube = new SignerHolder("kube cluster signing CA");
    kube.set(kubeCA);
    const withExtras = { ...request, user: { ...request.user, extra: { "example.com/team": ["a"] } } };
    const certificateOnly = new OrderedIssuers([new LocalCAIssuer(kube)]);
    assert.equal(certificateOnly.carriesExtras, false);
    assert.deepEqual(await certificateOnly.issue({ ...request, user: { ...request.user, uid: "1" } }), {
      ok: false,
      reason: "kube cluster signing CA cannot carry a uid or extras",
    });
    // Healthy but unable to carry them: the token issuer after it serves.
    const both = new OrderedIssuers([new LocalCAIssuer(kube), token]);
    assert.equal(both.carriesExtras, false);
    const result = await both.issue(withExtras);
    assert.ok(result.ok);
    assert.equal(result.credential.type, "token");
    kube.set(undefined);
    assert.equal(both.carriesExtras, true);
  });
});
