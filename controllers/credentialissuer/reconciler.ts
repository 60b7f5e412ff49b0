// The credentialissuer reconciler: writes the strategies in the StrategyHolder into the status of
// the configured CredentialIssuer, with upstream's issuerconfig merge, and (not upstream) standard
// conditions derived from them with the generation they were written for. Upstream has each strategy
// controller call issuerconfig.Update itself; here they publish into the holder and this one
// reconciler owns the write, so the two strategies never race each other for the status.
//
// Unlike upstream, it also creates the CredentialIssuer when it is missing, with the install's
// default spec: the CRD and an object of its kind cannot be created by one `kubectl apply` (kubectl
// maps every object's kind before applying the first), and one apply is how this is installed.
import {
  type CredentialIssuerSpec,
  type CredentialIssuerStatus,
  credentialIssuer,
} from "../../apis/index.ts";
import type { Clock } from "../../kube/clock.ts";
import { collectionPath, type KubeObject, type ResourceRef } from "../../kube/resource.ts";
import { isAlreadyExists, type RestClient } from "../../kube/rest.ts";
import { mergeConditions } from "../runtime/conditions.ts";
import type { Controller, ControllerOptions, Syncer } from "../runtime/controller.ts";
import { named, singletonKey, when } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import type { StatusWriter } from "../runtime/status.ts";
import { strategyConditions } from "./conditions.ts";
import type { StrategyHolder } from "./holder.ts";
import { mergeStrategies } from "./merge.ts";

export type CredentialIssuerObject = KubeObject & {
  spec?: CredentialIssuerSpec;
  status?: CredentialIssuerStatus;
};

export const credentialIssuersResource: ResourceRef = {
  group: credentialIssuer.group,
  version: credentialIssuer.version,
  resource: credentialIssuer.plural,
};

export interface CredentialIssuerDeps {
  holder: StrategyHolder;
  /** The CredentialIssuer (upstream: `<app>-config`). */
  credentialIssuerName: string;
  /**
   * Created with this spec when missing (never applied to an existing one: the spec is the
   * user's). Without it, a missing CredentialIssuer is an error retried until it appears.
   */
  defaultSpec?: CredentialIssuerSpec;
  /** On the created object, as on everything else the Concierge creates. */
  labels?: Record<string, string>;
  /** Stamps `lastUpdateTime`; defaults to the manager's clock. */
  clock?: Clock;
}

/** What the reconciler needs from its surroundings: a Manager's parts, or fakes in tests. */
export interface CredentialIssuerEnv {
  credentialIssuers: InformerSource<CredentialIssuerObject>;
  status: Pick<StatusWriter, "write">;
  /** Writes only while leading (the manager's client). */
  client: Pick<RestClient, "request">;
  clock: Clock;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

/** Builds the reconciler's controller in `env`; `register` is the usual way in. */
export function credentialIssuerController(env: CredentialIssuerEnv, deps: CredentialIssuerDeps): Controller {
  const { holder, credentialIssuerName: name } = deps;

  const sync: Syncer = async ({ signal, log }) => {
    const issuer = env.credentialIssuers.get(name);
    if (!issuer && deps.defaultSpec) {
      try {
        await env.client.request({
          method: "POST",
          path: collectionPath(credentialIssuersResource),
          body: {
            apiVersion: `${credentialIssuer.group}/${credentialIssuer.version}`,
            kind: credentialIssuer.kind,
            metadata: { name, ...(deps.labels ? { labels: deps.labels } : {}) },
            spec: deps.defaultSpec,
          },
          signal,
        });
        log.info("created CredentialIssuer with the default spec", { credentialIssuer: name });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
      // Its add event brings the next sync, which writes the strategies.
      return undefined;
    }
    const updates = holder.get();
    // Upstream writes only when a strategy controller has a result; until then there is nothing to say.
    if (updates.length === 0) return undefined;
    if (!issuer) {
      // Retried with backoff, and at once when the CredentialIssuer appears (its add event).
      throw new Error(
        `could not get CredentialIssuer to update: ${credentialIssuer.singular}.${credentialIssuer.group} "${name}" not found`,
      );
    }
    const now = env.clock.now();
    const strategies = mergeStrategies(issuer.status?.strategies, updates, now, holder.compare);
    const generation = issuer.metadata?.generation ?? 0;
    const { conditions } = mergeConditions(
      issuer.status?.conditions,
      strategyConditions(strategies, (type) => holder.issues(type)),
      generation,
      now,
    );
    const written = await env.status.write(
      credentialIssuersResource,
      issuer,
      { ...issuer.status, strategies, conditions, observedGeneration: generation },
      signal,
    );
    if (written) {
      log.info("updated CredentialIssuer strategies", {
        strategies: strategies.map(({ type, status, reason }) => ({ type, status, reason })),
      });
    }
    return undefined;
  };

  const controller = env
    .controller({ name: "credentialissuer", sync })
    // Every event of the one CredentialIssuer, status edits included, so a hand edit is reverted.
    .withInformer(env.credentialIssuers, when(named(name), singletonKey(name)))
    .withInitialEvent(name);
  // Never unsubscribed: the holder lives as long as the process, and a stopped queue ignores keys.
  holder.onChange(() => controller.enqueue(name));
  return controller;
}

/** Registers the reconciler with `manager`; it watches CredentialIssuers and the holder. */
export function register(manager: Manager, deps: CredentialIssuerDeps): Controller {
  return credentialIssuerController(
    {
      credentialIssuers: manager.informers.informer<CredentialIssuerObject>(credentialIssuersResource),
      status: manager.status,
      client: manager.client,
      clock: deps.clock ?? manager.clock,
      controller: (options) => manager.controller(options),
    },
    deps,
  );
}
