// The SecretSigningCertificate reconciler: watches the configured Secrets (each by name, so its
// RBAC can be `get/list/watch` on exactly those), kube-apiserver's client CA bundle and
// kube-public/cluster-info; loads the first Secret's CA that kube-apiserver trusts into the
// SignerHolder and publishes the strategy. Any failure empties the holder, so the next strategy
// serves instead of this one signing certificates nobody accepts. Every replica runs it.
import { StrategyReason, StrategyStatus, StrategyType } from "../../apis/index.ts";
import type { ConfigMapLike, SecretLike } from "../../authenticators/tls/cabundle.ts";
import type { SignerHolder } from "../../certs/signer.ts";
import type { KubeObject } from "../../kube/resource.ts";
import { type StrategyHolder, strategyPublisher } from "../credentialissuer/holder.ts";
import {
  type ClusterInfo,
  clusterInfoFrontend,
  clusterInfoInformer,
  onClusterInfo,
} from "../kubecertagent/clusterinfo.ts";
import type { Controller, ControllerOptions, Syncer } from "../runtime/controller.ts";
import { named, singletonKey, when } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import { decideSecretSigner, type SecretSource } from "./decide.ts";

export const controllerName = "secret-signer";
/** The Secrets and the client CA are watched; this re-checks them anyway, as upstream's resyncs do. */
export const resyncIntervalMs = 3 * 60_000;

type Secret = KubeObject & SecretLike;
type ConfigMap = KubeObject & ConfigMapLike;

export interface SecretSignerDeps {
  sources: readonly SecretSource[];
  /** Config `discovery.url`: replaces the server that cluster-info advertises. */
  discoveryURLOverride?: string;
  strategyHolder: StrategyHolder;
  signerHolder: SignerHolder;
}

export interface SecretSignerEnv {
  /** One informer per source, in the order of `deps.sources`. */
  secrets: readonly InformerSource<Secret>[];
  /** kube-system/extension-apiserver-authentication. */
  authentication: InformerSource<ConfigMap>;
  authenticationName: { namespace: string; name: string };
  /** kube-public/cluster-info. */
  clusterInfo: InformerSource<ClusterInfo>;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

export function secretSignerController(env: SecretSignerEnv, deps: SecretSignerDeps): Controller {
  const key = controllerName;
  const publish = strategyPublisher(deps.strategyHolder, StrategyType.SecretSigningCertificate);

  const sync: Syncer = ({ log }) => {
    const decided = decideSecretSigner(
      deps.sources,
      (source) => env.secrets[deps.sources.indexOf(source)]?.get(source.name, source.namespace),
      env.authentication.get(env.authenticationName.name, env.authenticationName.namespace),
    );
    if (!decided.ok) {
      if (deps.signerHolder.get()) log.info("unloading the Secret's signing CA", { reason: decided.message });
      deps.signerHolder.set(undefined);
      publish(StrategyStatus.Error, StrategyReason.CouldNotFetchKey, decided.message);
      return { requeueAfterMs: resyncIntervalMs };
    }
    const frontend = clusterInfoFrontend(env.clusterInfo, deps.discoveryURLOverride);
    if (!frontend.ok) {
      deps.signerHolder.set(undefined);
      publish(StrategyStatus.Error, frontend.reason, frontend.message);
      return { requeueAfterMs: resyncIntervalMs };
    }
    const current = deps.signerHolder.get();
    if (
      !current ||
      current.certPEM !== decided.ca.certPEM ||
      current.privateKeyPEM() !== decided.ca.privateKeyPEM()
    ) {
      deps.signerHolder.set(decided.ca);
      log.info("loaded the signing CA from a Secret", {
        secret: { namespace: decided.source.namespace, name: decided.source.name },
      });
    }
    publish(
      StrategyStatus.Success,
      StrategyReason.FetchedKey,
      `key was loaded from Secret ${decided.source.namespace}/${decided.source.name}`,
      frontend.frontend,
    );
    return { requeueAfterMs: resyncIntervalMs };
  };

  let controller = env
    .controller({ name: controllerName, sync })
    .withInformer(
      env.authentication,
      when(named(env.authenticationName.name, env.authenticationName.namespace), singletonKey(key)),
    )
    .withInformer(env.clusterInfo, onClusterInfo(key));
  deps.sources.forEach((source, i) => {
    const informer = env.secrets[i];
    if (informer)
      controller = controller.withInformer(
        informer,
        when(named(source.name, source.namespace), singletonKey(key)),
      );
  });
  return controller.withInitialEvent(key);
}

/**
 * Registers the reconciler with `manager`. `authentication` is the informer the process already
 * has on kube-system/extension-apiserver-authentication.
 */
export function register(
  manager: Manager,
  deps: SecretSignerDeps & {
    authentication: InformerSource<ConfigMap>;
    authenticationName: { namespace: string; name: string };
  },
): Controller {
  const informers = manager.informers;
  return secretSignerController(
    {
      secrets: deps.sources.map((source) =>
        informers.informer<Secret>({
          group: "",
          version: "v1",
          resource: "secrets",
          namespace: source.namespace,
          fieldSelector: `metadata.name=${source.name}`,
        }),
      ),
      authentication: deps.authentication,
      authenticationName: deps.authenticationName,
      clusterInfo: clusterInfoInformer(informers),
      controller: (options) => manager.controller(options),
    },
    deps,
  );
}
