// Upstream's cachecleaner: evicts (and so closes) every cached authenticator whose
// JWTAuthenticator or WebhookAuthenticator is gone. The fillers evict on the deletions they see
// themselves; this catches the rest, e.g. an object deleted while this replica was not watching.
import {
  type AuthenticatorCache,
  type AuthenticatorKind,
  authenticationGroup,
} from "../../authenticators/cache.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { Controller, ControllerOptions, Syncer } from "../runtime/controller.ts";
import { singletonKey } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";

/** Every event re-checks the whole cache, which holds one entry per authenticator: cheap. */
const key = "authenticator-cache";

export interface CacheCleanerEnv {
  informers: Record<AuthenticatorKind, InformerSource>;
  metrics: Metrics;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

export function cacheCleanerController(env: CacheCleanerEnv, cache: AuthenticatorCache): Controller {
  const evictions = env.metrics.counter({
    name: "authenticator_cache_cleaner_evictions_total",
    help: "Cached authenticators evicted because their JWTAuthenticator or WebhookAuthenticator is gone.",
    labelNames: ["kind"] as const,
  });
  const informers: Partial<Record<string, InformerSource>> = env.informers;

  const sync: Syncer = ({ log }) => {
    for (const cached of cache.keys()) {
      // Entries of other groups or kinds belong to someone else.
      const informer = cached.apiGroup === authenticationGroup ? informers[cached.kind] : undefined;
      if (!informer || informer.get(cached.name)) continue;
      log.info("deleting authenticator from cache", { authenticator: cached.name, kind: cached.kind });
      cache.delete(cached);
      evictions.inc({ kind: cached.kind });
    }
    return undefined;
  };

  const controller = env
    .controller({ name: "cachecleaner", sync })
    .withInformer(env.informers.JWTAuthenticator, singletonKey(key))
    .withInformer(env.informers.WebhookAuthenticator, singletonKey(key))
    .withInitialEvent(key);
  // A filler that was still validating when its object was deleted may store after the deletion
  // event has gone by; looking again at every store closes that gap.
  cache.onChange((_, entry) => {
    if (entry) controller.enqueue(key);
  });
  return controller;
}

/** Registers the cleaner with `manager`; it watches both authenticator kinds. */
export function register(manager: Manager, deps: { cache: AuthenticatorCache }): Controller {
  const authenticators = (resource: string) =>
    manager.informers.informer({ group: authenticationGroup, version: "v1alpha1", resource });
  return cacheCleanerController(
    {
      informers: {
        JWTAuthenticator: authenticators("jwtauthenticators"),
        WebhookAuthenticator: authenticators("webhookauthenticators"),
      },
      metrics: manager.metrics,
      controller: (options) => manager.controller(options),
    },
    deps.cache,
  );
}
