// The JWTAuthenticator reconciler (upstream's jwtcachefiller): validates each JWTAuthenticator,
// keeps a ready authenticator for it in the AuthenticatorCache, and reports upstream's
// conditions. The decisions are `decide`'s; this file observes, probes and applies.
import {
  AuthenticatorConditionType,
  type JWTAuthenticatorSpec,
  type JWTAuthenticatorStatus,
} from "../../apis/index.ts";
import {
  type AuthenticatorCache,
  type AuthenticatorKey,
  authenticationGroup,
} from "../../authenticators/cache.ts";
import { type CompiledClaims, compileClaims } from "../../authenticators/cel/claims.ts";
import { specErrors } from "../../authenticators/jwt/validation.ts";
import {
  type CABundleLookups,
  type ConfigMapLike,
  resolveCABundle,
  type SecretLike,
} from "../../authenticators/tls/cabundle.ts";
import type { TokenAuthenticator } from "../../authenticators/types.ts";
import type { Clock } from "../../kube/clock.ts";
import type { FieldError } from "../../kube/fielderror.ts";
import { type KubeObject, keyOf, type ResourceRef } from "../../kube/resource.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { mergeConditions } from "../runtime/conditions.ts";
import type { Controller, ControllerOptions, Filter, Syncer } from "../runtime/controller.ts";
import { ownKey } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import type { StatusWriter } from "../runtime/status.ts";
import { decide, fingerprint, type KeysProbe, type Observation, type Outcome } from "./decide.ts";
import { discover } from "./discovery.ts";

export type JWTAuthenticatorObject = KubeObject & {
  spec: JWTAuthenticatorSpec;
  status?: JWTAuthenticatorStatus;
};
export type SecretObject = KubeObject & SecretLike;
export type ConfigMapObject = KubeObject & ConfigMapLike;

/** Upstream's name for this controller, as the webhook reconciler's is. */
export const controllerName = "jwtcachefiller-controller";

export const jwtAuthenticatorsResource: ResourceRef = {
  group: authenticationGroup,
  version: "v1alpha1",
  resource: "jwtauthenticators",
};

/** What the token authenticator is built from (the contract of `authenticators/jwt`). */
export interface JWTAuthenticatorOptions {
  name: string;
  issuer: string;
  /** `spec.audience` first, then `spec.audiences`. */
  audiences: string[];
  audienceMatchPolicy: JWTAuthenticatorSpec["audienceMatchPolicy"];
  /** Empty when the username comes from `compiled.username`. */
  usernameClaim: string;
  /** Empty when the groups come from `compiled.groups`. */
  groupsClaim: string;
  compiled: CompiledClaims;
  /** The rules of `spec.claimValidationRules` that name a claim; the CEL ones are in `compiled`. */
  claimValidationRules: { claim: string; requiredValue: string }[];
  systemPrefixPolicy: NonNullable<JWTAuthenticatorSpec["systemPrefixPolicy"]>;
  jwksURL: string;
  caPEM: string | undefined;
  metrics: Metrics;
  log: Logger;
}

export interface FetchingAuthenticator extends TokenAuthenticator {
  /** Fetches the JWKS now; rejects when it cannot be fetched. */
  fetchKeys(signal?: AbortSignal): Promise<unknown>;
}

export type NewJWTAuthenticator = (options: JWTAuthenticatorOptions) => FetchingAuthenticator;

export interface JWTAuthenticatorDeps {
  cache: AuthenticatorCache;
  /** The Concierge namespace: where CA bundles named by `spec.tls.certificateAuthorityDataSource` live. */
  namespace: string;
  newAuthenticator: NewJWTAuthenticator;
  /** Stamps `lastTransitionTime`; defaults to the manager's clock. */
  clock?: Clock;
  /**
   * Syncs in parallel (each authenticator has its own key), so that one issuer that takes its
   * full 30 s timeout does not hold up the others. Default 4.
   */
  workers?: number;
  /** A configured strategy carries extras to kube-apiserver (the JWTCredential strategy); default false. */
  extrasDeliverable?: boolean;
}

/** What the reconciler needs from its surroundings: a Manager's parts, or fakes in tests. */
export interface ControllerEnv {
  informers: {
    jwtAuthenticators: InformerSource<JWTAuthenticatorObject>;
    secrets: InformerSource<SecretObject>;
    configMaps: InformerSource<ConfigMapObject>;
  };
  status: Pick<StatusWriter, "write">;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

function reconcilerMetrics(metrics: Metrics) {
  return {
    validations: metrics.counter({
      name: "jwt_authenticator_validations_total",
      help:
        "JWTAuthenticator syncs by outcome: skipped (the cached authenticator was built from the same " +
        "spec and CA bundle, so nothing was probed), valid, invalid.",
      labelNames: ["outcome"] as const,
    }),
    probeDuration: metrics.histogram({
      name: "jwt_authenticator_probe_duration_seconds",
      help: "Time spent on OIDC discovery and on fetching the JWKS while validating a JWTAuthenticator.",
      labelNames: ["probe"] as const,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    }),
  };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The token authenticator's options for this spec (upstream's convertJWTAuthenticatorSpecType). */
function authenticatorOptions(
  name: string,
  spec: JWTAuthenticatorSpec,
  compiled: CompiledClaims,
  jwksURL: string,
  caPEM: string | undefined,
  metrics: Metrics,
  log: Logger,
): JWTAuthenticatorOptions {
  const claims = spec.claims ?? {};
  return {
    name,
    issuer: spec.issuer,
    audiences: [spec.audience, ...(spec.audiences ?? [])],
    audienceMatchPolicy: spec.audienceMatchPolicy,
    usernameClaim: claims.username || (claims.usernameExpression ? "" : "username"),
    groupsClaim: claims.groups || (claims.groupsExpression ? "" : "groups"),
    compiled,
    claimValidationRules: (spec.claimValidationRules ?? []).flatMap((r) =>
      r.claim && !r.expression ? [{ claim: r.claim, requiredValue: r.requiredValue ?? "" }] : [],
    ),
    systemPrefixPolicy: spec.systemPrefixPolicy ?? "Reject",
    jwksURL,
    caPEM,
    metrics,
    log,
  };
}

/** Builds the reconciler's controller in `env`; `register` is the usual way in. */
export function jwtAuthenticatorController(env: ControllerEnv, deps: JWTAuthenticatorDeps): Controller {
  const { jwtAuthenticators, secrets, configMaps } = env.informers;
  const { cache, namespace } = deps;
  const metrics = reconcilerMetrics(env.metrics);
  const lookups: CABundleLookups = {
    secret: (ns, name) => secrets.get(name, ns),
    configMap: (ns, name) => configMaps.get(name, ns),
  };
  // CEL is compiled once per change of the spec (or CA bundle), not on every sync.
  const compiledByName = new Map<
    string,
    { fingerprint: string; compiled: CompiledClaims; errors: FieldError[] }
  >();
  const compile = (name: string, spec: JWTAuthenticatorSpec, fp: string) => {
    let entry = compiledByName.get(name);
    if (entry?.fingerprint !== fp) {
      const { compiled, errors } = compileClaims(spec);
      entry = { fingerprint: fp, compiled, errors: specErrors(spec, errors) };
      compiledByName.set(name, entry);
    }
    return entry;
  };

  const timed = async <T>(probe: string, run: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await run();
    } finally {
      metrics.probeDuration.observe({ probe }, (performance.now() - started) / 1000);
    }
  };

  /** Runs the probes `decide` asks for, in order; returns the outcome and any authenticator built. */
  const evaluate = async (
    name: string,
    observation: Observation,
    compiled: CompiledClaims,
    signal: AbortSignal,
  ): Promise<{ outcome: Outcome; built: FetchingAuthenticator | undefined }> => {
    let built: FetchingAuthenticator | undefined;
    try {
      for (;;) {
        const decision = decide(observation);
        if (decision.next === undefined) return { outcome: decision, built };
        const next = decision.next;
        const caPEM = observation.tls.bundle?.pem;
        if (next.probe === "discovery") {
          observation.discovery = await timed("discovery", () => discover(next.url, caPEM, signal));
          continue;
        }
        // Built even when the spec has errors, since its key fetch is what JWKSFetchValid reports
        // (upstream fetches through a key set of its own); such an authenticator is never cached.
        try {
          built = deps.newAuthenticator(
            authenticatorOptions(name, observation.spec, compiled, next.jwksURL, caPEM, env.metrics, env.log),
          );
        } catch (err) {
          observation.keys = { ok: false, stage: "init", error: errorMessage(err) };
          continue;
        }
        const authenticator = built;
        observation.keys = await timed("jwks", () => authenticator.fetchKeys(signal)).then(
          (): KeysProbe => ({ ok: true }),
          (err): KeysProbe => ({ ok: false, stage: "fetch", error: errorMessage(err) }),
        );
      }
    } catch (err) {
      built?.close();
      throw err;
    }
  };

  const sync: Syncer = async ({ key, signal, log }) => {
    const cacheKey: AuthenticatorKey = { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: key };
    const jwt = jwtAuthenticators.get(key);
    if (!jwt) {
      compiledByName.delete(key);
      if (cache.get(cacheKey)) {
        cache.delete(cacheKey);
        log.info("deleted jwt authenticator from cache");
      }
      return;
    }
    const { spec } = jwt;
    const tls = resolveCABundle(spec.tls, "spec.tls", namespace, lookups);
    const fp = fingerprint(spec, tls.bundle?.sha256);
    const cached = cache.get(cacheKey);
    const { compiled, errors } = compile(key, spec, fp);
    const observation: Observation = {
      spec,
      tls,
      fingerprint: fp,
      cachedFingerprint: cached?.fingerprint,
      specErrors: errors,
      extrasDeliverable: deps.extrasDeliverable ?? false,
    };
    const evaluated = await evaluate(key, observation, compiled, signal);
    const { outcome } = evaluated;
    let { built } = evaluated;
    try {
      metrics.validations.inc({ outcome: outcome.skipped ? "skipped" : outcome.valid ? "valid" : "invalid" });
      if (outcome.skipped) log.debug("cached jwt authenticator matches the spec; skipped validations");
      // Upstream's order: a failing authenticator leaves the cache before its status is written,
      // since that write may fail, and an old spec must not go on authenticating meanwhile.
      if (!outcome.valid && cache.get(cacheKey)) {
        cache.delete(cacheKey);
        log.info("invalid jwt authenticator; removed from cache");
      }
      // The merge keeps conditions it is not given; the extras one must leave with the extras.
      const kept = jwt.status?.conditions?.filter(
        (c) =>
          c.type !== AuthenticatorConditionType.ClaimsExtraDeliverable ||
          outcome.conditions.some((u) => u.type === c.type),
      );
      const { conditions } = mergeConditions(
        kept,
        outcome.conditions,
        jwt.metadata?.generation ?? 0,
        env.clock.now(),
        log,
      );
      await env.status.write(
        jwtAuthenticatorsResource,
        jwt,
        { ...jwt.status, conditions, phase: outcome.valid ? "Ready" : "Error" },
        signal,
      );
      // Only once the status says Ready (written now, or already): a follower, whose writes are
      // refused, caches an authenticator only after the leader has written the same status.
      if (outcome.valid && built) {
        cache.store(cacheKey, { authenticator: built, fingerprint: fp });
        log.info("added or updated jwt authenticator in cache", { isOverwrite: cached !== undefined });
        built = undefined;
      }
    } finally {
      built?.close();
    }
    if (outcome.retry) throw new Error(outcome.retry);
  };

  /** A CA bundle object's events go to the authenticators that name it. */
  const referencing =
    (kind: "Secret" | "ConfigMap"): Filter =>
    (event) => {
      if (event.obj.metadata?.namespace !== namespace) return undefined;
      const name = event.obj.metadata?.name;
      return jwtAuthenticators
        .list()
        .filter((j) => {
          const source = j.spec?.tls?.certificateAuthorityDataSource;
          return source?.kind === kind && source.name === name;
        })
        .map(keyOf);
    };

  return env
    .controller({ name: controllerName, sync, workers: deps.workers ?? 4 })
    .withInformer(jwtAuthenticators, ownKey)
    .withInformer(secrets, referencing("Secret"))
    .withInformer(configMaps, referencing("ConfigMap"));
}

/**
 * Registers the reconciler with `manager`: it watches JWTAuthenticators and the Secrets and
 * ConfigMaps of the Concierge namespace.
 */
export function register(manager: Manager, deps: JWTAuthenticatorDeps): Controller {
  const core = (resource: string) => ({ group: "", version: "v1", resource, namespace: deps.namespace });
  return jwtAuthenticatorController(
    {
      informers: {
        jwtAuthenticators: manager.informers.informer<JWTAuthenticatorObject>(jwtAuthenticatorsResource),
        secrets: manager.informers.informer<SecretObject>(core("secrets")),
        configMaps: manager.informers.informer<ConfigMapObject>(core("configmaps")),
      },
      status: manager.status,
      clock: deps.clock ?? manager.clock,
      log: manager.log,
      metrics: manager.metrics,
      controller: (options) => manager.controller(options),
    },
    deps,
  );
}
