// The apicerts controllers in-process against the real API server, with a fresh namespace as the
// Concierge namespace: the serving-certificate Secret is created with upstream's keys, the labels,
// the owner reference and the SANs; our APIService and our webhooks get its CA while the foreign
// ones are left alone; the ServingCertHolder gets the pair. A small HTTPS server in this process
// serves discovery from that holder behind an ExternalName Service, so kube-apiserver's aggregator
// itself checks the chain end to end: it must trust the CA from caBundle and find
// `<service>.<namespace>.svc` in the certificate. Then rotation (upstream's
// TestAPIServingCertificateAutoCreationAndRotation): deleting the Secret, writing an aged
// certificate into it, and, with a second manager, a certificate growing old on its own timer.
import assert from "node:assert/strict";
import { randomBytes, X509Certificate } from "node:crypto";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { CertificateAuthority } from "../../certs/ca.ts";
import { issueServingCertificate } from "../../certs/issue.ts";
import { ServingCertHolder } from "../../certs/servingcert.ts";
import { register as registerApiCerts } from "../../controllers/apicerts/controllers.ts";
import type {
  APIServiceObject,
  SecretObject,
  WebhookConfigurationObject,
} from "../../controllers/apicerts/decide.ts";
import { type Manager, managerFromKubeConfig } from "../../controllers/runtime/manager.ts";
import { isNotFound, KubeRestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";

const label = "concierge.test/apicerts";
const serviceName = "pinniped-concierge-api";
const apiServicesPath = "/apis/apiregistration.k8s.io/v1/apiservices";
const webhooksPath = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

// How long and how often this file waited before eventually was shared: its tests keep that timing.
const polling = { timeoutMs: 30_000, intervalMs: 50 };

const decode = (value: string | undefined) => Buffer.from(value ?? "", "base64").toString();

/** Serves just enough discovery for the aggregator to call an APIService available. */
function discoveryServer(holder: ServingCertHolder, groups: () => string[]): Server {
  const server = createServer((req, res) => {
    const group = groups().find((g) => req.url === `/apis/${g}/v1alpha1`);
    res.setHeader("Content-Type", "application/json");
    if (group) {
      res.end(
        JSON.stringify({
          kind: "APIResourceList",
          apiVersion: "v1",
          groupVersion: `${group}/v1alpha1`,
          resources: [],
        }),
      );
    } else if (req.url === "/apis") {
      const list = groups().map((name) => {
        const version = { groupVersion: `${name}/v1alpha1`, version: "v1alpha1" };
        return { name, versions: [version], preferredVersion: version };
      });
      res.end(JSON.stringify({ kind: "APIGroupList", apiVersion: "v1", groups: list }));
    } else {
      res.statusCode = 404;
      res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code: 404 }));
    }
  });
  holder.onChange((cert) => server.setSecureContext({ cert: cert.certPEM, key: cert.keyPEM }));
  return server;
}

describe("apicerts controllers against the real API server", () => {
  let c: TestCluster;
  let admin: KubeRestClient;
  let ns: string;
  let foreignNs: string;
  let secretName: string;
  let ourGroup: string;
  let foreignGroup: string;
  let webhookName: string;
  let manager: Manager;
  let running: Promise<void>;
  let server: Server;
  let port: number;
  let deployment: { apiVersion: string; kind: string; name: string; uid: string };
  const holder = new ServingCertHolder();
  const stop = new AbortController();
  const { log, lines } = memoryLogger("debug");
  const labels = { app: "pinniped-concierge", [label]: "yes" };

  const ourAPIService = () => `v1alpha1.${ourGroup}`;
  const foreignAPIService = () => `v1alpha1.${foreignGroup}`;
  const secretPath = () => `/api/v1/namespaces/${ns}/secrets/${secretName}`;
  const getSecret = () => admin.request<SecretObject>({ method: "GET", path: secretPath() });
  const getAPIService = (name: string) =>
    admin.request<APIServiceObject & { status?: { conditions?: { type: string; status: string }[] } }>({
      method: "GET",
      path: `${apiServicesPath}/${name}`,
    });
  const getWebhooks = () =>
    admin.request<WebhookConfigurationObject>({ method: "GET", path: `${webhooksPath}/${webhookName}` });

  const externalNameService = (namespace: string) =>
    admin.request({
      method: "POST",
      path: `/api/v1/namespaces/${namespace}/services`,
      body: {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: serviceName, namespace },
        spec: { type: "ExternalName", externalName: "localhost" },
      },
    });

  const apiServiceBody = (group: string, namespace: string, extra: Record<string, unknown> = {}) => ({
    apiVersion: "apiregistration.k8s.io/v1",
    kind: "APIService",
    metadata: { name: `v1alpha1.${group}`, labels: { [label]: "yes" } },
    spec: {
      group,
      version: "v1alpha1",
      groupPriorityMinimum: 100,
      versionPriority: 10,
      service: { namespace, name: serviceName, port },
      ...extra,
    },
  });

  /** The Secret once it differs from `previous` (by uid), with its pair loaded into the holder. */
  async function rotatedFrom(previous: SecretObject): Promise<SecretObject> {
    return eventually(
      "a new Secret, loaded into the holder",
      async () => {
        const s = await getSecret();
        const loaded = holder.get()?.certPEM === decode(s.data?.tlsCertificateChain);
        return s.metadata?.uid !== previous.metadata?.uid && loaded ? s : undefined;
      },
      polling,
    );
  }

  async function assertServedThroughAggregator(secret: SecretObject): Promise<void> {
    await eventually(
      "the APIService's caBundle to follow the Secret",
      async () => {
        const a = await getAPIService(ourAPIService());
        return a.spec?.caBundle === secret.data?.caCertificate;
      },
      polling,
    );
    // kube-apiserver proxies to us only when it trusts the CA and the SAN; it may take a moment
    // to drop a connection or transport built for the previous CA.
    await eventually(
      "discovery through the aggregator",
      async () => {
        const res = await c.kubectl(["get", "--raw", `/apis/${ourGroup}/v1alpha1`]);
        return res.code === 0 && JSON.parse(res.stdout).groupVersion === `${ourGroup}/v1alpha1`;
      },
      { ...polling, timeoutMs: 90_000 },
    );
  }

  before(async () => {
    c = await testCluster();
    admin = new KubeRestClient(c.kubeConfig());
    ns = await c.newNamespace("apicerts");
    foreignNs = await c.newNamespace("apicerts-foreign");
    secretName = c.uniqueName("pinniped-concierge-api-tls-serving-certificate");
    ourGroup = `${c.uniqueName("ours")}.test.concierge.dev`;
    foreignGroup = `${c.uniqueName("foreign")}.test.concierge.dev`;
    webhookName = c.uniqueName("apicerts-authenticators");

    server = discoveryServer(holder, () => [ourGroup, foreignGroup]);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;

    await externalNameService(ns);
    await externalNameService(foreignNs);
    await admin.request({ method: "POST", path: apiServicesPath, body: apiServiceBody(ourGroup, ns) });
    // Another install's APIService: served too (without verification), so it never shows up as
    // unavailable in other tests' discovery, and a caBundle would be refused next to insecureSkipTLSVerify.
    await admin.request({
      method: "POST",
      path: apiServicesPath,
      body: apiServiceBody(foreignGroup, foreignNs, { insecureSkipTLSVerify: true }),
    });
    const webhook = (name: string, namespace: string) => ({
      name,
      admissionReviewVersions: ["v1"],
      clientConfig: { service: { namespace, name: serviceName, path: "/validate", port } },
      // Matches nothing that exists, and would be ignored if it did.
      rules: [
        {
          apiGroups: [ourGroup],
          apiVersions: ["v1alpha1"],
          operations: ["CREATE"],
          resources: ["nothings"],
          scope: "Cluster",
        },
      ],
      failurePolicy: "Ignore",
      sideEffects: "None",
      timeoutSeconds: 5,
    });
    await admin.request({
      method: "POST",
      path: webhooksPath,
      body: {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "ValidatingWebhookConfiguration",
        metadata: { name: webhookName, labels: { [label]: "yes" } },
        webhooks: [webhook(`ours.${ourGroup}`, ns), webhook(`foreign.${ourGroup}`, foreignNs)],
      },
    });
    const created = await admin.request<{ metadata: { name: string; uid: string } }>({
      method: "POST",
      path: `/apis/apps/v1/namespaces/${ns}/deployments`,
      body: {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "pinniped-concierge" },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: "concierge" } },
          template: {
            metadata: { labels: { app: "concierge" } },
            spec: { containers: [{ name: "concierge", image: "concierge:test" }] },
          },
        },
      },
    });
    deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: created.metadata.name,
      uid: created.metadata.uid,
    };

    manager = managerFromKubeConfig(c.kubeConfig(), {
      identity: "apicerts-test",
      leaseNamespace: ns,
      leaseName: c.uniqueName("apicerts"),
      leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      log,
    });
    registerApiCerts(manager, {
      namespace: ns,
      secretName,
      serviceName,
      apiServiceNames: [ourAPIService(), foreignAPIService()],
      webhookConfigurationName: webhookName,
      servingCertHolder: holder,
      durationSeconds: 3600,
      // Above the 5-minute back-dating of NotBefore, so a fresh certificate is not rotated at once.
      renewBeforeSeconds: 600,
      labels,
      extraSANs: ["localhost", "127.0.0.1"],
      ownerReference: deployment,
    });
    running = manager.run(stop.signal);
  });

  after(async () => {
    stop.abort();
    await running;
    // Before the server goes, so that they never show up as unavailable in others' discovery.
    await c.kubectl(["delete", "apiservices", "-l", label, "--ignore-not-found"]);
    // The aggregator keeps connections open; they would hold the process for their idle timeout.
    server.close();
    server.closeAllConnections();
    await c.kubectl(["delete", "validatingwebhookconfigurations", "-l", label, "--ignore-not-found"]);
    await c.kubectl(["delete", "namespace", ns, foreignNs, "--wait=false"]);
  });

  it("creates the Secret with upstream's keys, the labels, the owner reference and the SANs", async () => {
    const secret = await eventually("the Secret", () => getSecret(), polling);
    assert.deepEqual(Object.keys(secret.data ?? {}).sort(), [
      "caCertificate",
      "caCertificatePrivateKey",
      "tlsCertificateChain",
      "tlsPrivateKey",
    ]);
    assert.equal(secret.type, "Opaque");
    for (const [k, v] of Object.entries(labels)) assert.equal(secret.metadata?.labels?.[k], v);
    assert.deepEqual(
      (secret.metadata?.ownerReferences as unknown[] | undefined)?.map((r) => {
        const { apiVersion, kind, name, uid } = r as Record<string, unknown>;
        return { apiVersion, kind, name, uid };
      }),
      [deployment],
    );

    const ca = new X509Certificate(decode(secret.data?.caCertificate));
    assert.equal(ca.subject, "CN=Pinniped Aggregation CA");
    assert.ok(ca.ca);
    const leaf = new X509Certificate(decode(secret.data?.tlsCertificateChain));
    assert.equal(
      leaf.subjectAltName,
      `DNS:${serviceName}.${ns}.svc, DNS:${serviceName}.${ns}.svc.cluster.local, DNS:localhost, IP Address:127.0.0.1`,
    );
    assert.ok(leaf.verify(ca.publicKey));
    assert.equal((leaf.validToDate.getTime() - leaf.validFromDate.getTime()) / 1000, 3600 + 300);
    assert.match(decode(secret.data?.caCertificatePrivateKey), /^-----BEGIN EC PRIVATE KEY-----/);
    assert.match(decode(secret.data?.tlsPrivateKey), /^-----BEGIN PRIVATE KEY-----/);
  });

  it("loads the serving pair into the holder", async () => {
    const secret = await getSecret();
    await eventually("the pair in the holder", () => holder.get(), polling);
    assert.deepEqual(holder.get(), {
      certPEM: decode(secret.data?.tlsCertificateChain),
      keyPEM: decode(secret.data?.tlsPrivateKey),
    });
  });

  it("copies the CA into our APIService and our webhook only, and the aggregator then trusts us", async () => {
    const secret = await getSecret();
    await assertServedThroughAggregator(secret);
    const available = await eventually(
      "our APIService Available",
      async () => {
        const a = await getAPIService(ourAPIService());
        return a.status?.conditions?.some((cond) => cond.type === "Available" && cond.status === "True") && a;
      },
      polling,
    );
    assert.ok(available);

    const foreign = await getAPIService(foreignAPIService());
    assert.deepEqual(foreign.spec, {
      ...apiServiceBody(foreignGroup, foreignNs, { insecureSkipTLSVerify: true }).spec,
    });

    const config = await eventually(
      "our webhook's caBundle",
      async () => {
        const w = await getWebhooks();
        return w.webhooks?.[0]?.clientConfig?.caBundle === secret.data?.caCertificate ? w : undefined;
      },
      polling,
    );
    assert.equal(config.webhooks?.[1]?.clientConfig?.caBundle, undefined);
    assert.deepEqual(
      lines.filter((l) => String(l.message).startsWith("sync failed")),
      [],
    );
  });

  it("rotates everything when the Secret is deleted, keeping the labels", async () => {
    const before = await getSecret();
    await admin.request({ method: "DELETE", path: secretPath() });
    const after = await rotatedFrom(before);
    for (const key of ["caCertificate", "caCertificatePrivateKey", "tlsCertificateChain", "tlsPrivateKey"]) {
      assert.notEqual(after.data?.[key], before.data?.[key], key);
    }
    for (const [k, v] of Object.entries(labels)) assert.equal(after.metadata?.labels?.[k], v);
    await assertServedThroughAggregator(after);
    await eventually(
      "the webhook's caBundle to follow",
      async () => {
        const w = await getWebhooks();
        return w.webhooks?.[0]?.clientConfig?.caBundle === after.data?.caCertificate;
      },
      polling,
    );
  });

  it("rotates automatically when the certificate in the Secret is older than renewBeforeSeconds", async () => {
    const before = await getSecret();
    // A certificate issued an hour ago for two hours: still valid, but 65 minutes old.
    const hourAgo = { now: () => Date.now() - 3_600_000, randomBytes };
    const ca = await CertificateAuthority.create("aged", 2 * 3_600_000, hourAgo);
    const aged = await issueServingCertificate(ca, { dnsNames: ["aged.example"] }, 2 * 3_600_000, hourAgo);
    await admin.request({
      method: "PATCH",
      path: secretPath(),
      contentType: "application/merge-patch+json",
      body: { data: { tlsCertificateChain: Buffer.from(aged.certPEM).toString("base64") } },
    });
    const after = await rotatedFrom(before);
    assert.notEqual(after.data?.caCertificate, before.data?.caCertificate);
    const leaf = new X509Certificate(decode(after.data?.tlsCertificateChain));
    assert.ok(Date.now() - leaf.validFromDate.getTime() < 6 * 60_000, "a fresh certificate");
    await assertServedThroughAggregator(after);
    assert.ok(
      lines.some(
        (l) => l.message === "deleted the serving certificate Secret to rotate it" && l.why === "aged",
      ),
    );
  });

  it("rotates on its own timer, not on an event, once a certificate reaches renewBeforeSeconds", async () => {
    // A second set of controllers with its own Secret, no APIServices, and a renewBefore just
    // past the 5-minute back-dating: each certificate is due about 5 seconds after its issuance.
    const name = c.uniqueName("timed-serving-cert");
    const timedStop = new AbortController();
    const timed = managerFromKubeConfig(c.kubeConfig(), {
      identity: "apicerts-timed",
      leaseNamespace: ns,
      leaseName: c.uniqueName("apicerts-timed"),
      leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      log,
    });
    registerApiCerts(timed, {
      namespace: ns,
      secretName: name,
      serviceName,
      apiServiceNames: [],
      servingCertHolder: new ServingCertHolder(),
      durationSeconds: 3600,
      renewBeforeSeconds: 305,
    });
    const timedRunning = timed.run(timedStop.signal);
    try {
      const path = `/api/v1/namespaces/${ns}/secrets/${name}`;
      const first = await eventually(
        "the timed Secret",
        () => admin.request<SecretObject>({ method: "GET", path }),
        polling,
      );
      const notBefore = new X509Certificate(decode(first.data?.tlsCertificateChain)).validFromDate.getTime();
      const due = notBefore + 305_000;
      const replaced = await eventually(
        "the timed Secret replaced",
        async () => {
          try {
            const s = await admin.request<SecretObject>({ method: "GET", path });
            return s.metadata?.uid !== first.metadata?.uid ? s : undefined;
          } catch (err) {
            if (isNotFound(err)) return undefined;
            throw err;
          }
        },
        { ...polling, timeoutMs: 20_000 },
      );
      assert.ok(replaced);
      // When it was due: not before (NotBefore has whole seconds, so due is never late), and not
      // much after, which only the requeue timer can do as no event happens in between.
      const deletion = lines.find(
        (l) => l.message === "deleted the serving certificate Secret to rotate it" && l.secretName === name,
      );
      assert.ok(deletion, "the expirer logged the rotation");
      const deletedAt = Date.parse(String(deletion.timestamp));
      assert.ok(deletedAt >= due, `${deletion.timestamp} is not before ${new Date(due).toISOString()}`);
      assert.ok(
        deletedAt < due + 3_000,
        `${deletion.timestamp} is soon after ${new Date(due).toISOString()}`,
      );
    } finally {
      timedStop.abort();
      await timedRunning;
    }
  });
});
