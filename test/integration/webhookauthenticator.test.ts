// The WebhookAuthenticator reconciler in-process against the real API server, with a real TLS
// TokenReview webhook of the test's own: upstream's condition sets, CA bundles from Secrets
// and ConfigMaps, status edits reverted, eviction, and logins through the cached authenticator.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { WebhookAuthenticator } from "../../apis/index.ts";
import { AuthenticatorCache, authenticationGroup } from "../../authenticators/cache.ts";
import type { WebhookTokenAuthenticator } from "../../authenticators/webhook/authenticator.ts";
import type { Condition } from "../../controllers/runtime/conditions.ts";
import { type Manager, managerFromKubeConfig } from "../../controllers/runtime/manager.ts";
import { register } from "../../controllers/webhookauthenticator/reconciler.ts";
import { newCA } from "../../hack/pki.ts";
import { isNotFound, KubeRestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import {
  startTokenReviewWebhook,
  type TokenReviewWebhook,
  unusedPort,
} from "../harness/tokenreview-webhook.ts";

const waPath = "/apis/authentication.concierge.pinniped.dev/v1alpha1/webhookauthenticators";
const alice = { username: "alice", groups: ["devs", "ops"] };
const WEBHOOK_TIMEOUT_MS = 500;

type Expected = Pick<Condition, "type" | "status" | "reason" | "message">;

const unableToValidate = (type: string): Expected => ({
  type,
  status: "Unknown",
  reason: "UnableToValidate",
  message: "unable to validate; see other conditions for details",
});
const notReady: Expected = {
  type: "Ready",
  status: "False",
  reason: "NotReady",
  message: "the WebhookAuthenticator is not ready: see other conditions for details",
};

/** Upstream's allSuccessfulWebhookAuthenticatorConditions, with `replace` applied by type. */
function conditionSet(
  replace: Expected[] = [],
  tlsMessage = "spec.tls is valid: using configured CA bundle",
): Expected[] {
  const all: Expected[] = [
    { type: "AuthenticatorValid", status: "True", reason: "Success", message: "authenticator initialized" },
    { type: "EndpointURLValid", status: "True", reason: "Success", message: "spec.endpoint is a valid URL" },
    { type: "Ready", status: "True", reason: "Success", message: "the WebhookAuthenticator is ready" },
    { type: "TLSConfigurationValid", status: "True", reason: "Success", message: tlsMessage },
    {
      type: "WebhookConnectionValid",
      status: "True",
      reason: "Success",
      message: "successfully dialed webhook server",
    },
  ];
  return all.map((c) => replace.find((r) => r.type === c.type) ?? c);
}

// How long and how often this file waited before eventually was shared: its tests keep that timing.
const polling = { timeoutMs: 30_000, intervalMs: 100 };

async function metric(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const data = await metrics.registry.getSingleMetric(`concierge_${name}`)?.get();
  return (data?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("WebhookAuthenticator reconciler against the real API server", () => {
  let c: TestCluster;
  let admin: KubeRestClient;
  let namespace: string;
  let webhook: TokenReviewWebhook;
  let modes: TokenReviewWebhook;
  let cache: AuthenticatorCache;
  let manager: Manager;
  let running: Promise<void>;
  const stop = new AbortController();
  const created: string[] = [];
  const { log, lines } = memoryLogger("debug");

  before(async () => {
    c = await testCluster();
    admin = new KubeRestClient(c.kubeConfig());
    namespace = await c.newNamespace("concierge");
    [webhook, modes] = await Promise.all([
      startTokenReviewWebhook({ users: { "alice-token": alice } }),
      startTokenReviewWebhook({ users: { "alice-token": alice } }),
    ]);
    cache = new AuthenticatorCache();
    manager = managerFromKubeConfig(c.kubeConfig(), {
      identity: "webhookauthenticator-test",
      leaseNamespace: namespace,
      leaseName: "concierge",
      leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      log,
    });
    register(manager, {
      cache,
      namespace,
      webhook: { timeoutMs: WEBHOOK_TIMEOUT_MS, retry: { initialMs: 20 } },
    });
    running = manager.run(stop.signal);
    await eventually("leadership", () => manager.leader.isLeader(), polling);
  });

  after(async () => {
    stop.abort();
    await running;
    await Promise.all(
      created.map((name) => admin.request({ method: "DELETE", path: `${waPath}/${name}` }).catch(() => {})),
    );
    await c.kubectl(["delete", "namespace", namespace, "--wait=false"]);
    await Promise.all([webhook.close(), modes.close()]);
    assert.ok(!JSON.stringify(lines).includes("alice-token"), "no token reaches a log line");
  });

  async function create(spec: WebhookAuthenticator["spec"]): Promise<string> {
    const name = c.uniqueName("webhook");
    created.push(name);
    await admin.request({
      method: "POST",
      path: waPath,
      body: {
        apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
        kind: "WebhookAuthenticator",
        metadata: { name },
        spec,
      },
    });
    return name;
  }

  const get = (name: string) =>
    admin.request<WebhookAuthenticator>({ method: "GET", path: `${waPath}/${name}` });

  /** Waits until the status carries exactly `expected` (sorted by type) for the current generation. */
  async function waitForConditions(
    name: string,
    expected: Expected[],
    phase: string,
  ): Promise<WebhookAuthenticator> {
    let seen: unknown;
    try {
      return await eventually(
        `conditions of ${name}`,
        async () => {
          const wa = await get(name);
          seen = wa.status;
          const got = (wa.status?.conditions ?? []).map(
            ({ type, status, reason, message, observedGeneration }) => ({
              type,
              status,
              reason,
              message,
              observedGeneration,
            }),
          );
          const want = expected.map((e) => ({ ...e, observedGeneration: wa.metadata?.generation }));
          return JSON.stringify(got) === JSON.stringify(want) && wa.status?.phase === phase ? wa : undefined;
        },
        polling,
      );
    } catch (err) {
      assert.deepEqual(seen, { conditions: expected, phase }, (err as Error).message);
      throw err;
    }
  }

  const cached = (name: string) =>
    cache.get({ apiGroup: authenticationGroup, kind: "WebhookAuthenticator", name })?.authenticator as
      | WebhookTokenAuthenticator
      | undefined;

  it("a healthy authenticator becomes Ready with upstream's conditions and authenticates tokens", async () => {
    const name = await create({ endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } });
    await waitForConditions(name, conditionSet(), "Ready");
    // What a GitOps pipeline runs after applying the authenticator.
    const waited = await c.kubectl([
      "wait",
      "--for=condition=Ready",
      `webhookauthenticator/${name}`,
      "--timeout=30s",
    ]);
    assert.equal(waited.code, 0, waited.stderr);
    const authenticator = await eventually("the cached authenticator", () => cached(name), polling);
    const before = webhook.requests.length;
    assert.deepEqual(await authenticator.authenticateToken("alice-token"), {
      authenticated: true,
      user: alice,
    });
    assert.deepEqual(webhook.requests.at(-1), {
      method: "POST",
      path: "/authenticate",
      contentType: "application/json",
      apiVersion: "authentication.k8s.io/v1beta1",
      kind: "TokenReview",
      token: "alice-token",
      audiences: undefined,
    });
    assert.deepEqual(await authenticator.authenticateToken("alice-token"), {
      authenticated: true,
      user: alice,
    });
    assert.equal(webhook.requests.length, before + 1, "the second login is answered from the success cache");
    assert.deepEqual(await authenticator.authenticateToken("mallory-token"), {
      authenticated: false,
      reason: "webhook did not authenticate the token: unknown token",
    });
  });

  it("a CA that did not sign the webhook's certificate fails the dial", async () => {
    const dir = await mkdtemp(join(tmpdir(), "concierge-wa-"));
    const other = await readFile((await newCA(dir, "other", "some-other-ca", "ec")).cert);
    await rm(dir, { recursive: true, force: true });
    const name = await create({
      endpoint: webhook.url,
      tls: { certificateAuthorityData: other.toString("base64") },
    });
    await waitForConditions(
      name,
      conditionSet([
        unableToValidate("AuthenticatorValid"),
        notReady,
        {
          type: "WebhookConnectionValid",
          status: "False",
          reason: "UnableToDialServer",
          message:
            "cannot dial server: tls: failed to verify certificate: x509: certificate signed by unknown authority",
        },
      ]),
      "Error",
    );
    assert.equal(cached(name), undefined);
  });

  it("an endpoint nothing listens on fails the dial with connection refused", async () => {
    const port = await unusedPort();
    const name = await create({
      endpoint: `https://127.0.0.1:${port}/some-fake-endpoint`,
      tls: { certificateAuthorityData: webhook.caBase64 },
    });
    await waitForConditions(
      name,
      conditionSet([
        unableToValidate("AuthenticatorValid"),
        notReady,
        {
          type: "WebhookConnectionValid",
          status: "False",
          reason: "UnableToDialServer",
          message: `cannot dial server: dial tcp 127.0.0.1:${port}: connect: connection refused`,
        },
      ]),
      "Error",
    );
  });

  it("an endpoint the CRD admits but whose port is out of range is InvalidEndpointURL, and nothing is dialled", async () => {
    const name = await create({
      endpoint: "https://127.0.0.1:69999/some/fake/path",
      tls: { certificateAuthorityData: webhook.caBase64 },
    });
    await waitForConditions(
      name,
      conditionSet([
        unableToValidate("AuthenticatorValid"),
        {
          type: "EndpointURLValid",
          status: "False",
          reason: "InvalidEndpointURL",
          message: 'spec.endpoint URL is not valid: invalid port "69999"',
        },
        notReady,
        unableToValidate("WebhookConnectionValid"),
      ]),
      "Error",
    );
    assert.equal(cached(name), undefined);
  });

  it("CA data that is not base64 is reported, and nothing downstream is validated", async () => {
    const name = await create({
      endpoint: webhook.url,
      tls: { certificateAuthorityData: "invalid base64-encoded data" },
    });
    await waitForConditions(
      name,
      [
        unableToValidate("AuthenticatorValid"),
        {
          type: "EndpointURLValid",
          status: "True",
          reason: "Success",
          message: "spec.endpoint is a valid URL",
        },
        notReady,
        {
          type: "TLSConfigurationValid",
          status: "False",
          reason: "InvalidTLSConfig",
          message: "spec.tls.certificateAuthorityData is invalid: illegal base64 data at input byte 7",
        },
        unableToValidate("WebhookConnectionValid"),
      ],
      "Error",
    );
  });

  const sources = [
    { kind: "Secret" as const, type: "kubernetes.io/tls", label: "a TLS Secret" },
    { kind: "Secret" as const, type: "Opaque", label: "an Opaque Secret" },
    { kind: "ConfigMap" as const, type: undefined, label: "a ConfigMap" },
  ];
  for (const source of sources) {
    it(`follows a CA bundle in ${source.label}: missing → Ready → broken → Ready`, async () => {
      const objectName = c.uniqueName("ca-bundle");
      const resource = source.kind === "Secret" ? "secrets" : "configmaps";
      const objectPath = `/api/v1/namespaces/${namespace}/${resource}`;
      const body = (ca: string) =>
        source.kind === "Secret"
          ? {
              metadata: { name: objectName },
              type: source.type,
              data: {
                "ca.crt": Buffer.from(ca).toString("base64"),
                ...(source.type === "kubernetes.io/tls"
                  ? {
                      "tls.crt": Buffer.from(webhook.servingCertPEM).toString("base64"),
                      "tls.key": Buffer.from(webhook.servingKeyPEM).toString("base64"),
                    }
                  : {}),
              },
            }
          : { metadata: { name: objectName }, data: { "ca.crt": ca } };
      const name = await create({
        endpoint: webhook.url,
        tls: { certificateAuthorityDataSource: { kind: source.kind, name: objectName, key: "ca.crt" } },
      });
      const kindWord = source.kind.toLowerCase();
      const broken = (message: string) =>
        conditionSet([
          unableToValidate("AuthenticatorValid"),
          notReady,
          { type: "TLSConfigurationValid", status: "False", reason: "InvalidTLSConfig", message },
          unableToValidate("WebhookConnectionValid"),
        ]);
      await waitForConditions(
        name,
        broken(
          `spec.tls.certificateAuthorityDataSource is invalid: failed to get ${kindWord} "${namespace}/${objectName}": ${kindWord} "${objectName}" not found`,
        ),
        "Error",
      );

      await admin.request({ method: "POST", path: objectPath, body: body(webhook.caPEM) });
      await waitForConditions(name, conditionSet(), "Ready");
      const authenticator = await eventually("the cached authenticator", () => cached(name), polling);
      assert.equal((await authenticator.authenticateToken("alice-token")).authenticated, true);

      const garbage = "this is not a valid CA bundle value";
      await admin.request({ method: "PUT", path: `${objectPath}/${objectName}`, body: body(garbage) });
      await waitForConditions(
        name,
        broken(
          `spec.tls.certificateAuthorityDataSource is invalid: key "ca.crt" with ${garbage.length} bytes of data in ${kindWord} "${namespace}/${objectName}" is not a PEM-encoded certificate (PEM certificates must begin with "-----BEGIN CERTIFICATE-----")`,
        ),
        "Error",
      );
      assert.equal(cached(name), undefined, "a broken authenticator is evicted");

      await admin.request({ method: "PUT", path: `${objectPath}/${objectName}`, body: body(webhook.caPEM) });
      await waitForConditions(name, conditionSet(), "Ready");
      await eventually("the cached authenticator", () => cached(name), polling);
    });
  }

  it("a server-side apply of the same file twice writes nothing the second time, status included", async () => {
    const name = c.uniqueName("gitops");
    created.push(name);
    const file = JSON.stringify({
      apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
      kind: "WebhookAuthenticator",
      metadata: { name },
      spec: { endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } },
    });
    const kubectl = (verb: string[]) =>
      c.kubectl([...verb, "--server-side", "--field-manager=gitops-test", "-f", "-"], { input: file });
    const first = await kubectl(["apply"]);
    assert.equal(first.code, 0, first.stderr);
    await waitForConditions(name, conditionSet(), "Ready");
    await eventually("the cached authenticator", () => cached(name), polling);
    const settled = await get(name);
    const again = await kubectl(["apply", "-o", "jsonpath={.metadata.resourceVersion}"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, settled.metadata?.resourceVersion);
    const diff = await kubectl(["diff"]);
    assert.equal(diff.code, 0, `kubectl diff found drift:\n${diff.stdout}${diff.stderr}`);
  });

  it("reverts manual edits of the status", async () => {
    const name = await create({ endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } });
    const ready = await waitForConditions(name, conditionSet(), "Ready");
    const conditions = structuredClone(ready.status?.conditions ?? []);
    const original = conditions[0]?.message;
    assert.ok(conditions[0]);
    conditions[0].message = "this is a manually edited message that should go away";
    await admin.request({
      method: "PATCH",
      path: `${waPath}/${name}/status`,
      contentType: "application/merge-patch+json",
      body: { status: { phase: "Pending", conditions } },
    });
    const restored = await waitForConditions(name, conditionSet(), "Ready");
    assert.equal(restored.status?.conditions?.[0]?.message, original);
    assert.equal(
      restored.status?.conditions?.[0]?.lastTransitionTime,
      ready.status?.conditions?.[0]?.lastTransitionTime,
      "an unchanged condition status keeps its transition time",
    );
  });

  it("evicts a deleted authenticator from the cache", async () => {
    const name = await create({ endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } });
    await waitForConditions(name, conditionSet(), "Ready");
    const authenticator = await eventually("the cached authenticator", () => cached(name), polling);
    await admin.request({ method: "DELETE", path: `${waPath}/${name}` });
    await eventually(
      "the deletion",
      () =>
        get(name).then(
          () => undefined,
          (err) => isNotFound(err) || undefined,
        ),
      polling,
    );
    await eventually("eviction", () => cached(name) === undefined, polling);
    assert.deepEqual(await authenticator.authenticateToken("alice-token"), {
      authenticated: false,
      reason: "the authenticator was closed",
    });
  });

  describe("webhook failure modes, through the cached authenticator", () => {
    let authenticator: WebhookTokenAuthenticator;

    before(async () => {
      const name = await create({ endpoint: modes.url, tls: { certificateAuthorityData: modes.caBase64 } });
      await waitForConditions(name, conditionSet(), "Ready");
      authenticator = await eventually("the cached authenticator", () => cached(name), polling);
    });

    it("a slow webhook times out", async () => {
      modes.behave({ mode: "slow", delayMs: 3_000 });
      const started = Date.now();
      assert.deepEqual(await authenticator.authenticateToken("alice-token"), {
        authenticated: false,
        reason: `webhook did not answer within ${WEBHOOK_TIMEOUT_MS} ms`,
      });
      assert.ok(Date.now() - started < 2_500, "the timeout was not retried");
    });

    it("5xx answers are retried until the webhook answers", async () => {
      const retries = await metric(manager.metrics, "webhook_authenticator_retries_total");
      const before = modes.requests.length;
      modes.behave({ mode: "fail-then-ok", failures: 2, status: 503 });
      assert.deepEqual(await authenticator.authenticateToken("alice-token"), {
        authenticated: true,
        user: alice,
      });
      assert.equal(modes.requests.length, before + 3);
      assert.equal(await metric(manager.metrics, "webhook_authenticator_retries_total"), retries + 2);
    });

    it("a webhook that speaks only v1 is asked in v1 from then on", async () => {
      modes.behave({ mode: "v1-only" });
      assert.equal(authenticator.version, "v1beta1");
      assert.deepEqual(await authenticator.authenticateToken("other-token-1"), {
        authenticated: false,
        reason: "webhook did not authenticate the token: unknown token",
      });
      assert.equal(authenticator.version, "v1");
      assert.deepEqual(
        modes.requests.slice(-2).map((r) => r.apiVersion),
        ["authentication.k8s.io/v1beta1", "authentication.k8s.io/v1"],
      );
    });
  });
});
