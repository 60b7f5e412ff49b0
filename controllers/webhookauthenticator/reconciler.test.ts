import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { beforeEach, describe, it } from "node:test";
import { AuthenticatorCache, authenticationGroup } from "../../authenticators/cache.ts";
import { WebhookTokenAuthenticator } from "../../authenticators/webhook/authenticator.ts";
import { FakeClock, rfc3339 } from "../../kube/clock.ts";
import type { KubeObject } from "../../kube/resource.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import type { Condition } from "../runtime/conditions.ts";
import { isTerminal, type SyncContext } from "../runtime/controller.ts";
import { StatusWriter } from "../runtime/status.ts";
import { apiStatusError, FakeInformer, FakeRestClient } from "../runtime/testing.ts";
import type { DialOptions } from "./dial.ts";
import type { HostPort } from "./endpoint.ts";
import { fingerprint, newSyncer, referencedBy, type WebhookAuthenticatorObject } from "./reconciler.ts";

const caPEM = readFileSync(new URL("../../authenticators/tls/testdata/ca.pem", import.meta.url), "utf8");
const caBase64 = Buffer.from(caPEM).toString("base64");
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const endpoint = "https://127.0.0.1:8443/authenticate";
const namespace = "concierge";
const statusPath = "/apis/authentication.concierge.pinniped.dev/v1alpha1/webhookauthenticators/wa/status";
const key = { apiGroup: authenticationGroup, kind: "WebhookAuthenticator", name: "wa" };

function webhookAuthenticator(
  spec: WebhookAuthenticatorObject["spec"],
  generation = 1,
): WebhookAuthenticatorObject {
  return {
    apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
    kind: "WebhookAuthenticator",
    metadata: { name: "wa", generation, resourceVersion: "1" },
    spec,
  };
}

function condition(
  type: string,
  status: string,
  reason: string,
  message: string,
  time: string,
  generation = 1,
) {
  return { type, status, reason, message, lastTransitionTime: time, observedGeneration: generation };
}

function happy(time: string, tlsMessage = "spec.tls is valid: using configured CA bundle"): Condition[] {
  return [
    condition("AuthenticatorValid", "True", "Success", "authenticator initialized", time),
    condition("EndpointURLValid", "True", "Success", "spec.endpoint is a valid URL", time),
    condition("Ready", "True", "Success", "the WebhookAuthenticator is ready", time),
    condition("TLSConfigurationValid", "True", "Success", tlsMessage, time),
    condition("WebhookConnectionValid", "True", "Success", "successfully dialed webhook server", time),
  ] as Condition[];
}

describe("webhookcachefiller sync", () => {
  let webhooks: FakeInformer<WebhookAuthenticatorObject>;
  let secrets: FakeInformer;
  let configMaps: FakeInformer;
  let rest: FakeRestClient;
  let cache: AuthenticatorCache;
  let clock: FakeClock;
  let dials: { target: HostPort; options: DialOptions }[];
  let dialError: string | undefined;
  let sync: ReturnType<typeof newSyncer>;
  const { log } = memoryLogger("error");

  beforeEach(() => {
    webhooks = new FakeInformer();
    secrets = new FakeInformer();
    configMaps = new FakeInformer();
    rest = new FakeRestClient();
    cache = new AuthenticatorCache();
    clock = new FakeClock();
    dials = [];
    dialError = undefined;
    sync = newSyncer({
      webhooks,
      secrets,
      configMaps,
      status: new StatusWriter({ client: rest }),
      cache,
      namespace,
      clock,
      dial: async (target, options) => {
        dials.push({ target, options });
        if (dialError) throw new Error(dialError);
      },
      dialTimeoutMs: 1_000,
      webhook: { timeoutMs: 1_000 },
      metrics: new Metrics(),
      log,
    });
  });

  const run = async (name = "wa") =>
    sync({
      key: name,
      signal: new AbortController().signal,
      log,
      queue: { add: () => {}, addAfter: () => {} },
    } satisfies SyncContext);

  /** The status part of the last merge patch written. */
  function lastStatus(): { conditions: Condition[]; phase: string } {
    const patch = rest.writes().at(-1)?.json as
      | { status: { conditions: Condition[]; phase: string } }
      | undefined;
    assert.ok(patch);
    return patch.status;
  }

  /** The status the last write produced, as the informer would then see it. */
  function acceptLastWrite(): WebhookAuthenticatorObject {
    const current = webhooks.get("wa");
    const patch = rest.writes().at(-1)?.json as { status: Record<string, unknown> };
    assert.ok(current && patch);
    const status: Record<string, unknown> = { ...current.status };
    for (const [k, v] of Object.entries(patch.status)) {
      if (v === null) delete status[k];
      else status[k] = v;
    }
    const next = { ...structuredClone(current), status } as WebhookAuthenticatorObject;
    webhooks.upsert(next);
    return next;
  }

  it("validates, writes upstream's exact conditions, and caches only after the write", async () => {
    webhooks.upsert(webhookAuthenticator({ endpoint, tls: { certificateAuthorityData: caBase64 } }));
    let cachedDuringWrite: unknown = "not written";
    rest.react((r) => {
      if (r.method === "PATCH") cachedDuringWrite = cache.get(key);
      return undefined;
    });
    assert.equal(await run(), undefined);

    assert.equal(dials.length, 1);
    assert.deepEqual(dials[0]?.target, { host: "127.0.0.1", port: 8443 });
    assert.equal(dials[0]?.options.caPEM, caPEM);
    assert.equal(dials[0]?.options.timeoutMs, 1_000);
    const now = rfc3339(clock.now());
    assert.deepEqual(
      rest.writes().map((w) => [w.method, w.path, w.contentType, w.json]),
      [
        [
          "PATCH",
          statusPath,
          "application/merge-patch+json",
          { metadata: { resourceVersion: "1" }, status: { conditions: happy(now), phase: "Ready" } },
        ],
      ],
    );
    assert.equal(cachedDuringWrite, undefined, "not cached before the status was written");
    const entry = cache.get(key);
    assert.ok(entry?.authenticator instanceof WebhookTokenAuthenticator);
    assert.equal(entry.fingerprint, fingerprint(endpoint, { pem: caPEM, sha256: sha256(caPEM) }));
    // An absent systemPrefixPolicy is Allow; changing it to Reject rebuilds the authenticator.
    const bundle = { pem: caPEM, sha256: sha256(caPEM) };
    assert.equal(fingerprint(endpoint, bundle, "Allow"), fingerprint(endpoint, bundle));
    assert.notEqual(fingerprint(endpoint, bundle, "Reject"), fingerprint(endpoint, bundle));

    // The informer catches up: nothing to validate again, nothing to write, same authenticator.
    acceptLastWrite();
    clock.step(60_000);
    await run();
    assert.equal(dials.length, 1);
    assert.equal(rest.writes().length, 1);
    assert.equal(cache.get(key)?.authenticator, entry.authenticator);
  });

  it("reverts manual status edits without validating again", async () => {
    webhooks.upsert(webhookAuthenticator({ endpoint, tls: { certificateAuthorityData: caBase64 } }));
    await run();
    const written = acceptLastWrite();
    const time = rfc3339(clock.now());
    const edited = structuredClone(written);
    edited.status = {
      phase: "Pending",
      conditions: (edited.status?.conditions ?? []).map((c, i) =>
        i === 0 ? { ...c, message: "edited" } : c,
      ),
    };
    webhooks.upsert(edited);
    clock.step(5_000);
    await run();
    assert.equal(dials.length, 1);
    assert.deepEqual(rest.writes().at(-1)?.json, {
      metadata: { resourceVersion: "1" },
      status: { conditions: happy(time), phase: "Ready" },
    });
  });

  it("removes a failing authenticator from the cache before writing its status, and retries the dial", async () => {
    webhooks.upsert(webhookAuthenticator({ endpoint, tls: { certificateAuthorityData: caBase64 } }));
    await run();
    const written = acceptLastWrite();
    const old = cache.get(key)?.authenticator;
    assert.ok(old);

    webhooks.upsert({
      ...written,
      metadata: { ...written.metadata, generation: 2 },
      spec: { endpoint: "https://127.0.0.1:9443/x", tls: { certificateAuthorityData: caBase64 } },
    });
    dialError = "dial tcp 127.0.0.1:9443: connect: connection refused";
    let cachedDuringWrite: unknown = "not written";
    rest.react((r) => {
      if (r.method === "PATCH") cachedDuringWrite = cache.get(key);
      return undefined;
    });
    clock.step(1_000);
    await assert.rejects(run(), {
      message: "cannot dial server: dial tcp 127.0.0.1:9443: connect: connection refused",
    });
    assert.equal(cachedDuringWrite, undefined);
    assert.equal(cache.get(key), undefined);
    assert.deepEqual(await old.authenticateToken("t"), {
      authenticated: false,
      reason: "the authenticator was closed",
    });
    const status = lastStatus();
    assert.equal(status.phase, "Error");
    const later = rfc3339(clock.now());
    const first = rfc3339(clock.now() - 1_000);
    assert.deepEqual(status.conditions, [
      condition(
        "AuthenticatorValid",
        "Unknown",
        "UnableToValidate",
        "unable to validate; see other conditions for details",
        later,
        2,
      ),
      condition("EndpointURLValid", "True", "Success", "spec.endpoint is a valid URL", first, 2),
      condition(
        "Ready",
        "False",
        "NotReady",
        "the WebhookAuthenticator is not ready: see other conditions for details",
        later,
        2,
      ),
      condition(
        "TLSConfigurationValid",
        "True",
        "Success",
        "spec.tls is valid: using configured CA bundle",
        first,
        2,
      ),
      condition(
        "WebhookConnectionValid",
        "False",
        "UnableToDialServer",
        "cannot dial server: dial tcp 127.0.0.1:9443: connect: connection refused",
        later,
        2,
      ),
    ]);
  });

  it("reports invalid CA data without dialing and without a retry", async () => {
    webhooks.upsert(
      webhookAuthenticator({ endpoint, tls: { certificateAuthorityData: "invalid base64-encoded data" } }),
    );
    assert.equal(await run(), undefined);
    assert.equal(dials.length, 0);
    const now = rfc3339(clock.now());
    assert.deepEqual(rest.writes().at(-1)?.json, {
      metadata: { resourceVersion: "1" },
      status: {
        conditions: [
          condition(
            "AuthenticatorValid",
            "Unknown",
            "UnableToValidate",
            "unable to validate; see other conditions for details",
            now,
          ),
          condition("EndpointURLValid", "True", "Success", "spec.endpoint is a valid URL", now),
          condition(
            "Ready",
            "False",
            "NotReady",
            "the WebhookAuthenticator is not ready: see other conditions for details",
            now,
          ),
          condition(
            "TLSConfigurationValid",
            "False",
            "InvalidTLSConfig",
            "spec.tls.certificateAuthorityData is invalid: illegal base64 data at input byte 7",
            now,
          ),
          condition(
            "WebhookConnectionValid",
            "Unknown",
            "UnableToValidate",
            "unable to validate; see other conditions for details",
            now,
          ),
        ],
        phase: "Error",
      },
    });
    assert.equal(cache.size, 0);
  });

  it("follows a CA bundle Secret: missing, then present, then changed", async () => {
    const tls = { certificateAuthorityDataSource: { kind: "Secret" as const, name: "ca", key: "ca.crt" } };
    webhooks.upsert(webhookAuthenticator({ endpoint, tls }));
    const secret = (pem: string): KubeObject => ({
      metadata: { name: "ca", namespace },
      type: "Opaque",
      data: { "ca.crt": Buffer.from(pem).toString("base64") },
    });
    const route = referencedBy(webhooks, "Secret");
    assert.deepEqual(route({ type: "add", obj: secret(caPEM) }), ["wa"]);
    assert.deepEqual(route({ type: "add", obj: { metadata: { name: "other", namespace } } }), []);
    assert.deepEqual(
      referencedBy(webhooks, "ConfigMap")({ type: "add", obj: { metadata: { name: "ca", namespace } } }),
      [],
    );

    await run();
    const missing = lastStatus().conditions;
    assert.equal(
      missing.find((c) => c.type === "TLSConfigurationValid")?.message,
      `spec.tls.certificateAuthorityDataSource is invalid: failed to get secret "${namespace}/ca": secret "ca" not found`,
    );
    assert.equal(dials.length, 0);
    acceptLastWrite();

    secrets.upsert(secret(caPEM));
    await run();
    assert.equal(dials.length, 1);
    assert.equal(lastStatus().phase, "Ready");
    const first = cache.get(key)?.authenticator;
    assert.ok(first);
    acceptLastWrite();

    // Another bundle (here: the same certificate twice) means a new hash: validate and rebuild.
    const writes = rest.writes().length;
    secrets.upsert(secret(caPEM + caPEM));
    await run();
    assert.equal(dials.length, 2);
    assert.equal(rest.writes().length, writes, "the status did not change");
    assert.notEqual(cache.get(key)?.authenticator, first);
    assert.deepEqual(await first.authenticateToken("t"), {
      authenticated: false,
      reason: "the authenticator was closed",
    });
  });

  it("does not cache, and closes, an authenticator whose status could not be written", async () => {
    webhooks.upsert(webhookAuthenticator({ endpoint }));
    rest.react((r) => {
      if (r.method === "PATCH") throw apiStatusError(500, "InternalError");
      return undefined;
    });
    await assert.rejects(run(), { message: "InternalError" });
    assert.equal(cache.size, 0);
    assert.equal(dials[0]?.options.caPEM, undefined, "no CA configured: system roots");
  });

  it("evicts a deleted authenticator", async () => {
    webhooks.upsert(webhookAuthenticator({ endpoint }));
    await run();
    const authenticator = cache.get(key)?.authenticator;
    assert.ok(authenticator);
    webhooks.remove("wa");
    await run();
    assert.equal(cache.get(key), undefined);
    assert.deepEqual(await authenticator.authenticateToken("t"), {
      authenticated: false,
      reason: "the authenticator was closed",
    });
  });

  it("reports an endpoint Go accepts but Node cannot send to, without retrying", async () => {
    webhooks.upsert(webhookAuthenticator({ endpoint: "https://256.1.1.1/" }));
    const err = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isTerminal(err));
    const status = lastStatus();
    assert.deepEqual(
      status.conditions.find((c) => c.type === "AuthenticatorValid"),
      condition(
        "AuthenticatorValid",
        "False",
        "UnableToCreateClient",
        "unable to create client for this webhook: Invalid URL",
        rfc3339(clock.now()),
      ),
    );
    assert.equal(cache.size, 0);
  });
});
