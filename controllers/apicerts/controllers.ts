// Upstream's four apicerts controllers around the serving-certificate Secret of the aggregated
// API (internal/controller/apicerts): certs-manager creates it when missing, api-service-updater
// copies its CA into the APIServices (and, beyond upstream, into the admission webhook
// configuration), certs-observer loads the serving pair into the ServingCertHolder that the HTTPS
// listeners read, and certs-expirer deletes it when it is old enough, which is how it rotates.
// Every replica runs all of them; only the observer does not write, and the writers go through the
// manager's leader-only client, so on a follower they wait for leadership.
import { randomBytes } from "node:crypto";
import { CertificateAuthority } from "../../certs/ca.ts";
import type { CertEnv } from "../../certs/env.ts";
import { issueServingCertificate } from "../../certs/issue.ts";
import type { ServingCert, ServingCertHolder } from "../../certs/servingcert.ts";
import { resourceClient } from "../../kube/client.ts";
import type { Clock } from "../../kube/clock.ts";
import { keyFor, objectPath, type ResourceRef } from "../../kube/resource.ts";
import { isAlreadyExists, isApiError, isConflict, type RestClient } from "../../kube/rest.ts";
import {
  type Controller,
  type ControllerOptions,
  type Filter,
  SyntheticRequeue,
  TerminalError,
} from "../runtime/controller.ts";
import { named, singletonKey, when } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import {
  type APIServiceObject,
  caCertificateKey,
  certBounds,
  decideAPIService,
  decideExpiry,
  newServingSecret,
  type OwnerReference,
  type SecretObject,
  type ServingMaterial,
  type ServingNames,
  secretValue,
  servingCACommonName,
  servingNames,
  tlsCertificateChainKey,
  tlsPrivateKeyKey,
  type WebhookConfigurationObject,
  webhookCABundlePatch,
} from "./decide.ts";

export const secretsResource = (namespace: string): ResourceRef => ({
  group: "",
  version: "v1",
  resource: "secrets",
  namespace,
});
export const apiServicesResource: ResourceRef = {
  group: "apiregistration.k8s.io",
  version: "v1",
  resource: "apiservices",
};
export const validatingWebhookConfigurationsResource: ResourceRef = {
  group: "admissionregistration.k8s.io",
  version: "v1",
  resource: "validatingwebhookconfigurations",
};

/** Upstream's certauthority.New then IssueServerCert, both with the same TTL, at `env`'s time. */
export async function generateServingMaterial(
  names: ServingNames,
  ttlMs: number,
  env: CertEnv,
): Promise<ServingMaterial> {
  const ca = await CertificateAuthority.create(servingCACommonName, ttlMs, env);
  const leaf = await issueServingCertificate(ca, names, ttlMs, env);
  return { caCertPEM: ca.certPEM, caKeyPEM: ca.privateKeyPEM(), certPEM: leaf.certPEM, keyPEM: leaf.keyPEM };
}

export interface ApiCertsDeps {
  /** The Concierge namespace: where the Secret lives, and whose Services the APIServices must name. */
  namespace: string;
  /** Upstream: `<app>-api-tls-serving-certificate`. */
  secretName: string;
  /** The Service of the aggregated API (upstream `names.apiService`, `<app>-api`), for the SANs. */
  serviceName: string;
  /** APIServices whose caBundle follows the CA (upstream: the login and identity ones). */
  apiServiceNames: readonly string[];
  /** The ValidatingWebhookConfiguration whose webhooks' caBundle follows the CA; none when unset. */
  webhookConfigurationName?: string;
  servingCertHolder: Pick<ServingCertHolder, "get" | "set">;
  /** Lifetime of both the CA and the serving certificate (`api.servingCertificate.durationSeconds`). */
  durationSeconds: number;
  /** Rotate once the serving certificate is this old (upstream's meaning of `renewBeforeSeconds`). */
  renewBeforeSeconds: number;
  /** Labels of the created Secret (config `labels`). */
  labels?: Readonly<Record<string, string>>;
  /** More SANs for the serving certificate, e.g. `localhost` and `127.0.0.1` for a local process. */
  extraSANs?: readonly string[];
  /** Set on the created Secret when known: the Concierge Deployment (upstream's deploymentref). */
  ownerReference?: OwnerReference;
  /** Defaults to the manager's clock; also the clock the certificates are issued by. */
  clock?: Clock;
}

/** What the controllers need from their surroundings: a Manager's parts, or fakes in tests. */
export interface ApiCertsEnv {
  secrets: InformerSource<SecretObject>;
  apiServices: InformerSource<APIServiceObject>;
  /** Needed only with `webhookConfigurationName`. */
  webhookConfigurations?: InformerSource<WebhookConfigurationObject>;
  /** Writes: the manager's leader-only client. */
  client: RestClient;
  clock: Clock;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

/** Upstream's config validation of the two durations, with its messages. */
export function validateDurations(durationSeconds: number, renewBeforeSeconds: number): void {
  if (!(renewBeforeSeconds > 0)) throw new Error("renewBefore must be positive");
  if (durationSeconds < renewBeforeSeconds) {
    throw new Error("durationSeconds cannot be smaller than renewBeforeSeconds");
  }
}

/** Builds the controllers in `env`; `register` is the usual way in. */
export function apiCertsControllers(env: ApiCertsEnv, deps: ApiCertsDeps): Controller[] {
  validateDurations(deps.durationSeconds, deps.renewBeforeSeconds);
  const { namespace, secretName } = deps;
  const secretKey = keyFor(secretName, namespace);
  const where = `${namespace}/${secretName}`;
  const ownSecret = <T extends SecretObject>(then: Filter<T>) => when<T>(named(secretName, namespace), then);
  const secrets = resourceClient<SecretObject>(env.client, secretsResource(namespace));
  const apiServices = resourceClient<APIServiceObject>(env.client, apiServicesResource);
  const currentSecret = () => env.secrets.get(secretName, namespace);
  const certEnv: CertEnv = { now: () => env.clock.now(), randomBytes: (size) => randomBytes(size) };
  const names = servingNames(deps.serviceName, namespace, deps.extraSANs ?? []);
  const controllers: Controller[] = [];

  controllers.push(
    env
      .controller({
        name: "certs-manager",
        sync: async ({ signal, log }) => {
          // Never updates an existing Secret: rotation is certs-expirer deleting it.
          if (currentSecret()) return undefined;
          const material = await generateServingMaterial(names, deps.durationSeconds * 1000, certEnv);
          const secret = newServingSecret(
            { name: secretName, namespace, labels: deps.labels ?? {}, ownerReference: deps.ownerReference },
            material,
          );
          try {
            await secrets.create(secret, { signal });
          } catch (error) {
            // The cache was behind: the Secret exists, which is all this controller wants.
            if (isAlreadyExists(error)) return undefined;
            // Only the API's answers get upstream's wrapping: a NotLeaderError must reach the
            // controller as itself, to be retried quietly.
            throw isApiError(error) ? new Error("could not create secret", { cause: error }) : error;
          }
          log.info("created serving certificate Secret", { secretName, namespace, ...names });
          return undefined;
        },
      })
      .withInformer(env.secrets, ownSecret(singletonKey(secretKey)))
      // Runs once at start even when the Secret does not exist, so the first one gets made.
      .withInitialEvent(secretKey),
  );

  const caOf = (secret: SecretObject): Buffer => {
    const ca = secretValue(secret, caCertificateKey);
    // Copying an empty bundle would make the aggregator trust nothing; wait for a fixed Secret.
    if (!ca || ca.length === 0) throw new TerminalError(`secret ${where} has no ${caCertificateKey}`);
    return ca;
  };

  const apiServiceNames = new Set(deps.apiServiceNames);
  controllers.push(
    env
      .controller({
        name: "api-service-updater",
        sync: async ({ key, signal, log }) => {
          const secret = currentSecret();
          if (!secret) return undefined; // Nothing to copy until certs-manager made it.
          const apiService = env.apiServices.get(key);
          if (!apiService) return undefined; // Synced again by its add event.
          const decision = decideAPIService(apiService, namespace, caOf(secret));
          if (decision.action === "skip") {
            log.debug("APIService left as it is", { why: decision.why });
            return undefined;
          }
          await apiServices.mergePatch(key, decision.patch, { signal });
          log.info("updated APIService caBundle", { apiServiceName: key });
          return undefined;
        },
      })
      .withInformer(
        env.secrets,
        ownSecret(() => [...apiServiceNames]),
      )
      // Its own events too, so an APIService created later, or a caBundle edited by hand, follows.
      .withInformer(
        env.apiServices,
        when(
          (o) => apiServiceNames.has(o.metadata?.name ?? ""),
          (e) => e.obj.metadata?.name,
        ),
      ),
  );

  const webhookName = deps.webhookConfigurationName;
  if (webhookName !== undefined) {
    const configs = env.webhookConfigurations;
    if (!configs) throw new Error("webhookConfigurationName needs a webhook configuration informer");
    controllers.push(
      env
        .controller({
          name: "webhook-ca-bundle-updater",
          sync: async ({ signal, log }) => {
            const secret = currentSecret();
            if (!secret) return undefined;
            const config = configs.get(webhookName);
            if (!config) return undefined;
            const ops = webhookCABundlePatch(config, namespace, caOf(secret));
            if (ops.length === 0) return undefined;
            await env.client.request({
              method: "PATCH",
              path: objectPath(validatingWebhookConfigurationsResource, webhookName),
              contentType: "application/json-patch+json",
              body: ops,
              signal,
            });
            log.info("updated webhook caBundle", {
              webhookConfigurationName: webhookName,
              webhooks: ops.filter((op) => op.op === "test").map((op) => op.value),
            });
            return undefined;
          },
        })
        .withInformer(env.secrets, ownSecret(singletonKey(webhookName)))
        .withInformer(configs, when(named(webhookName), singletonKey(webhookName))),
    );
  }

  controllers.push(
    env
      .controller({
        name: "certs-observer",
        sync: ({ log }) => {
          const secret = currentSecret();
          if (!secret) {
            // Upstream unsets its provider here, stopping TLS until the Secret is back. The holder
            // has no unset (its listeners always hold some pair), so the last pair keeps serving
            // for the moment certs-manager needs to recreate the Secret.
            log.info("serving certificate Secret does not exist yet or was deleted", { secretName });
            return undefined;
          }
          const pair: ServingCert = {
            certPEM: secretValue(secret, tlsCertificateChainKey)?.toString() ?? "",
            keyPEM: secretValue(secret, tlsPrivateKeyKey)?.toString() ?? "",
          };
          const current = deps.servingCertHolder.get();
          if (current?.certPEM === pair.certPEM && current.keyPEM === pair.keyPEM) return undefined;
          try {
            deps.servingCertHolder.set(pair);
          } catch (error) {
            // The same Secret fails the same way; its next change syncs again.
            throw new TerminalError(`failed to set serving cert/key content from secret ${where}`, {
              cause: error,
            });
          }
          log.info("loaded the serving certificate from its Secret", { secretName });
          return undefined;
        },
      })
      .withInformer(env.secrets, ownSecret(singletonKey(secretKey))),
  );

  const renewBeforeMs = deps.renewBeforeSeconds * 1000;
  controllers.push(
    env
      .controller({
        name: "certs-expirer",
        sync: async ({ signal, log }) => {
          const secret = currentSecret();
          if (!secret) return undefined;
          const bounds = certBounds(secret);
          if ("error" in bounds) {
            // Upstream retries this forever; the same Secret cannot parse better next time.
            throw new TerminalError(`failed to get cert bounds for secret "${secretName}": ${bounds.error}`);
          }
          const decision = decideExpiry(bounds, env.clock.now(), renewBeforeMs);
          if (!decision.rotate) return { requeueAfterMs: decision.recheckAfterMs };
          let deleted: boolean;
          try {
            deleted = await secrets.delete(secretName, {
              // Only the Secret that was judged: a Secret replaced meanwhile gets judged afresh.
              preconditions: { uid: secret.metadata?.uid, resourceVersion: secret.metadata?.resourceVersion },
              signal,
            });
          } catch (error) {
            // The Secret changed since the cache saw it; its update event brings the new one.
            if (isConflict(error)) throw SyntheticRequeue;
            throw error;
          }
          if (!deleted) return undefined;
          log.info("deleted the serving certificate Secret to rotate it", {
            secretName,
            why: decision.why,
            notBefore: new Date(bounds.notBeforeMs).toISOString(),
            notAfter: new Date(bounds.notAfterMs).toISOString(),
          });
          return undefined;
        },
      })
      .withInformer(env.secrets, ownSecret(singletonKey(secretKey))),
  );

  return controllers;
}

/**
 * Registers the controllers on `manager`. They watch Secrets in the Concierge namespace (shared
 * with other reconcilers), APIServices, and the webhook configuration when one is named.
 */
export function register(manager: Manager, deps: ApiCertsDeps): Controller[] {
  return apiCertsControllers(
    {
      secrets: manager.informers.informer<SecretObject>(secretsResource(deps.namespace)),
      apiServices: manager.informers.informer<APIServiceObject>(apiServicesResource),
      ...(deps.webhookConfigurationName === undefined
        ? {}
        : {
            webhookConfigurations: manager.informers.informer<WebhookConfigurationObject>(
              validatingWebhookConfigurationsResource,
            ),
          }),
      client: manager.client,
      clock: deps.clock ?? manager.clock,
      controller: (options) => manager.controller(options),
    },
    deps,
  );
}
