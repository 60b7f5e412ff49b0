import assert from "node:assert/strict";
import { randomBytes, X509Certificate } from "node:crypto";
import { afterEach, describe, it } from "node:test";
import { ServingCertHolder } from "../../certs/servingcert.ts";
import { FakeClock, settle } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Controller } from "../runtime/controller.ts";
import { leaderOnlyClient, NotLeaderError } from "../runtime/leaderelection.ts";
import { apiStatusError, FakeInformer, FakeRestClient, type RecordedRequest } from "../runtime/testing.ts";
import { type ApiCertsDeps, apiCertsControllers, generateServingMaterial } from "./controllers.ts";
import {
  type APIServiceObject,
  newServingSecret,
  type SecretObject,
  servingNames,
  type WebhookConfigurationObject,
} from "./decide.ts";

const ns = "concierge";
const secretName = "pinniped-concierge-api-tls-serving-certificate";
const secretsPath = `/api/v1/namespaces/${ns}/secrets`;
const minute = 60_000;
const decode = (v: string | undefined) => Buffer.from(v ?? "", "base64").toString();

const apiService = (name: string, namespace: string): APIServiceObject => ({
  metadata: { name, resourceVersion: "1" },
  spec: { group: name, service: { namespace, name: "pinniped-concierge-api", port: 443 } },
});

const webhookConfig: WebhookConfigurationObject = {
  metadata: { name: "pinniped-concierge-authenticators", resourceVersion: "1" },
  webhooks: [
    { name: "jwt", clientConfig: { service: { namespace: ns, name: "pinniped-concierge-api" } } },
    { name: "elsewhere", clientConfig: { service: { namespace: "other", name: "api" } } },
  ],
};

/** Waits in real time: key generation and signing run on the thread pool, not on the fake clock. */
async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A serving Secret issued at `clock`'s time, as certs-manager would write it. */
async function servingSecret(clock: FakeClock, ttlMs = 60 * minute): Promise<SecretObject> {
  const material = await generateServingMaterial(servingNames("pinniped-concierge-api", ns, []), ttlMs, {
    now: () => clock.now(),
    randomBytes,
  });
  const secret = newServingSecret({ name: secretName, namespace: ns, labels: {} }, material);
  return { ...secret, metadata: { ...secret.metadata, uid: "uid-0", resourceVersion: "7" } };
}

const stops: AbortController[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop.abort();
  await settle();
});

function fixture(options: {
  clock?: FakeClock;
  secrets?: SecretObject[];
  deps?: Partial<ApiCertsDeps>;
  webhook?: boolean;
}) {
  const clock = options.clock ?? new FakeClock();
  const { log, lines } = memoryLogger();
  const secrets = new FakeInformer<SecretObject>({ objects: options.secrets ?? [] });
  const apiServices = new FakeInformer<APIServiceObject>({
    objects: [apiService("v1alpha1.ours.test", ns), apiService("v1alpha1.foreign.test", "other")],
  });
  const webhookConfigurations = new FakeInformer<WebhookConfigurationObject>({ objects: [webhookConfig] });
  const rest = new FakeRestClient();
  let uid = 0;
  // The API server and the informers: created and deleted Secrets reach the cache.
  rest.react((r) => {
    if (r.method === "POST" && r.path === secretsPath) {
      const body = r.json as SecretObject;
      const created = { ...body, metadata: { ...body.metadata, uid: `uid-${++uid}`, resourceVersion: "1" } };
      secrets.upsert(created);
      return created;
    }
    if (r.method === "DELETE" && r.path === `${secretsPath}/${secretName}`) {
      secrets.remove(secretName, ns);
      return {};
    }
    return undefined;
  });
  const state = { leading: true };
  const client = leaderOnlyClient(rest, {
    assertLeader() {
      if (!state.leading) throw new NotLeaderError();
    },
  });
  const holder = new ServingCertHolder();
  const controllers = apiCertsControllers(
    {
      secrets,
      apiServices,
      ...(options.webhook === false ? {} : { webhookConfigurations }),
      client,
      clock,
      controller: (o) => new Controller({ ...o, clock, log }),
    },
    {
      namespace: ns,
      secretName,
      serviceName: "pinniped-concierge-api",
      apiServiceNames: ["v1alpha1.ours.test", "v1alpha1.foreign.test", "v1alpha1.missing.test"],
      ...(options.webhook === false ? {} : { webhookConfigurationName: "pinniped-concierge-authenticators" }),
      servingCertHolder: holder,
      durationSeconds: 3600,
      renewBeforeSeconds: 600,
      labels: { app: "pinniped-concierge", extra: "yes" },
      extraSANs: ["localhost", "127.0.0.1"],
      ...options.deps,
    },
  );
  const stop = new AbortController();
  stops.push(stop);
  for (const c of controllers) void c.run(stop.signal);
  const writes = (method: string, path?: string) =>
    rest.writes().filter((r) => r.method === method && (path === undefined || r.path === path));
  const failures = () => lines.filter((l) => String(l.message).startsWith("sync failed"));
  return { clock, secrets, apiServices, rest, holder, state, lines, writes, failures };
}

const current = (f: ReturnType<typeof fixture>) => f.secrets.get(secretName, ns);

describe("apicerts controllers", () => {
  it("create the missing Secret, load its pair, and copy its CA to our APIService and webhooks only", async () => {
    const owner = { apiVersion: "apps/v1", kind: "Deployment", name: "pinniped-concierge", uid: "d-1" };
    const f = fixture({ deps: { ownerReference: owner } });
    await until("the CA in the APIService", () => f.writes("PATCH").length === 2);
    await settle(20);

    const [post, ...morePosts] = f.writes("POST", secretsPath);
    assert.ok(post);
    assert.equal(morePosts.length, 0);
    const secret = post.json as SecretObject;
    assert.deepEqual(secret.metadata, {
      name: secretName,
      namespace: ns,
      labels: { app: "pinniped-concierge", extra: "yes" },
      ownerReferences: [owner],
    });
    assert.deepEqual(Object.keys(secret.data ?? {}).sort(), [
      "caCertificate",
      "caCertificatePrivateKey",
      "tlsCertificateChain",
      "tlsPrivateKey",
    ]);
    const ca = new X509Certificate(decode(secret.data?.caCertificate));
    assert.equal(ca.subject, "CN=Pinniped Aggregation CA");
    assert.ok(ca.ca);
    assert.match(decode(secret.data?.caCertificatePrivateKey), /^-----BEGIN EC PRIVATE KEY-----/);
    assert.match(decode(secret.data?.tlsPrivateKey), /^-----BEGIN PRIVATE KEY-----/);
    const leaf = new X509Certificate(decode(secret.data?.tlsCertificateChain));
    assert.equal(
      leaf.subjectAltName,
      "DNS:pinniped-concierge-api.concierge.svc, DNS:pinniped-concierge-api.concierge.svc.cluster.local, " +
        "DNS:localhost, IP Address:127.0.0.1",
    );
    assert.ok(leaf.verify(ca.publicKey));
    assert.equal(leaf.validToDate.getTime() - leaf.validFromDate.getTime(), 65 * minute);

    assert.deepEqual(f.holder.get(), {
      certPEM: decode(secret.data?.tlsCertificateChain),
      keyPEM: decode(secret.data?.tlsPrivateKey),
    });

    const patches = f.writes("PATCH");
    const toAPIService = patches.find((p) => p.path.includes("apiservices"));
    assert.equal(toAPIService?.path, "/apis/apiregistration.k8s.io/v1/apiservices/v1alpha1.ours.test");
    assert.equal(toAPIService?.contentType, "application/merge-patch+json");
    assert.deepEqual(toAPIService?.json, { spec: { caBundle: secret.data?.caCertificate } });
    const toWebhook = patches.find((p) => p.path.includes("validatingwebhookconfigurations"));
    assert.equal(
      toWebhook?.path,
      "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/pinniped-concierge-authenticators",
    );
    assert.equal(toWebhook?.contentType, "application/json-patch+json");
    assert.deepEqual(toWebhook?.json, [
      { op: "test", path: "/webhooks/0/name", value: "jwt" },
      { op: "add", path: "/webhooks/0/clientConfig/caBundle", value: secret.data?.caCertificate },
    ]);
    assert.deepEqual(f.failures(), []);
    // The private keys never reached a log line.
    assert.doesNotMatch(JSON.stringify(f.lines), /PRIVATE KEY-----\\n[A-Za-z0-9+/]/);
  });

  it("never touches an existing Secret, and an APIService already up to date is not patched", async () => {
    const clock = new FakeClock();
    const existing = await servingSecret(clock);
    const f = fixture({ clock, secrets: [existing], webhook: false });
    f.apiServices.upsert({
      ...apiService("v1alpha1.ours.test", ns),
      spec: { service: { namespace: ns }, caBundle: existing.data?.caCertificate },
    });
    await until("the pair loaded", () => f.holder.get() !== undefined);
    await settle(20);
    assert.deepEqual(f.rest.writes(), []);
    assert.equal(f.holder.get()?.certPEM, decode(existing.data?.tlsCertificateChain));
  });

  it("copies the CA into an APIService created after the Secret", async () => {
    const clock = new FakeClock();
    const f = fixture({ clock, secrets: [await servingSecret(clock)], webhook: false });
    await until("the first patch", () => f.writes("PATCH").length === 1);
    f.apiServices.upsert(apiService("v1alpha1.missing.test", ns));
    await until("the late APIService patched", () =>
      f.writes("PATCH").some((p) => p.path.endsWith("/v1alpha1.missing.test")),
    );
  });

  it("reverts a caBundle edited by hand", async () => {
    const clock = new FakeClock();
    const existing = await servingSecret(clock);
    const f = fixture({ clock, secrets: [existing], webhook: false });
    await until("the first patch", () => f.writes("PATCH").length === 1);
    f.apiServices.upsert({
      ...apiService("v1alpha1.ours.test", ns),
      spec: { service: { namespace: ns }, caBundle: Buffer.from("edited").toString("base64") },
    });
    await until("the second patch", () => f.writes("PATCH").length === 2);
    assert.deepEqual(f.writes("PATCH")[1]?.json, { spec: { caBundle: existing.data?.caCertificate } });
  });

  it("keeps serving the last pair while a deleted Secret is being recreated", async () => {
    const clock = new FakeClock();
    const existing = await servingSecret(clock);
    const f = fixture({ clock, secrets: [existing], webhook: false });
    await until("the pair loaded", () => f.holder.get() !== undefined);
    f.state.leading = false; // So that certs-manager cannot recreate it yet.
    f.secrets.remove(secretName, ns);
    await until("the observer to see the deletion", () =>
      f.lines.some((l) => l.message === "serving certificate Secret does not exist yet or was deleted"),
    );
    assert.equal(f.holder.get()?.certPEM, decode(existing.data?.tlsCertificateChain));
  });

  it("takes a Secret that already exists (a stale cache) as done", async () => {
    const clock = new FakeClock();
    const f = fixture({ clock, webhook: false });
    f.rest.react((r) => {
      if (r.method === "POST") throw apiStatusError(409, "AlreadyExists");
      return undefined;
    });
    await until("the create attempt", () => f.writes("POST").length === 1);
    await settle(20);
    assert.deepEqual(f.failures(), []);
  });

  it("rotates on time: deletes the Secret (with preconditions) once it is renewBefore old, then recreates it", async () => {
    const clock = new FakeClock();
    const first = await servingSecret(clock);
    const f = fixture({ clock, secrets: [first], webhook: false });
    await until("the pair loaded", () => f.holder.get() !== undefined);
    await settle(20);
    // Issued now, NotBefore back-dated 5 minutes: 10 minutes old 5 minutes from now.
    await clock.advance(5 * minute - 1_000);
    await settle(20);
    assert.deepEqual(f.writes("DELETE"), []);

    await clock.advance(1_000);
    await until("the deletion", () => f.writes("DELETE").length === 1);
    assert.deepEqual(f.writes("DELETE")[0]?.json, {
      apiVersion: "v1",
      kind: "DeleteOptions",
      preconditions: { uid: "uid-0", resourceVersion: "7" },
    });
    await until("the replacement loaded", () => {
      const now = current(f);
      return now !== undefined && f.holder.get()?.certPEM === decode(now.data?.tlsCertificateChain);
    });
    const second = current(f);
    assert.notEqual(second?.data?.caCertificate, first.data?.caCertificate);
    assert.notEqual(second?.data?.tlsPrivateKey, first.data?.tlsPrivateKey);
    await until("the new CA in the APIService", () =>
      f
        .writes("PATCH")
        .some((p: RecordedRequest) => JSON.stringify(p.json).includes(second?.data?.caCertificate ?? "-")),
    );
    assert.deepEqual(f.failures(), []);
  });

  it("rotates an expired certificate at once", async () => {
    const clock = new FakeClock();
    const expired = await servingSecret(new FakeClock(clock.now() - 2 * 60 * minute));
    const f = fixture({ clock, secrets: [expired], webhook: false });
    await until("the deletion", () => f.writes("DELETE").length === 1);
  });

  it("neither rotates nor retries a Secret whose certificate does not parse", async () => {
    const clock = new FakeClock();
    const broken = await servingSecret(clock);
    const f = fixture({
      clock,
      secrets: [{ ...broken, data: { ...broken.data, tlsCertificateChain: "bm90IFBFTQ==" } }],
      webhook: false,
    });
    await until("the terminal error", () => f.lines.some((l) => l.message === "sync failed; not retrying"));
    const line = f.lines.find(
      (l) => l.controller === "certs-expirer" && l.message === "sync failed; not retrying",
    );
    assert.match(
      JSON.stringify(line),
      /failed to get cert bounds for secret \\"pinniped-concierge-api-tls-serving-certificate\\": failed to decode certificate PEM/,
    );
    await clock.advance(60 * minute);
    await settle(20);
    assert.deepEqual(f.writes("DELETE"), []);
  });

  it("keeps the holder's pair when the Secret's key does not match its certificate", async () => {
    const clock = new FakeClock();
    const good = await servingSecret(clock);
    const other = await servingSecret(clock);
    const f = fixture({ clock, secrets: [good], webhook: false });
    await until("the pair loaded", () => f.holder.get() !== undefined);
    f.secrets.upsert({ ...good, data: { ...good.data, tlsPrivateKey: other.data?.tlsPrivateKey ?? "" } });
    await until("the terminal error", () =>
      f.lines.some((l) => l.controller === "certs-observer" && l.message === "sync failed; not retrying"),
    );
    assert.equal(f.holder.get()?.keyPEM, decode(good.data?.tlsPrivateKey));
    assert.doesNotMatch(JSON.stringify(f.lines), /PRIVATE KEY-----\\n[A-Za-z0-9+/]/);
  });

  it("on a follower loads the pair but writes nothing; the writes follow once it leads", async () => {
    const clock = new FakeClock();
    const aged = await servingSecret(new FakeClock(clock.now() - 30 * minute));
    const f = fixture({ clock, secrets: [aged], webhook: false });
    f.state.leading = false;
    await until("the pair loaded", () => f.holder.get() !== undefined);
    await settle(20);
    assert.deepEqual(f.rest.writes(), []);
    assert.deepEqual(f.failures(), []);

    f.state.leading = true;
    await clock.advance(1_000);
    await until("the deletion by the new leader", () => f.writes("DELETE").length === 1);
  });

  it("on a follower creates nothing and logs no error; the Secret comes once it leads", async () => {
    const clock = new FakeClock();
    const f = fixture({ clock, webhook: false });
    f.state.leading = false;
    await settle(20);
    await clock.advance(1_000);
    assert.deepEqual(f.rest.writes(), []);
    assert.deepEqual(f.failures(), []);
    f.state.leading = true;
    await clock.advance(5_000);
    await until("the Secret", () => f.writes("POST").length === 1);
  });

  it("refuses durations upstream's config validation refuses", () => {
    const env = {
      secrets: new FakeInformer<SecretObject>(),
      apiServices: new FakeInformer<APIServiceObject>(),
      client: new FakeRestClient(),
      clock: new FakeClock(),
      controller: (o: ConstructorParameters<typeof Controller>[0]) => new Controller(o),
    };
    const deps = {
      namespace: ns,
      secretName,
      serviceName: "api",
      apiServiceNames: [],
      servingCertHolder: new ServingCertHolder(),
    };
    assert.throws(
      () => apiCertsControllers(env, { ...deps, durationSeconds: 10, renewBeforeSeconds: 20 }),
      /^Error: durationSeconds cannot be smaller than renewBeforeSeconds$/,
    );
    assert.throws(
      () => apiCertsControllers(env, { ...deps, durationSeconds: 10, renewBeforeSeconds: 0 }),
      /^Error: renewBefore must be positive$/,
    );
  });
});
