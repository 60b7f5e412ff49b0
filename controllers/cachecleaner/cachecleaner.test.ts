import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AuthenticatorCache,
  type AuthenticatorKey,
  authenticationGroup,
} from "../../authenticators/cache.ts";
import type { TokenAuthenticator } from "../../authenticators/types.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { Controller } from "../runtime/controller.ts";
import { eventually, FakeInformer } from "../runtime/testing.ts";
import { cacheCleanerController } from "./cachecleaner.ts";

function closable(): TokenAuthenticator & { closed: boolean } {
  return {
    closed: false,
    authenticateToken: async () => ({ authenticated: false, reason: "fake" }),
    close() {
      this.closed = true;
    },
  };
}

const object = (name: string) => ({ metadata: { name } });
const jwtKey = (name: string): AuthenticatorKey => ({
  apiGroup: authenticationGroup,
  kind: "JWTAuthenticator",
  name,
});
const webhookKey = (name: string): AuthenticatorKey => ({
  apiGroup: authenticationGroup,
  kind: "WebhookAuthenticator",
  name,
});

function fixture() {
  const cache = new AuthenticatorCache();
  const jwts = new FakeInformer({ objects: [object("jwt-one")] });
  const webhooks = new FakeInformer({ objects: [object("webhook-one")] });
  const metrics = new Metrics();
  const { log, lines } = memoryLogger();
  const controller = cacheCleanerController(
    {
      informers: { JWTAuthenticator: jwts, WebhookAuthenticator: webhooks },
      metrics,
      controller: (o) => new Controller({ ...o, log, metrics }),
    },
    cache,
  );
  const keys = () =>
    cache
      .keys()
      .map((k) => `${k.apiGroup}/${k.kind}/${k.name}`)
      .sort();
  return { cache, jwts, webhooks, metrics, lines, controller, keys };
}

describe("cachecleaner", () => {
  it("evicts and closes the authenticators whose object is gone, and nothing else", async () => {
    const f = fixture();
    const values = {
      jwtOne: closable(),
      jwtTwo: closable(),
      webhookOne: closable(),
      webhookTwo: closable(),
      otherKind: closable(),
      otherGroup: closable(),
    };
    f.cache.store(jwtKey("jwt-one"), { authenticator: values.jwtOne, fingerprint: "" });
    f.cache.store(jwtKey("jwt-two"), { authenticator: values.jwtTwo, fingerprint: "" });
    f.cache.store(webhookKey("webhook-one"), { authenticator: values.webhookOne, fingerprint: "" });
    f.cache.store(webhookKey("webhook-two"), { authenticator: values.webhookTwo, fingerprint: "" });
    f.cache.store(
      { apiGroup: authenticationGroup, kind: "SomethingElse", name: "x" },
      { authenticator: values.otherKind, fingerprint: "" },
    );
    f.cache.store(
      { apiGroup: "example.com", kind: "JWTAuthenticator", name: "jwt-two" },
      { authenticator: values.otherGroup, fingerprint: "" },
    );

    const ac = new AbortController();
    const running = f.controller.run(ac.signal);
    try {
      await eventually(() => f.cache.size === 4);
      assert.deepEqual(f.keys(), [
        `${authenticationGroup}/JWTAuthenticator/jwt-one`,
        `${authenticationGroup}/SomethingElse/x`,
        `${authenticationGroup}/WebhookAuthenticator/webhook-one`,
        "example.com/JWTAuthenticator/jwt-two",
      ]);
      assert.deepEqual(
        Object.entries(values)
          .filter(([, v]) => v.closed)
          .map(([k]) => k),
        ["jwtTwo", "webhookTwo"],
      );
      const deleted = f.lines.filter((l) => l.message === "deleting authenticator from cache");
      assert.deepEqual(deleted.map((l) => [l.authenticator, l.kind]).sort(), [
        ["jwt-two", "JWTAuthenticator"],
        ["webhook-two", "WebhookAuthenticator"],
      ]);

      // A deletion, and a store that lands after its object is gone, are both caught.
      f.jwts.remove("jwt-one");
      await eventually(() => values.jwtOne.closed);
      const late = closable();
      f.cache.store(webhookKey("deleted-meanwhile"), { authenticator: late, fingerprint: "" });
      await eventually(() => late.closed);
      assert.deepEqual(f.keys(), [
        `${authenticationGroup}/SomethingElse/x`,
        `${authenticationGroup}/WebhookAuthenticator/webhook-one`,
        "example.com/JWTAuthenticator/jwt-two",
      ]);
      const evictions = await f.metrics.registry
        .getSingleMetric("concierge_authenticator_cache_cleaner_evictions_total")
        ?.get();
      assert.deepEqual(Object.fromEntries((evictions?.values ?? []).map((v) => [v.labels.kind, v.value])), {
        JWTAuthenticator: 2,
        WebhookAuthenticator: 2,
      });
    } finally {
      ac.abort();
      await running;
    }
  });
});
