// The webhookcachefiller reconciler: validates each WebhookAuthenticator, records the outcome
// as conditions, and keeps a ready token authenticator for it in the AuthenticatorCache.

import type { WebhookAuthenticator } from "../../apis/index.ts";
import {
  type AuthenticatorCache,
  type AuthenticatorKey,
  authenticationGroup,
} from "../../authenticators/cache.ts";
import { type CABundle, type CABundleLookups, resolveCABundle } from "../../authenticators/tls/cabundle.ts";
import {
  WebhookTokenAuthenticator,
  type WebhookTokenAuthenticatorOptions,
} from "../../authenticators/webhook/authenticator.ts";
import type { Clock } from "../../kube/clock.ts";
import { type KubeObject, keyOf, type ResourceRef } from "../../kube/resource.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { mergeConditions } from "../runtime/conditions.ts";
import { type Controller, type Filter, type Syncer, TerminalError } from "../runtime/controller.ts";
import { ownKey } from "../runtime/filters.ts";
import type { Lister } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import type { StatusWriter } from "../runtime/status.ts";
import { type Check, decide, needsProbe } from "./decide.ts";
import { type Dialer, defaultDialTimeoutMs, tlsDial } from "./dial.ts";
import { validateEndpoint } from "./endpoint.ts";

export const controllerName = "webhookcachefiller-controller";

export type WebhookAuthenticatorObject = WebhookAuthenticator & KubeObject;

export const webhookAuthenticatorsResource: ResourceRef = {
  group: authenticationGroup,
  version: "v1alpha1",
  resource: "webhookauthenticators",
};

/** Settings of the token authenticators this reconciler builds (timeouts, retries, caching). */
export type WebhookClientSettings = Omit<
  WebhookTokenAuthenticatorOptions,
  "name" | "endpoint" | "caPEM" | "clock" | "metrics" | "log"
>;

export interface WebhookAuthenticatorDeps {
  cache: AuthenticatorCache;
  /** The Concierge namespace: CA bundle Secrets and ConfigMaps are read from here only. */
  namespace: string;
  /** Defaults to the manager's clock. */
  clock?: Clock;
  /** The WebhookConnectionValid probe; a real TLS dial unless a test injects one. */
  dial?: Dialer;
  /** Upstream's 30 s. */
  dialTimeoutMs?: number;
  webhook?: WebhookClientSettings;
  /** Sync this many WebhookAuthenticators at once, so one slow dial does not hold up the rest. */
  workers?: number;
}

/** What one sync reads and writes: informer listers, the status writer and the cache. */
export interface SyncerParts {
  webhooks: Lister<WebhookAuthenticatorObject>;
  secrets: Lister<KubeObject>;
  configMaps: Lister<KubeObject>;
  status: Pick<StatusWriter, "write">;
  cache: AuthenticatorCache;
  namespace: string;
  clock: Clock;
  dial: Dialer;
  dialTimeoutMs: number;
  webhook: WebhookClientSettings;
  metrics: Metrics;
  log: Logger;
}

/** What a cached authenticator was built from: a different value means it must be rebuilt. */
export function fingerprint(
  endpoint: string,
  bundle: CABundle | undefined,
  systemPrefixPolicy: "Reject" | "Allow" = "Allow",
): string {
  return JSON.stringify([
    endpoint,
    bundle?.sha256 ?? "",
    ...(systemPrefixPolicy === "Reject" ? ["Reject"] : []),
  ]);
}

function cacheKey(name: string): AuthenticatorKey {
  return { apiGroup: authenticationGroup, kind: "WebhookAuthenticator", name };
}

/**
 * One WebhookAuthenticator per key (upstream syncs them all under one singleton key; per-key
 * syncs give the same result with per-object retries). Order of effects, as upstream: a
 * failing authenticator leaves the cache before its status is written; a new one enters the
 * cache only after its status was written or found already right, so a follower, whose writes
 * are refused, caches only what the leader has already published.
 */
export function newSyncer(parts: SyncerParts): Syncer {
  const lookups: CABundleLookups = {
    secret: (namespace, name) => parts.secrets.get(name, namespace) as ReturnType<CABundleLookups["secret"]>,
    configMap: (namespace, name) =>
      parts.configMaps.get(name, namespace) as ReturnType<CABundleLookups["configMap"]>,
  };
  return async ({ key, signal, log }) => {
    const ref = cacheKey(key);
    const cached = parts.cache.get(ref);
    const wa = parts.webhooks.get(key);
    if (!wa) {
      if (cached) {
        parts.cache.delete(ref);
        log.info("webhook authenticator deleted; removed from cache");
      }
      return undefined;
    }

    const tls = resolveCABundle(wa.spec?.tls, "spec.tls", parts.namespace, lookups);
    const endpoint = validateEndpoint(wa.spec?.endpoint ?? "");
    const systemPrefixPolicy = wa.spec?.systemPrefixPolicy ?? "Allow";
    const print = fingerprint(wa.spec?.endpoint ?? "", tls.bundle, systemPrefixPolicy);
    const alreadyValidated = tls.condition.status === "True" && cached?.fingerprint === print;
    let dial: Check | undefined;
    let client: Check | undefined;
    let built: WebhookTokenAuthenticator | undefined;
    if (endpoint.ok && needsProbe({ tls: tls.condition, endpoint, alreadyValidated })) {
      try {
        await parts.dial(endpoint.hostPort, {
          caPEM: tls.bundle?.pem,
          signal,
          timeoutMs: parts.dialTimeoutMs,
        });
        dial = { ok: true };
      } catch (err) {
        dial = { ok: false, message: (err as Error).message };
      }
      if (dial.ok) {
        try {
          built = new WebhookTokenAuthenticator({
            ...parts.webhook,
            name: key,
            endpoint: wa.spec.endpoint,
            caPEM: tls.bundle?.pem,
            systemPrefixPolicy,
            clock: parts.clock,
            metrics: parts.metrics,
            log: parts.log,
          });
          client = { ok: true };
        } catch (err) {
          client = { ok: false, message: (err as Error).message };
        }
      }
    } else if (alreadyValidated) {
      log.debug(
        "cached webhook authenticator and desired webhook authenticator are the same: skipping validations",
      );
    }

    const decision = decide({ tls: tls.condition, endpoint, alreadyValidated, dial, client });
    if (!decision.valid && cached) {
      parts.cache.delete(ref);
      log.info("invalid webhook authenticator; removed from cache");
    }
    const { conditions } = mergeConditions(
      wa.status?.conditions,
      decision.conditions,
      wa.metadata?.generation ?? 0,
      parts.clock.now(),
      log,
    );
    try {
      await parts.status.write(
        webhookAuthenticatorsResource,
        wa,
        { ...wa.status, conditions, phase: decision.phase },
        signal,
      );
    } catch (err) {
      built?.close();
      throw err;
    }
    if (built) {
      parts.cache.store(ref, { authenticator: built, fingerprint: print });
      log.info("added or updated webhook authenticator in cache", { isOverwrite: cached !== undefined });
    }

    // Network failures may heal by themselves: retry with backoff, as upstream returns them.
    if (dial && !dial.ok) throw new Error(`cannot dial server: ${dial.message}`);
    // A URL Node cannot send to stays that way until the spec changes, which syncs again.
    if (client && !client.ok)
      throw new TerminalError(`unable to create client for this webhook: ${client.message}`);
    return undefined;
  };
}

/** Routes a CA Secret or ConfigMap change to the authenticators that name it. */
export function referencedBy(
  webhooks: Lister<WebhookAuthenticatorObject>,
  kind: "Secret" | "ConfigMap",
): Filter<KubeObject> {
  return (event) => {
    const names = new Set([
      event.obj.metadata?.name,
      event.type === "update" ? event.old.metadata?.name : "",
    ]);
    return webhooks
      .list()
      .filter((wa) => {
        const source = wa.spec?.tls?.certificateAuthorityDataSource;
        return source?.kind === kind && names.has(source.name);
      })
      .map(keyOf);
  };
}

/**
 * Registers the reconciler on `manager`: it watches WebhookAuthenticators, and Secrets and
 * ConfigMaps in the Concierge namespace (a change to one re-validates the authenticators that
 * take their CA bundle from it).
 */
export function register(manager: Manager, deps: WebhookAuthenticatorDeps): Controller {
  const webhooks = manager.informers.informer<WebhookAuthenticatorObject>(webhookAuthenticatorsResource);
  const secrets = manager.informers.informer({
    group: "",
    version: "v1",
    resource: "secrets",
    namespace: deps.namespace,
  });
  const configMaps = manager.informers.informer({
    group: "",
    version: "v1",
    resource: "configmaps",
    namespace: deps.namespace,
  });
  const sync = newSyncer({
    webhooks,
    secrets,
    configMaps,
    status: manager.status,
    cache: deps.cache,
    namespace: deps.namespace,
    clock: deps.clock ?? manager.clock,
    dial: deps.dial ?? tlsDial,
    dialTimeoutMs: deps.dialTimeoutMs ?? defaultDialTimeoutMs,
    webhook: deps.webhook ?? {},
    metrics: manager.metrics,
    log: manager.log.child({ component: controllerName }),
  });
  return manager
    .controller({ name: controllerName, sync, workers: deps.workers ?? 4 })
    .withInformer(webhooks, ownKey)
    .withInformer(secrets, referencedBy(webhooks, "Secret"))
    .withInformer(configMaps, referencedBy(webhooks, "ConfigMap"));
}
