// The credentialissuer reconciler: writes the strategies in the StrategyHolder into the status of
// the configured CredentialIssuer, with upstream's issuerconfig merge. Upstream has each strategy
// controller call issuerconfig.Update itself; here they publish into the holder and this one
// reconciler owns the write, so the two strategies never race each other for the status.
import {
  type CredentialIssuerSpec,
  type CredentialIssuerStatus,
  credentialIssuer,
} from "../../apis/index.ts";
import type { Clock } from "../../kube/clock.ts";
import type { KubeObject, ResourceRef } from "../../kube/resource.ts";
import type { Controller, ControllerOptions, Syncer } from "../runtime/controller.ts";
import { named, singletonKey, when } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import type { StatusWriter } from "../runtime/status.ts";
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
  /** The CredentialIssuer the install created (upstream: `<app>-config`); it is never created here. */
  credentialIssuerName: string;
  /** Stamps `lastUpdateTime`; defaults to the manager's clock. */
  clock?: Clock;
}

/** What the reconciler needs from its surroundings: a Manager's parts, or fakes in tests. */
export interface CredentialIssuerEnv {
  credentialIssuers: InformerSource<CredentialIssuerObject>;
  status: Pick<StatusWriter, "write">;
  clock: Clock;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

/** Builds the reconciler's controller in `env`; `register` is the usual way in. */
export function credentialIssuerController(env: CredentialIssuerEnv, deps: CredentialIssuerDeps): Controller {
  const { holder, credentialIssuerName: name } = deps;

  const sync: Syncer = async ({ signal, log }) => {
    const updates = holder.get();
    // Upstream writes only when a strategy controller has a result; until then there is nothing to say.
    if (updates.length === 0) return undefined;
    const issuer = env.credentialIssuers.get(name);
    if (!issuer) {
      // Retried with backoff, and at once when the CredentialIssuer appears (its add event).
      throw new Error(
        `could not get CredentialIssuer to update: ${credentialIssuer.singular}.${credentialIssuer.group} "${name}" not found`,
      );
    }
    const strategies = mergeStrategies(issuer.status?.strategies, updates, env.clock.now());
    const written = await env.status.write(
      credentialIssuersResource,
      issuer,
      { ...issuer.status, strategies },
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
      clock: deps.clock ?? manager.clock,
      controller: (options) => manager.controller(options),
    },
    deps,
  );
}
