import assert from "node:assert/strict";
import { randomBytes, X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import { CertificateAuthority } from "../../certs/ca.ts";
import type { CertEnv } from "../../certs/env.ts";
import { issueServingCertificate } from "../../certs/issue.ts";
import {
  type APIServiceObject,
  type CertBounds,
  certBounds,
  decideAPIService,
  decideExpiry,
  type ExpiryDecision,
  maxExpiryWaitMs,
  newServingSecret,
  type SecretObject,
  servingNames,
  type WebhookConfigurationObject,
  webhookCABundlePatch,
} from "./decide.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");
const minute = 60_000;

describe("servingNames", () => {
  const cases: { name: string; extra: string[]; want: { dnsNames: string[]; ips: string[] } }[] = [
    {
      name: "upstream's two names",
      extra: [],
      want: {
        dnsNames: ["pinniped-concierge-api.ns.svc", "pinniped-concierge-api.ns.svc.cluster.local"],
        ips: [],
      },
    },
    {
      name: "extra names and addresses, duplicates dropped",
      extra: ["localhost", "127.0.0.1", "::1", "localhost", "pinniped-concierge-api.ns.svc", "127.0.0.1"],
      want: {
        dnsNames: [
          "pinniped-concierge-api.ns.svc",
          "pinniped-concierge-api.ns.svc.cluster.local",
          "localhost",
        ],
        ips: ["127.0.0.1", "::1"],
      },
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(servingNames("pinniped-concierge-api", "ns", c.extra), c.want));
  }
});

describe("newServingSecret", () => {
  const material = { caCertPEM: "ca", caKeyPEM: "cakey", certPEM: "cert", keyPEM: "key" };
  it("has upstream's four keys, the labels and the owner reference", () => {
    const owner = { apiVersion: "apps/v1", kind: "Deployment", name: "d", uid: "u1", controller: true };
    const secret = newServingSecret(
      { name: "s", namespace: "ns", labels: { app: "pinniped-concierge" }, ownerReference: owner },
      material,
    );
    assert.deepEqual(secret, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: "s",
        namespace: "ns",
        labels: { app: "pinniped-concierge" },
        ownerReferences: [owner],
      },
      type: "Opaque",
      data: {
        caCertificate: b64("ca"),
        caCertificatePrivateKey: b64("cakey"),
        tlsCertificateChain: b64("cert"),
        tlsPrivateKey: b64("key"),
      },
    });
  });
  it("has neither labels nor owner references when none are given", () => {
    const secret = newServingSecret({ name: "s", namespace: "ns", labels: {} }, material);
    assert.deepEqual(secret.metadata, { name: "s", namespace: "ns" });
  });
});

describe("certBounds", () => {
  let certPEM: string;
  const issuedAt = Date.UTC(2026, 0, 2, 3, 4, 5);
  before(async () => {
    const env: CertEnv = { now: () => issuedAt, randomBytes };
    const ca = await CertificateAuthority.create("test", 60 * minute, env);
    certPEM = (await issueServingCertificate(ca, { dnsNames: ["a.b.svc"] }, 60 * minute, env)).certPEM;
  });
  const secretWith = (chain?: string): SecretObject => ({
    metadata: { name: "s" },
    data: chain === undefined ? {} : { tlsCertificateChain: b64(chain) },
  });

  it("reads the first certificate's validity (NotBefore back-dated 5 minutes)", () => {
    assert.deepEqual(certBounds(secretWith(certPEM + certPEM)), {
      notBeforeMs: issuedAt - 5 * minute,
      notAfterMs: issuedAt + 60 * minute,
    });
  });
  const failures: { name: string; chain: string | undefined; want: RegExp }[] = [
    { name: "no key", chain: undefined, want: /^failed to find certificate$/ },
    { name: "not PEM", chain: "hello", want: /^failed to decode certificate PEM$/ },
    {
      name: "PEM that is not a certificate",
      chain: "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
      want: /^failed to parse certificate: /,
    },
  ];
  for (const c of failures) {
    it(c.name, () => {
      const got = certBounds(secretWith(c.chain));
      assert.ok("error" in got);
      assert.match(got.error, c.want);
    });
  }
});

describe("decideExpiry (upstream: rotate when age >= renewBefore, or expired)", () => {
  const now = Date.UTC(2026, 5, 1);
  const cases: { name: string; bounds: CertBounds; renewBeforeMs: number; want: ExpiryDecision }[] = [
    {
      name: "young: wait until it is renewBefore old",
      bounds: { notBeforeMs: now - 5 * minute, notAfterMs: now + 60 * minute },
      renewBeforeMs: 30 * minute,
      want: { rotate: false, ageMs: 5 * minute, recheckAfterMs: 25 * minute },
    },
    {
      name: "exactly renewBefore old rotates",
      bounds: { notBeforeMs: now - 30 * minute, notAfterMs: now + 60 * minute },
      renewBeforeMs: 30 * minute,
      want: { rotate: true, why: "aged" },
    },
    {
      name: "one millisecond short of renewBefore waits one millisecond",
      bounds: { notBeforeMs: now - 30 * minute + 1, notAfterMs: now + 60 * minute },
      renewBeforeMs: 30 * minute,
      want: { rotate: false, ageMs: 30 * minute - 1, recheckAfterMs: 1 },
    },
    {
      name: "expired but young (a NotAfter before NotBefore + renewBefore)",
      bounds: { notBeforeMs: now - 2 * minute, notAfterMs: now - 1 },
      renewBeforeMs: 30 * minute,
      want: { rotate: true, why: "expired" },
    },
    {
      name: "expiry before the age threshold: wait for just past NotAfter",
      bounds: { notBeforeMs: now - 2 * minute, notAfterMs: now + minute },
      renewBeforeMs: 30 * minute,
      want: { rotate: false, ageMs: 2 * minute, recheckAfterMs: minute + 1 },
    },
    {
      name: "NotAfter itself is still valid (Go's After is strict)",
      bounds: { notBeforeMs: now - 2 * minute, notAfterMs: now },
      renewBeforeMs: 30 * minute,
      want: { rotate: false, ageMs: 2 * minute, recheckAfterMs: 1 },
    },
    {
      name: "far away: capped wait, so the timer fits and clock jumps are caught",
      bounds: { notBeforeMs: now - 5 * minute, notAfterMs: now + 365 * 24 * 60 * minute },
      renewBeforeMs: 270 * 24 * 60 * minute,
      want: { rotate: false, ageMs: 5 * minute, recheckAfterMs: maxExpiryWaitMs },
    },
    {
      name: "a renewBefore shorter than the 5-minute back-dating rotates a fresh certificate (upstream too)",
      bounds: { notBeforeMs: now - 5 * minute, notAfterMs: now + 60 * minute },
      renewBeforeMs: 2_000,
      want: { rotate: true, why: "aged" },
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(decideExpiry(c.bounds, now, c.renewBeforeMs), c.want));
  }
});

describe("decideAPIService (upstream's UpdateAPIService)", () => {
  const ca = Buffer.from("-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----\n");
  const apiService = (spec: APIServiceObject["spec"]): APIServiceObject => ({
    metadata: { name: "v1alpha1.login.concierge.pinniped.dev" },
    spec,
  });
  const patch = { action: "patch", patch: { spec: { caBundle: ca.toString("base64") } } };
  const cases: { name: string; spec: APIServiceObject["spec"]; want: unknown }[] = [
    { name: "ours without a caBundle", spec: { service: { namespace: "ns", name: "api" } }, want: patch },
    {
      name: "ours with another caBundle",
      spec: { service: { namespace: "ns", name: "api" }, caBundle: b64("old") },
      want: patch,
    },
    {
      name: "ours and up to date",
      spec: { service: { namespace: "ns", name: "api" }, caBundle: ca.toString("base64") },
      want: { action: "skip", why: "up to date" },
    },
    {
      name: "a Service in another namespace is not ours",
      spec: { service: { namespace: "other", name: "api" }, caBundle: b64("old") },
      want: { action: "skip", why: "not ours" },
    },
    { name: "no Service at all: upstream updates it", spec: { service: null }, want: patch },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(decideAPIService(apiService(c.spec), "ns", ca), c.want));
  }
});

describe("webhookCABundlePatch", () => {
  const ca = Buffer.from("the CA");
  const service = (namespace: string) => ({ namespace, name: "api", path: "/validate", port: 443 });
  it("patches only the webhooks that are ours and out of date, each behind a test of its name", () => {
    const config: WebhookConfigurationObject = {
      metadata: { name: "pinniped-concierge-authenticators" },
      webhooks: [
        { name: "up-to-date", clientConfig: { service: service("ns"), caBundle: ca.toString("base64") } },
        { name: "missing", clientConfig: { service: service("ns") } },
        { name: "foreign", clientConfig: { service: service("other") } },
        { name: "by-url", clientConfig: { url: "https://localhost:1234/validate", caBundle: b64("old") } },
      ],
    };
    assert.deepEqual(webhookCABundlePatch(config, "ns", ca), [
      { op: "test", path: "/webhooks/1/name", value: "missing" },
      { op: "add", path: "/webhooks/1/clientConfig/caBundle", value: ca.toString("base64") },
      { op: "test", path: "/webhooks/3/name", value: "by-url" },
      { op: "add", path: "/webhooks/3/clientConfig/caBundle", value: ca.toString("base64") },
    ]);
  });
  it("is empty when everything is up to date or there are no webhooks", () => {
    assert.deepEqual(webhookCABundlePatch({ metadata: { name: "x" } }, "ns", ca), []);
    const config: WebhookConfigurationObject = {
      webhooks: [{ name: "a", clientConfig: { service: service("ns"), caBundle: ca.toString("base64") } }],
    };
    assert.deepEqual(webhookCABundlePatch(config, "ns", ca), []);
  });
});

describe("issued material parses as the aggregator will read it", () => {
  it("the serving certificate carries the SANs", async () => {
    const ca = await CertificateAuthority.create("Pinniped Aggregation CA", 60 * minute);
    const names = servingNames("api", "ns", ["localhost", "127.0.0.1"]);
    const leaf = await issueServingCertificate(ca, names, 60 * minute);
    const cert = new X509Certificate(leaf.certPEM);
    assert.equal(
      cert.subjectAltName,
      "DNS:api.ns.svc, DNS:api.ns.svc.cluster.local, DNS:localhost, IP Address:127.0.0.1",
    );
    assert.ok(cert.verify(ca.certificate.publicKey));
  });
});
