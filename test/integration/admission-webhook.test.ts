// The validating admission webhook registered with a real kube-apiserver: `kubectl apply` of an
// authenticator with a problem stores it, as upstream's CRD does (its reconciler then reports the
// problem in a condition), and prints the problem as a warning naming the field; good ones are
// stored without a word, and deletes are never intercepted.
//
// The control plane is shared with the other integration tests of the run, so this registration
// carries an objectSelector on a label only this file's objects have, and is deleted afterwards.
// The installed configuration (config/06-validating-webhook.yaml) has no selector.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ServingCertHolder } from "../../certs/servingcert.ts";
import { newCA, newCert } from "../../hack/pki.ts";
import { Metrics } from "../../observability/metrics.ts";
import { renderValidatingWebhookConfiguration } from "../../webhooks/registration.ts";
import { startWebhookServer, type WebhookServer } from "../../webhooks/server.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";

const group = "authentication.concierge.pinniped.dev";
const label = "concierge.test/admission";

// How long and how often this file waited before eventually was shared: its tests keep that timing.
const polling = { timeoutMs: 30_000, intervalMs: 100 };

describe("admission webhook", () => {
  let c: TestCluster;
  let dir: string;
  let server: WebhookServer;
  let caPEM: string;
  let selectorValue: string;
  let configName: string;
  const metrics = new Metrics();

  const labels = () => ({ [label]: selectorValue });
  const jwt = (
    name: string,
    spec: Record<string, unknown>,
    objectLabels: Record<string, string> = labels(),
  ) => ({
    apiVersion: `${group}/v1alpha1`,
    kind: "JWTAuthenticator",
    metadata: { name, labels: objectLabels },
    spec: { issuer: "https://issuer.example.com", audience: "concierge", ...spec },
  });
  const webhook = (name: string, spec: Record<string, unknown>) => ({
    apiVersion: `${group}/v1alpha1`,
    kind: "WebhookAuthenticator",
    metadata: { name, labels: labels() },
    spec: { endpoint: "https://webhook.example.com/authenticate", ...spec },
  });
  const apply = (object: unknown, ...flags: string[]) =>
    c.kubectl(["apply", ...flags, "-f", "-"], { input: JSON.stringify(object) });

  /** Applies `object`, which must be stored, and returns the warnings kubectl printed. */
  async function warned(object: unknown): Promise<string[]> {
    const res = await apply(object);
    assert.equal(res.code, 0, res.stderr);
    return res.stderr
      .split("\n")
      .filter((line) => line.startsWith("Warning: "))
      .map((line) => line.slice("Warning: ".length));
  }

  async function stored(object: unknown): Promise<void> {
    const res = await apply(object);
    assert.equal(res.code, 0, res.stderr);
  }

  before(async () => {
    c = await testCluster();
    selectorValue = c.uniqueName("admission");
    configName = c.uniqueName("concierge-test-authenticators");
    dir = await mkdtemp(join(tmpdir(), "admission-webhook-"));
    const ca = await newCA(dir, "ca", "admission webhook test CA");
    const serving = await newCert(dir, ca, {
      name: "serving",
      cn: "localhost",
      dnsNames: ["localhost"],
      ips: ["127.0.0.1"],
      usage: "server",
    });
    caPEM = await readFile(ca.cert, "utf8");
    const certs = new ServingCertHolder();
    certs.set({ certPEM: await readFile(serving.cert, "utf8"), keyPEM: await readFile(serving.key, "utf8") });
    server = await startWebhookServer({ certs, host: "127.0.0.1", port: 0, metrics });

    const config = await renderValidatingWebhookConfiguration({
      baseURL: `https://localhost:${server.port}`,
      caBundlePEM: caPEM,
      name: configName,
      objectSelector: { matchLabels: { [label]: selectorValue } },
    });
    const res = await c.kubectl(["create", "-f", "-"], { input: JSON.stringify(config) });
    assert.equal(res.code, 0, res.stderr);
    // kube-apiserver picks up webhook configurations from a watch: wait until ours answers.
    const probe = jwt(c.uniqueName("probe"), { issuer: "https://issuer.example.com/?probe" });
    await eventually(
      "the webhook to be called",
      async () => (await apply(probe, "--dry-run=server")).stderr.includes("Warning: spec.issuer"),
      polling,
    );
  });

  after(async () => {
    await c?.kubectl(["delete", "validatingwebhookconfiguration", configName, "--ignore-not-found"]);
    for (const plural of ["jwtauthenticators", "webhookauthenticators"]) {
      await c?.kubectl(["delete", plural, "-l", `${label}=${selectorValue}`, "--wait=false"]);
    }
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe("JWTAuthenticator", () => {
    it("stores an issuer with a query, warning in the words kube-apiserver uses for field errors", async () => {
      const name = c.uniqueName("jwt");
      assert.deepEqual(await warned(jwt(name, { issuer: "https://issuer.example.com/?tenant=a" })), [
        'spec.issuer: Invalid value: "https://issuer.example.com/?tenant=a": cannot include query params',
      ]);
      const res = await c.kubectl(["get", "jwtauthenticator", name, "-o", "jsonpath={.spec.issuer}"]);
      assert.equal(res.stdout, "https://issuer.example.com/?tenant=a");
    });

    // Upstream's CRD accepts these and its status tests read the error from the conditions
    // (test/integration/jwtauthenticator.test.ts checks our conditions' words).
    it("stores a CA that is not base64, warning about it", async () => {
      assert.deepEqual(
        await warned(
          jwt(c.uniqueName("jwt"), { tls: { certificateAuthorityData: "pretend-this-is-a-certificate" } }),
        ),
        [
          'spec.tls.certificateAuthorityData: Invalid value: "<omitted>": illegal base64 data at input byte 7',
        ],
      );
    });

    it("stores a CA and a CA source together, warning about it", async () => {
      assert.deepEqual(
        await warned(
          jwt(c.uniqueName("jwt"), {
            tls: {
              certificateAuthorityData: Buffer.from(caPEM).toString("base64"),
              certificateAuthorityDataSource: { kind: "Secret", name: "ca", key: "ca.crt" },
            },
          }),
        ),
        [
          "spec.tls.certificateAuthorityDataSource: Forbidden: may not be specified together with spec.tls.certificateAuthorityData",
        ],
      );
    });

    it("stores a CEL expression that does not type-check, warning about it", async () => {
      assert.deepEqual(
        await warned(jwt(c.uniqueName("jwt"), { claims: { usernameExpression: "claims.sub == 'x'" } })),
        [
          `spec.claims.usernameExpression: Invalid value: "claims.sub == 'x'": must evaluate to string, but evaluates to bool`,
        ],
      );
    });

    it("refuses audiences without audienceMatchPolicy, as the CRD's CEL rule did", async () => {
      const res = await apply(jwt(c.uniqueName("jwt"), { audiences: ["cli"] }));
      assert.notEqual(res.code, 0, res.stdout);
      assert.match(
        res.stderr,
        /admission webhook "jwtauthenticators\.authentication\.concierge\.pinniped\.dev" denied the request: spec\.audienceMatchPolicy: Required value: audienceMatchPolicy must be MatchAny when audiences is set/,
      );
    });

    it("warns about spec.audience repeated in spec.audiences", async () => {
      assert.deepEqual(
        await warned(
          jwt(c.uniqueName("jwt"), { audiences: ["cli", "concierge"], audienceMatchPolicy: "MatchAny" }),
        ),
        ['spec.audiences[1]: Duplicate value: "concierge"'],
      );
    });

    it("warns once for each problem", async () => {
      const warnings = await warned(
        jwt(c.uniqueName("jwt"), {
          claims: {
            username: "email",
            usernameExpression: "claims.sub",
            extra: [{ key: "Example.com/tenant", valueExpression: "claims.tenant" }],
          },
          claimValidationRules: [{ claim: "hd", expression: "true" }],
        }),
      );
      assert.equal(warnings.length, 5, warnings.join("\n"));
      assert.equal(
        warnings[0],
        `spec.claimValidationRules[0]: Invalid value: "hd": claim and expression can't both be set`,
      );
      assert.equal(
        warnings[1],
        `spec.claims.username: Invalid value: "": claim and expression can't both be set`,
      );
      assert.ok(
        warnings[2]!.startsWith(
          'spec.claims.extra[0].key: Invalid value: "Example.com": a lowercase RFC 1123 subdomain',
        ),
      );
      assert.equal(
        warnings[3],
        'spec.claims.extra[0].key: Invalid value: "Example.com/tenant": must be lowercase',
      );
      assert.match(
        warnings[4]!,
        /^spec\.claims\.extra: Forbidden: the Concierge's client certificates cannot carry extras/,
      );
    });

    it("stores a valid extra mapping, warning that client certificates cannot deliver it", async () => {
      assert.deepEqual(
        await warned(
          jwt(c.uniqueName("jwt"), {
            claims: { extra: [{ key: "example.com/tenant", valueExpression: "claims.tenant" }] },
          }),
        ),
        [
          "spec.claims.extra: Forbidden: the Concierge's client certificates cannot carry extras to kube-apiserver, so this JWTAuthenticator is not Ready and serves no login until spec.claims.extra is removed",
        ],
      );
    });

    it("stores a good one, with a CA bundle and every CEL field", async () => {
      const name = c.uniqueName("jwt");
      await stored(
        jwt(name, {
          tls: { certificateAuthorityData: Buffer.from(caPEM).toString("base64") },
          claims: {
            usernameExpression: '"oidc:" + claims.sub',
            groupsExpression: "claims.groups",
            extra: [{ key: "example.com/tenant", valueExpression: "claims.tenant" }],
          },
          claimValidationRules: [{ claim: "hd", requiredValue: "example.com" }],
          userValidationRules: [{ expression: "!user.username.startsWith('system:')" }],
        }),
      );
      const res = await c.kubectl(["get", "jwtauthenticator", name, "-o", "jsonpath={.spec.issuer}"]);
      assert.equal(res.stdout, "https://issuer.example.com");
    });

    it("stores an UPDATE with a problem, warning about it", async () => {
      const name = c.uniqueName("jwt");
      assert.deepEqual(await warned(jwt(name, {})), []);
      const issuer = "https://issuer.example.com/.well-known/openid-configuration";
      assert.deepEqual(await warned(jwt(name, { issuer })), [
        `spec.issuer: Invalid value: "${issuer}": cannot include path '/.well-known/openid-configuration'`,
      ]);
      const res = await c.kubectl(["get", "jwtauthenticator", name, "-o", "jsonpath={.spec.issuer}"]);
      assert.equal(res.stdout, issuer);
    });

    // An UPDATE review carries the old and the new object: a webhook limit of one object's size
    // made every later change of a large object fail, labels included.
    it("stores and then labels objects with a CA bundle of 800 KB and of 1.2 MB", async () => {
      for (const bytes of [800_000, 1_200_000]) {
        const name = c.uniqueName("jwt");
        const bundle = caPEM.repeat(Math.ceil((bytes * 3) / 4 / caPEM.length));
        const object = jwt(name, {
          tls: { certificateAuthorityData: Buffer.from(bundle).toString("base64") },
        });
        // create, not apply: apply's last-applied annotation cannot hold an object this large.
        const created = await c.kubectl(["create", "-f", "-"], { input: JSON.stringify(object) });
        assert.equal(created.code, 0, created.stderr);
        const labelled = await c.kubectl(["label", "jwtauthenticator", name, "touched=yes"]);
        assert.equal(labelled.code, 0, labelled.stderr);
      }
    });

    it("never intercepts a delete", async () => {
      const name = c.uniqueName("jwt");
      await stored(jwt(name, {}));
      const res = await c.kubectl(["delete", "jwtauthenticator", name]);
      assert.equal(res.code, 0, res.stderr);
    });
  });

  describe("WebhookAuthenticator", () => {
    it("stores an endpoint without a host, warning about it", async () => {
      assert.deepEqual(
        await warned(webhook(c.uniqueName("webhook"), { endpoint: "https://:8443/authenticate" })),
        ['spec.endpoint: Invalid value: "https://:8443/authenticate": URL must have a host'],
      );
    });

    it("stores a CA that is base64 but not PEM, warning about it", async () => {
      assert.deepEqual(
        await warned(
          webhook(c.uniqueName("webhook"), {
            tls: { certificateAuthorityData: Buffer.from("not a certificate").toString("base64") },
          }),
        ),
        [
          'spec.tls.certificateAuthorityData: Invalid value: "<omitted>": no base64-encoded PEM certificates found in 24 bytes of data (PEM certificates must begin with "-----BEGIN CERTIFICATE-----")',
        ],
      );
    });

    it("stores a good one", async () => {
      await stored(
        webhook(c.uniqueName("webhook"), {
          tls: { certificateAuthorityData: Buffer.from(caPEM).toString("base64") },
        }),
      );
    });
  });
});
