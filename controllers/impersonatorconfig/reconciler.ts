// The impersonator-config reconciler (upstream's impersonatorconfig controller): from the
// CredentialIssuer's spec.impersonationProxy and the cluster's Nodes it starts or stops the proxy,
// keeps its Service, its CA, serving and signer Secrets, loads the serving chain and signer CAs
// into ProxyCredentials and the signer into the SignerHolder, and publishes the ImpersonationProxy
// strategy. Every replica runs it (each replica serves the proxy and needs the material); only
// the leader writes, and a follower works from what the leader wrote.
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { CredentialIssuerSpec } from "../../apis/index.ts";
import { StrategyType } from "../../apis/index.ts";
import type { SignerHolder } from "../../certs/signer.ts";
import type { ProxyCredentials, ProxyCredentialsState } from "../../impersonator/credentials.ts";
import type { ProxyRunner } from "../../impersonator/types.ts";
import { type ResourceClient, resourceClient } from "../../kube/client.ts";
import type { Clock } from "../../kube/clock.ts";
import type { KubeObject, ResourceRef } from "../../kube/resource.ts";
import { isAlreadyExists, isConflict, type RestClient } from "../../kube/rest.ts";
import type { StrategyHolder } from "../credentialissuer/holder.ts";
import type { Controller, ControllerOptions, Syncer } from "../runtime/controller.ts";
import { named, singletonKey, when } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import { NotLeaderError } from "../runtime/leaderelection.ts";
import type { Manager } from "../runtime/manager.ts";
import {
  desiredService,
  disabledAutomatically,
  disabledByConfig,
  endpointInfo,
  listening,
  type Node,
  type ProxyConfig,
  pending,
  type Service,
  type Strategy,
  servicePatch,
  setupError,
  shouldRun,
  validateSpec,
  wantedServiceType,
} from "./decide.ts";
import {
  type CAPolicy,
  type CAState,
  loadCAState,
  planCA,
  planServing,
  previousUntilAnnotation,
  rotatedForAnnotation,
  type Secret,
  type ServingPolicy,
  servingCAPolicy,
  servingPolicy,
  signerCAPolicy,
  trustBundle,
} from "./rotation.ts";

export const controllerName = "impersonator-config";
/** Upstream's informer resync: also how soon a proxy that stopped by itself is started again. */
export const resyncIntervalMs = 3 * 60_000;
/** Our writes to Services are merge patches under this field manager. */
export const fieldManager = "pinniped-concierge-impersonator-config";

export type CredentialIssuerObject = KubeObject & { spec?: CredentialIssuerSpec };

const servicesResource: ResourceRef = { group: "", version: "v1", resource: "services" };
const secretsResource: ResourceRef = { group: "", version: "v1", resource: "secrets" };
const nodesResource: ResourceRef = { group: "", version: "v1", resource: "nodes" };
const credentialIssuersResource: ResourceRef = {
  group: "config.concierge.pinniped.dev",
  version: "v1alpha1",
  resource: "credentialissuers",
};

export interface ImpersonatorConfigNames {
  /** `<app>-impersonation-proxy-load-balancer` */
  loadBalancerService: string;
  /** `<app>-impersonation-proxy-cluster-ip` */
  clusterIPService: string;
  /** `<app>-impersonation-proxy-tls-serving-certificate` */
  tlsSecret: string;
  /** `<app>-impersonation-proxy-ca-certificate` */
  caSecret: string;
  /** `<app>-impersonation-proxy-signer-ca-certificate` */
  signerSecret: string;
}

export interface ImpersonatorConfigDeps {
  namespace: string;
  credentialIssuerName: string;
  names: ImpersonatorConfigNames;
  /** Set on the Services and the Secrets we create. */
  labels: Record<string, string>;
  /** The Services select pods with `app: <appLabel>`. */
  appLabel: string;
  /** The proxy's listening port, the Services' targetPort (upstream 8444). */
  proxyPort: number;
  runner: ProxyRunner;
  strategyHolder: StrategyHolder;
  /** The impersonation signer TokenCredentialRequest falls back to. */
  signerHolder: SignerHolder;
  credentials: ProxyCredentials;
  /** Defaults to the manager's clock. */
  clock?: Clock;
  servingCA?: Partial<Omit<CAPolicy, "keys">>;
  /** `overlapMs` should be at least the longest client certificate TTL. */
  signerCA?: Partial<Omit<CAPolicy, "keys">>;
  servingCertificate?: Partial<ServingPolicy>;
}

export interface ImpersonatorConfigEnv {
  credentialIssuers: InformerSource<CredentialIssuerObject>;
  nodes: InformerSource<Node>;
  /** Services of the namespace. */
  services: InformerSource<Service>;
  /** Secrets of the namespace. */
  secrets: InformerSource<Secret>;
  /** Writes (leader-only in a Manager). */
  client: RestClient;
  clock: Clock;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

type SyncLog = Parameters<Syncer>[0]["log"];

/**
 * One sync's writes. Every replica runs the reconciler but only the leader may write: a
 * follower's refusal is remembered for this sync only, and the caller works from the cached
 * state instead. `wrote` logs a write once it happened, so a follower never reports one.
 */
class SyncWrites {
  notLeader: NotLeaderError | undefined;

  async run<T>(fn: () => Promise<T>, wrote: () => void): Promise<T | undefined> {
    try {
      const result = await fn();
      wrote();
      return result;
    } catch (error) {
      if (error instanceof NotLeaderError) {
        this.notLeader = error;
        return undefined;
      }
      throw error;
    }
  }
}

interface SyncContext {
  signal: AbortSignal;
  log: SyncLog;
  writes: SyncWrites;
}

const b64 = (text: string) => Buffer.from(text).toString("base64");
const unb64 = (value: string | undefined) =>
  value === undefined ? undefined : Buffer.from(value, "base64").toString();

/** What the reconciler's steps share: its inputs, policies and clients, fixed at construction. */
interface Parts {
  env: ImpersonatorConfigEnv;
  deps: ImpersonatorConfigDeps;
  ns: string;
  names: ImpersonatorConfigNames;
  servingCA: CAPolicy;
  signerCA: CAPolicy;
  serving: ServingPolicy;
  publish: (strategy: Strategy) => void;
  services: ResourceClient<Service>;
  secrets: ResourceClient<Secret>;
}

async function deleteObject(
  p: Parts,
  client: ResourceClient<KubeObject>,
  obj: KubeObject | undefined,
  ctx: SyncContext,
) {
  const { ns } = p;
  if (!obj?.metadata?.name) return;
  const name = obj.metadata.name;
  await ctx.writes.run(
    () => client.delete(name, { preconditions: { uid: obj.metadata?.uid }, signal: ctx.signal }),
    () =>
      ctx.log.info("deleted", {
        resource: client.ref.resource,
        name,
        namespace: ns,
      }),
  );
}

async function ensureServices(p: Parts, config: ProxyConfig, running: boolean, ctx: SyncContext) {
  const { env, deps, ns, names, services } = p;
  const wanted = wantedServiceType(config, running);
  const fresh: Partial<Record<string, Service>> = {};
  for (const [type, name] of [
    ["LoadBalancer", names.loadBalancerService],
    ["ClusterIP", names.clusterIPService],
  ] as const) {
    const existing = env.services.get(name, ns);
    if (wanted !== type) {
      await deleteObject(p, services, existing, ctx);
      continue;
    }
    const desired = desiredService(name, type, config, { ...deps, namespace: ns });
    if (!existing) {
      fresh[name] = await ctx.writes.run(
        () => services.create(desired, { fieldManager, signal: ctx.signal }),
        () => ctx.log.info("created Service", { name, type }),
      );
      continue;
    }
    const patch = servicePatch(existing, desired);
    if (!patch) continue;
    fresh[name] = await ctx.writes.run(
      () => services.mergePatch(name, patch, { fieldManager, signal: ctx.signal }),
      () => ctx.log.info("updated Service", { name, type, fields: Object.keys(patch) }),
    );
  }
  return (name: string) => fresh[name] ?? env.services.get(name, ns);
}

/** The CA of `secretName` per `policy`, created or rotated when due. */
async function ensureCA(
  p: Parts,
  secretName: string,
  policy: CAPolicy,
  ctx: SyncContext,
): Promise<{ state: CAState; nextChangeMs: number }> {
  const { env, deps, ns, secrets } = p;
  const cached = env.secrets.get(secretName, ns);
  const plan = await planCA(cached, env.clock.now(), policy);
  if (plan.event === "none") return plan;
  const annotations: Record<string, string> = { ...(cached?.metadata?.annotations ?? {}) };
  delete annotations[previousUntilAnnotation];
  delete annotations[rotatedForAnnotation];
  Object.assign(annotations, plan.annotations);
  const written = await ctx.writes.run(
    () =>
      cached
        ? secrets.update(
            secretName,
            { ...cached, metadata: { ...cached.metadata, annotations }, data: plan.data },
            { signal: ctx.signal },
          )
        : secrets.create(
            {
              apiVersion: "v1",
              kind: "Secret",
              type: "Opaque",
              metadata: { name: secretName, namespace: ns, labels: deps.labels, annotations },
              data: plan.data,
            },
            { signal: ctx.signal },
          ),
    () => ctx.log.info("wrote CA Secret", { name: secretName, event: plan.event, detail: plan.detail }),
  );
  if (written) return plan;
  // A follower keeps using what the leader last wrote, if anything.
  const existing = loadCAState(cached, policy);
  if (!existing) throw ctx.writes.notLeader;
  return { state: existing, nextChangeMs: env.clock.now() + resyncIntervalMs };
}

async function ensureServingSecret(
  p: Parts,
  ca: CAState,
  info: NonNullable<ReturnType<typeof endpointInfo>>,
  ctx: SyncContext,
) {
  const { env, deps, ns, names, serving, secrets } = p;
  const cached = env.secrets.get(names.tlsSecret, ns);
  const plan = await planServing(cached, ca, info.names, env.clock.now(), serving);
  if (plan.action === "none") return plan;
  const data = { "tls.crt": b64(plan.certPEM), "tls.key": b64(plan.keyPEM) };
  const create = () =>
    secrets.create(
      {
        apiVersion: "v1",
        kind: "Secret",
        type: "kubernetes.io/tls",
        metadata: { name: names.tlsSecret, namespace: ns, labels: deps.labels },
        data,
      },
      { signal: ctx.signal },
    );
  const written = await ctx.writes.run(
    async () => {
      if (!cached) return create();
      if (cached.type !== "kubernetes.io/tls") {
        await deleteObject(p, secrets, cached, ctx);
        return create();
      }
      return secrets.update(names.tlsSecret, { ...cached, data }, { signal: ctx.signal });
    },
    () =>
      ctx.log.info("wrote TLS serving Secret", {
        name: names.tlsSecret,
        reason: plan.reason,
        names: info.names,
      }),
  );
  if (written) return plan;
  const certPEM = unb64(cached?.data?.["tls.crt"]);
  const keyPEM = unb64(cached?.data?.["tls.key"]);
  if (!certPEM || !keyPEM) throw ctx.writes.notLeader;
  return { certPEM, keyPEM, nextChangeMs: env.clock.now() + resyncIntervalMs };
}

function externalTLS(p: Parts, config: ProxyConfig): { certPEM: string; keyPEM: string; caPEM: string } {
  const { env, ns } = p;
  const prefix = "could not load the externally provided TLS secret for the impersonation proxy: ";
  const secretName = config.tls?.secretName ?? "";
  const secret = env.secrets.get(secretName, ns);
  if (!secret) throw new Error(`${prefix}secret "${secretName}" not found`);
  const certPEM = unb64(secret.data?.["tls.crt"]) ?? "";
  const keyPEM = unb64(secret.data?.["tls.key"]) ?? "";
  try {
    if (!new X509Certificate(certPEM).checkPrivateKey(createPrivateKey(keyPEM)))
      throw new Error("private key does not match public key");
  } catch (error) {
    const detail = (error as Error).message.includes("private key does not match")
      ? "tls: private key does not match public key"
      : "tls: failed to parse the certificate or key";
    throw new Error(`${prefix}${detail}`);
  }
  let caPEM: string;
  if (config.tls?.certificateAuthorityData) {
    caPEM = Buffer.from(config.tls.certificateAuthorityData, "base64").toString();
    if (!isCertificatePEM(caPEM))
      throw new Error(
        "could not decode impersonationSpec.TLS.certificateAuthorityData: data is not a certificate",
      );
  } else {
    caPEM = unb64(secret.data?.["ca.crt"]) ?? "";
    if (caPEM !== "" && !isCertificatePEM(caPEM))
      throw new Error("unable to read provided ca.crt: data is not a certificate");
  }
  // Upstream advertises an empty CA here, which the CRD's minLength refuses in the status.
  if (caPEM === "")
    throw new Error(
      `${prefix}no CA to advertise: set spec.impersonationProxy.tls.certificateAuthorityData or ca.crt in the Secret`,
    );
  return { certPEM, keyPEM, caPEM };
}

async function teardown(p: Parts, ctx: SyncContext) {
  const { env, deps, ns, names, secrets } = p;
  if (deps.runner.running) ctx.log.info("stopping impersonation proxy");
  await deps.runner.stop();
  deps.signerHolder.set(undefined);
  deps.credentials.set({ serving: undefined, signerCAPEMs: [] });
  await ensureServices(p, { mode: "disabled", serviceType: "None", annotations: {} }, false, ctx);
  // The CA and signer Secrets stay, so kubeconfigs and client certificates survive re-enabling.
  await deleteObject(p, secrets, env.secrets.get(names.tlsSecret, ns), ctx);
}

/** The signer CA, created or rotated when due, loaded into the SignerHolder. */
async function loadSigner(
  p: Parts,
  ctx: SyncContext,
): Promise<{ signerCAPEMs: string[]; nextChangeMs: number }> {
  const { deps, names, signerCA } = p;
  const signer = await ensureCA(p, names.signerSecret, signerCA, ctx);
  if (deps.signerHolder.get()?.certPEM !== signer.state.current.certPEM) {
    ctx.log.info("loaded impersonation signer CA", { ca: signer.state.current });
    deps.signerHolder.set(signer.state.current);
  }
  const signerCAPEMs = [signer.state.current.certPEM];
  if (signer.state.previous) signerCAPEMs.push(signer.state.previous.certPEM);
  return { signerCAPEMs, nextChangeMs: signer.nextChangeMs };
}

/**
 * What the proxy serves and the strategy says: the operator's TLS Secret when the spec names
 * one, else our serving CA and a certificate for the endpoint once the endpoint is known.
 */
async function ensureServingTLS(
  p: Parts,
  config: ProxyConfig,
  info: ReturnType<typeof endpointInfo>,
  signerCAPEMs: string[],
  ctx: SyncContext,
): Promise<{ credentials: ProxyCredentialsState; strategy: Strategy; nextChangeMs: number }> {
  const { env, ns, names, servingCA, secrets } = p;
  const never = Number.POSITIVE_INFINITY;
  if (config.tls) {
    await deleteObject(p, secrets, env.secrets.get(names.tlsSecret, ns), ctx);
    const external = externalTLS(p, config);
    return {
      credentials: { serving: { certPEM: external.certPEM, keyPEM: external.keyPEM }, signerCAPEMs },
      strategy: info ? listening(info.endpoint, external.caPEM) : pending,
      nextChangeMs: never,
    };
  }
  const ca = await ensureCA(p, names.caSecret, servingCA, ctx);
  if (!info) {
    await deleteObject(p, secrets, env.secrets.get(names.tlsSecret, ns), ctx);
    return {
      credentials: { serving: undefined, signerCAPEMs },
      strategy: pending,
      nextChangeMs: ca.nextChangeMs,
    };
  }
  const pair = await ensureServingSecret(p, ca.state, info, ctx);
  return {
    credentials: { serving: { certPEM: pair.certPEM, keyPEM: pair.keyPEM }, signerCAPEMs },
    strategy: listening(info.endpoint, trustBundle(ca.state)),
    nextChangeMs: Math.min(ca.nextChangeMs, pair.nextChangeMs),
  };
}

export function impersonatorConfigController(
  env: ImpersonatorConfigEnv,
  deps: ImpersonatorConfigDeps,
): Controller {
  const ns = deps.namespace;
  const names = deps.names;
  const servingCA = servingCAPolicy(deps.servingCA);
  const signerCA = signerCAPolicy(deps.signerCA);
  const serving = servingPolicy(deps.servingCertificate);
  const publish = (strategy: Strategy) => deps.strategyHolder.set(StrategyType.ImpersonationProxy, strategy);
  const services = resourceClient<Service>(env.client, servicesResource, ns);
  const secrets = resourceClient<Secret>(env.client, secretsResource, ns);
  const p: Parts = { env, deps, ns, names, servingCA, signerCA, serving, publish, services, secrets };

  const sync: Syncer = async ({ signal, log }) => {
    const ctx: SyncContext = { signal, log, writes: new SyncWrites() };
    let nextChangeMs = env.clock.now() + resyncIntervalMs;
    try {
      const ci = env.credentialIssuers.get(deps.credentialIssuerName);
      if (!ci)
        throw new Error(
          `could not load CredentialIssuer: credentialissuers.config.concierge.pinniped.dev "${deps.credentialIssuerName}" not found`,
        );
      const config = validateSpec(ci.spec?.impersonationProxy);
      if (!shouldRun(config, env.nodes.list())) {
        await teardown(p, ctx);
        if (ctx.writes.notLeader) throw ctx.writes.notLeader;
        publish(config.mode === "disabled" ? disabledByConfig : disabledAutomatically);
        return { requeueAfterMs: resyncIntervalMs };
      }

      if (!deps.runner.running) {
        ctx.log.info("starting impersonation proxy", { port: deps.proxyPort });
        await deps.runner.start();
      }
      const service = await ensureServices(p, config, true, ctx);

      const signer = await loadSigner(p, ctx);
      const info = endpointInfo(config, service(names.clusterIPService), service(names.loadBalancerService));
      const served = await ensureServingTLS(p, config, info, signer.signerCAPEMs, ctx);
      nextChangeMs = Math.min(nextChangeMs, signer.nextChangeMs, served.nextChangeMs);
      deps.credentials.set(served.credentials);
      publish(served.strategy);
      // A follower that would have written is synced again at once if it becomes the leader.
      if (ctx.writes.notLeader) throw ctx.writes.notLeader;
      return { requeueAfterMs: Math.max(1_000, nextChangeMs - env.clock.now()) };
    } catch (error) {
      if (error instanceof NotLeaderError) throw error;
      publish(setupError((error as Error).message, isConflict(error) || isAlreadyExists(error)));
      throw error;
    }
  };

  const key = controllerName;
  const ours = (obj: KubeObject) =>
    obj.metadata?.name === names.tlsSecret ||
    obj.metadata?.name === names.caSecret ||
    obj.metadata?.name === names.signerSecret ||
    (obj as Secret).type === "kubernetes.io/tls";
  return env
    .controller({ name: controllerName, sync })
    .withInformer(env.credentialIssuers, when(named(deps.credentialIssuerName), singletonKey(key)))
    .withInformer(env.nodes, singletonKey(key))
    .withInformer(
      env.services,
      when(
        (s) => named(names.loadBalancerService, ns)(s) || named(names.clusterIPService, ns)(s),
        singletonKey(key),
      ),
    )
    .withInformer(env.secrets, when(ours, singletonKey(key)))
    .withInitialEvent(key);
}

function isCertificatePEM(pem: string): boolean {
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) return false;
  try {
    new X509Certificate(pem);
    return true;
  } catch {
    return false;
  }
}

/** Registers the reconciler with `manager`, with informers limited to what it reads. */
export function register(manager: Manager, deps: ImpersonatorConfigDeps): Controller {
  const informers = manager.informers;
  return impersonatorConfigController(
    {
      credentialIssuers: informers.informer<CredentialIssuerObject>(credentialIssuersResource),
      nodes: informers.informer<Node>(nodesResource),
      services: informers.informer<Service>({ ...servicesResource, namespace: deps.namespace }),
      secrets: informers.informer<Secret>({ ...secretsResource, namespace: deps.namespace }),
      client: manager.client,
      clock: deps.clock ?? manager.clock,
      controller: (options) => manager.controller(options),
    },
    deps,
  );
}
