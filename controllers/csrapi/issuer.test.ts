import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { afterEach, before, describe, it } from "node:test";
import { CertificateAuthority } from "../../certs/ca.ts";
import { issueClientCertificate } from "../../certs/issue.ts";
import { settle } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { StrategyHolder } from "../credentialissuer/holder.ts";
import { Controller } from "../runtime/controller.ts";
import { apiStatusError, FakeInformer, FakeRestClient, type RecordedRequest } from "../runtime/testing.ts";
import { type CSR, expirationSecondsFor, outcomeOf } from "./decide.ts";
import { CSRAPIIssuer } from "./issuer.ts";
import { csrAPIController, lifetimeNote } from "./reconciler.ts";

const path = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
let ca: CertificateAuthority;
before(async () => {
  ca = await CertificateAuthority.create("cluster signer", 3_600_000);
});

const clusterInfo = {
  metadata: { namespace: "kube-public", name: "cluster-info" },
  data: {
    kubeconfig:
      "apiVersion: v1\nkind: Config\nclusters:\n- name: ''\n  cluster:\n    certificate-authority-data: Y2E=\n    server: https://k8s.example.com\n",
  },
};

/** A CSR API whose signer answers approvals the way kube-controller-manager would, unless told otherwise. */
function fakeAPI(signer: "signs" | "off" | "denies" = "signs") {
  const rest = new FakeRestClient();
  const csrs = new FakeInformer<CSR>();
  let n = 0;
  rest.react((r) => {
    if (r.method === "POST" && r.path === path) {
      const csr = {
        ...(r.json as CSR),
        metadata: { ...(r.json as CSR).metadata, name: `pinniped-concierge-${++n}` },
      };
      csrs.upsert(csr);
      return csr;
    }
    const approval = new RegExp(`^${path}/([^/]+)/approval$`).exec(r.path);
    if (r.method === "PUT" && approval) {
      const csr = r.json as CSR;
      csrs.upsert(csr);
      if (signer === "off") return csr;
      // The signer answers later, on the watch.
      setImmediate(async () => {
        if (signer === "denies") {
          csrs.upsert({
            ...csr,
            status: {
              conditions: [
                { type: "Failed", status: "True", reason: "SignerValidationFailure", message: "nope" },
              ],
            },
          });
          return;
        }
        const issued = await issueClientCertificate(
          ca,
          { username: "from-csr", groups: ["g"] },
          expirationSecondsFor(csr.spec?.expirationSeconds ?? 0) * 1000,
        );
        csrs.upsert({
          ...csr,
          status: { ...csr.status, certificate: Buffer.from(issued.certPEM).toString("base64") },
        });
      });
      return csr;
    }
    if (r.method === "DELETE") return {};
    return undefined;
  });
  return { rest, csrs };
}

const request = { user: { username: "jane", groups: ["devs"] }, ttlSeconds: 300 };

describe("CSRAPIIssuer", () => {
  it("creates, approves, waits on the shared watch, deletes the CSR, and returns the certificate with the key it made", async () => {
    const { rest, csrs } = fakeAPI();
    const issuer = new CSRAPIIssuer({ client: rest, csrs, labels: { app: "pinniped-concierge" } });
    const result = await issuer.issue(request);
    assert.ok(result.ok, result.ok ? "" : result.reason);
    assert.equal(result.credential.type, "certificate");
    if (result.credential.type !== "certificate") return;
    assert.ok(result.credential.keyPEM);
    assert.ok(new X509Certificate(result.credential.certificatePEM).checkIssued(ca.certificate));
    assert.deepEqual(
      rest.requests.map((r) => r.method),
      ["POST", "PUT", "DELETE"],
    );
    const [created, approval] = rest.requests as [RecordedRequest, RecordedRequest];
    const spec = (created.json as CSR).spec;
    assert.equal(spec?.signerName, "kubernetes.io/kube-apiserver-client");
    assert.equal(spec?.expirationSeconds, 600);
    assert.deepEqual(spec?.usages, ["client auth"]);
    assert.deepEqual((created.json as CSR).metadata?.labels, {
      app: "pinniped-concierge",
      "concierge.pinniped.dev/strategy": "CertificateSigningRequestAPI",
    });
    assert.equal(approval.path, `${path}/pinniped-concierge-1/approval`);
    assert.equal((approval.json as CSR).status?.conditions?.[0]?.type, "Approved");
  });

  it("leaves a client's own CSR to another strategy, since the signer would copy the subject the client chose", async () => {
    const { rest, csrs } = fakeAPI();
    const issuer = new CSRAPIIssuer({ client: rest, csrs });
    issuer.state.set({ ok: true });
    const result = await issuer.issue({
      ...request,
      certificateSigningRequestPEM: "-----BEGIN CERTIFICATE REQUEST-----\n",
    });
    assert.deepEqual(result, {
      ok: false,
      reason:
        "CertificateSigningRequest API: cannot sign a client's certificate signing request: the signer would copy the subject the client chose",
    });
    assert.deepEqual(rest.requests, []);
    assert.deepEqual(issuer.health(), { ok: true });
  });

  it("fails with the reason, and is unhealthy until a probe succeeds: forbidden approval, a denied CSR, a signer that never answers", async () => {
    const forbidden = fakeAPI();
    forbidden.rest.react((r) =>
      r.path.endsWith("/approval")
        ? Promise.reject(
            apiStatusError(
              403,
              "Forbidden",
              'user cannot approve for signerName "kubernetes.io/kube-apiserver-client"',
            ),
          )
        : undefined,
    );
    const issuer = new CSRAPIIssuer({ client: forbidden.rest, csrs: forbidden.csrs });
    issuer.state.set({ ok: true });
    const refused = await issuer.issue(request);
    assert.ok(!refused.ok);
    assert.match(
      refused.reason,
      /^CertificateSigningRequest API: could not approve CertificateSigningRequest pinniped-concierge-1: .*cannot approve/,
    );
    assert.deepEqual(issuer.health(), { ok: false, reason: refused.reason });
    assert.equal(forbidden.rest.requests.at(-1)?.method, "DELETE");

    const denies = fakeAPI("denies");
    const denied = await new CSRAPIIssuer({ client: denies.rest, csrs: denies.csrs }).issue(request);
    assert.deepEqual(denied, {
      ok: false,
      reason:
        "CertificateSigningRequest API: CertificateSigningRequest pinniped-concierge-1 failed: SignerValidationFailure: nope",
    });

    const off = fakeAPI("off");
    const waited = await new CSRAPIIssuer({ client: off.rest, csrs: off.csrs, waitTimeoutMs: 50 }).issue(
      request,
    );
    assert.ok(!waited.ok);
    assert.match(
      waited.reason,
      /no certificate for CertificateSigningRequest pinniped-concierge-1 within 0.05s: is kube-controller-manager's kubernetes.io\/kube-apiserver-client signer running\?/,
    );
  });
});

describe("csrAPIController", () => {
  const stops: AbortController[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) stop.abort();
    await settle();
  });

  it("publishes the probe's result, and an Error as soon as a real request fails", async () => {
    const api = fakeAPI();
    const issuer = new CSRAPIIssuer({ client: api.rest, csrs: api.csrs });
    const holder = new StrategyHolder();
    const { log } = memoryLogger();
    const controller = csrAPIController(
      {
        clusterInfo: new FakeInformer({ objects: [clusterInfo] }),
        controller: (o) => new Controller({ ...o, log }),
      },
      { issuer, probeIntervalMs: 300_000, ttlSeconds: 300, strategyHolder: holder },
    );
    const healthy = new Promise<void>((resolve) => issuer.state.onChange((h) => h.ok && resolve()));
    const stop = new AbortController();
    stops.push(stop);
    void controller.run(stop.signal);
    await healthy;
    assert.deepEqual(issuer.health(), { ok: true });
    const [entry] = holder.get();
    assert.equal(entry?.status, "Success");
    assert.equal(entry?.reason, "ProbeSucceeded");
    assert.equal(entry?.frontend?.type, "TokenCredentialRequestAPI");
    assert.match(entry?.message ?? "", /certificates live 600s, the CSR API's minimum/);

    api.rest.react((r) =>
      r.method === "POST"
        ? Promise.reject(apiStatusError(403, "Forbidden", "csr create forbidden"))
        : undefined,
    );
    const failed = await issuer.issue(request);
    assert.ok(!failed.ok);
    assert.equal(holder.get()[0]?.status, "Error");
    assert.equal(holder.get()[0]?.reason, "ProbeFailed");
    assert.match(
      holder.get()[0]?.message ?? "",
      /could not create a CertificateSigningRequest: csr create forbidden/,
    );
  });
});

describe("CSR API decisions", () => {
  it("asks for the TTL but never under 600 s, and says so", () => {
    assert.equal(expirationSecondsFor(300), 600);
    assert.equal(expirationSecondsFor(3600), 3600);
    assert.equal(lifetimeNote(3600), "certificates live 3600s");
    assert.match(
      lifetimeNote(300),
      /^certificates live 600s, the CSR API's minimum \(the configured clientCertificateTTLSeconds is 300;/,
    );
  });

  it("reads a CSR's outcome", () => {
    assert.equal(outcomeOf({ metadata: { name: "a" } }), undefined);
    assert.deepEqual(
      outcomeOf({ metadata: { name: "a" }, status: { conditions: [{ type: "Denied", status: "True" }] } }),
      {
        ok: false,
        reason: "CertificateSigningRequest a denied",
      },
    );
    assert.deepEqual(
      outcomeOf({ metadata: { name: "a" }, status: { certificate: Buffer.from("PEM").toString("base64") } }),
      {
        ok: true,
        certificatePEM: "PEM",
      },
    );
  });
});
