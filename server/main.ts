// The Concierge process: one Manager (informers, leader election, every reconciler), the holders
// they fill, and two listeners. `node server/main.ts --config pinniped.yaml` in a pod;
// `startConcierge` in-process for tests and the local demo (hack/run-local.ts).
import { createServer as createHTTPServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Server as NetServer } from "node:net";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { type CredentialIssuerSpec, tokenCredentialRequest, whoAmIRequest } from "../apis/index.ts";
import { AuthenticatorCache } from "../authenticators/cache.ts";
import { newJWTAuthenticator } from "../authenticators/jwt/authenticator.ts";
import { removeJWTAuthenticatorSeries } from "../authenticators/jwt/metrics.ts";
import { setAllowLinkLocalAddresses } from "../authenticators/outbound.ts";
import { removeWebhookAuthenticatorSeries } from "../authenticators/webhook/authenticator.ts";
import { ServingCertHolder } from "../certs/servingcert.ts";
import { SignerHolder } from "../certs/signer.ts";
import { register as registerAPICerts } from "../controllers/apicerts/controllers.ts";
import { register as registerCacheCleaner } from "../controllers/cachecleaner/cachecleaner.ts";
import { StrategyHolder } from "../controllers/credentialissuer/holder.ts";
import { register as registerCredentialIssuer } from "../controllers/credentialissuer/reconciler.ts";
import { register as registerCSRAPI } from "../controllers/csrapi/reconciler.ts";
import { register as registerJWTAuthenticators } from "../controllers/jwtauthenticator/reconciler.ts";
import { rotationPolicy } from "../controllers/jwtcredential/decide.ts";
import { JWTCredentialIssuer } from "../controllers/jwtcredential/issuer.ts";
import { register as registerJWTCredential } from "../controllers/jwtcredential/reconciler.ts";
import { websocketPodCommandExecutor } from "../controllers/kubecertagent/executor.ts";
import { register as registerLegacyPodCleaner } from "../controllers/kubecertagent/legacypodcleaner.ts";
import { register as registerKubeCertAgent } from "../controllers/kubecertagent/reconciler.ts";
import type { LeaderElectorOptions } from "../controllers/runtime/leaderelection.ts";
import { type Manager, managerFromKubeConfig } from "../controllers/runtime/manager.ts";
import { register as registerSecretSigner } from "../controllers/secretsigner/reconciler.ts";
import { register as registerWebhookAuthenticators } from "../controllers/webhookauthenticator/reconciler.ts";
import type { Issuer } from "../issuers/issuer.ts";
import { LocalCAIssuer } from "../issuers/localca.ts";
import { OrderedIssuers } from "../issuers/ordered.ts";
import { GroupSuffix } from "../kube/groupsuffix.ts";
import { type ClusterAccess, loadInClusterConfig, loadKubeConfigFile } from "../kube/kubeconfig.ts";
import { KubeRestClient } from "../kube/rest.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { createWebhookHandler, validatePath } from "../webhooks/server.ts";
import { startAggregatedAPIServer } from "./aggregated.ts";
import { type ConciergeConfig, loadConfig, readDownwardAPI } from "./config.ts";
import {
  extensionAPIServerAuthentication,
  FrontProxyConfigHolder,
  watchFrontProxyConfig,
} from "./frontproxy.ts";
import { collectWhenIdle } from "./idlegc.ts";
import { setUpImpersonationProxy } from "./impersonation.ts";
import { jwtIssuerRoutes } from "./jwtissuer.ts";
import { createMetricsHandler, metricsPath } from "./metricsendpoint.ts";
import { fallbackAgentImage, ownImage } from "./ownimage.ts";

/** The APIServices whose caBundle the serving CA fills (upstream's install names them so). */
export function apiServiceNamesFor(groups: GroupSuffix): string[] {
  return [tokenCredentialRequest.group, whoAmIRequest.group].map((g) => `v1alpha1.${groups.served(g)}`);
}

/** Those of an install with upstream's own groups. */
export const apiServiceNames = [
  `v1alpha1.${tokenCredentialRequest.group}`,
  `v1alpha1.${whoAmIRequest.group}`,
] as const;

/**
 * The CredentialIssuer the Concierge creates when the install has none: upstream's install
 * defaults (an impersonation proxy only where no control-plane node is visible, behind a
 * LoadBalancer Service whose idle timeout on AWS outlasts long-running kubectl commands).
 */
export const defaultCredentialIssuerSpec: CredentialIssuerSpec = {
  impersonationProxy: {
    mode: "auto",
    service: {
      type: "LoadBalancer",
      annotations: { "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout": "4000" },
    },
  },
};

/** The Deployment's container (config/07-deployment.yaml), whose image the agent defaults to. */
const conciergeContainerName = "pinniped-concierge";

export interface StartOptions {
  config: ConciergeConfig;
  kubeConfig: ClusterAccess;
  /** The name in the Lease; default POD_NAME, else `<hostname>-<pid>`. */
  identity?: string;
  /** Where both listeners bind; default all interfaces. A local run uses 127.0.0.1. */
  host?: string;
  log?: Logger;
  /** Tests shorten upstream's timings so that a takeover does not take minutes. */
  leaderElection?: Pick<LeaderElectorOptions, "leaseDurationMs" | "renewDeadlineMs" | "retryPeriodMs">;
}

/** What the process holds in memory; exposed for tests (e.g. to inspect the loaded signing CA or serving pair). */
export interface Holders {
  authenticators: AuthenticatorCache;
  servingCerts: ServingCertHolder;
  kubeSigner: SignerHolder;
  /** The SecretSigningCertificate strategy's CA (empty when that strategy is not configured). */
  secretSigner: SignerHolder;
  impersonationSigner: SignerHolder;
  strategies: StrategyHolder;
  /** Every strategy's credential issuer in priority order: the first that can issue serves. */
  issuers: OrderedIssuers;
  frontProxy: FrontProxyConfigHolder;
}

export interface Concierge {
  ports: { aggregatedAPI: number; health: number };
  holders: Holders;
  manager: Manager;
  /**
   * True once every informer has synced, every controller has synced once what they held then
   * (authenticators, the signing key: loaded where they can be) and a serving certificate is
   * loaded, until stop() is called (what /readyz says).
   */
  ready(): boolean;
  /**
   * Not ready at once; stops accepting and drains the connections open to the aggregated API
   * (their requests in flight answered, for up to `drainMs`, default 0); stops the controllers
   * and releases the Lease. Idempotent.
   */
  stop(options?: { drainMs?: number }): Promise<void>;
  /** Settles when the controllers have stopped; rejects if they failed. */
  readonly done: Promise<void>;
}

function listen(server: NetServer, port: number, host: string) {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Plain HTTP for the kubelet's probes: /healthz and /livez (the process answers) and /readyz.
 * /metrics is served on the HTTPS port only, behind TokenReview and SubjectAccessReview.
 */
async function startHealthListener(host: string, port: number, ready: () => boolean) {
  const server = createHTTPServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    const text = (code: number, body: string, type = "text/plain; charset=utf-8") =>
      res.writeHead(code, { "content-type": type, "cache-control": "no-cache, private" }).end(body);
    if (req.method !== "GET" && req.method !== "HEAD") return text(405, "method not allowed\n");
    if (path === "/healthz" || path === "/livez") return text(200, "ok");
    if (path === "/readyz") return ready() ? text(200, "ok") : text(503, "not ready");
    text(404, "not found\n");
  });
  server.keepAliveTimeout = 120_000;
  await listen(server, port, host);
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** How long a draining replica keeps listening at least (bounded by the drain). */
const keepListeningMs = 15_000;

export async function startConcierge(options: StartOptions): Promise<Concierge> {
  const { config } = options;
  const log = (options.log ?? createLogger({ level: config.logLevel, format: config.logFormat })).child({
    component: "concierge",
  });
  const host = options.host ?? "0.0.0.0";
  const namespace = config.namespace;
  const identity = options.identity ?? (process.env.POD_NAME || `${hostname()}-${process.pid}`);
  log.info("starting", {
    namespace,
    identity,
    leaseName: config.names.deployment,
    apiGroupSuffix: config.apiGroupSuffix,
  });
  setAllowLinkLocalAddresses(config.outbound.allowLinkLocalAddresses);

  const metrics = new Metrics();
  metrics.collectProcessMetrics();
  const kubeSigner = new SignerHolder("kube cluster signing CA");
  const impersonationSigner = new SignerHolder("impersonation proxy signer");
  const secretSigner = new SignerHolder("Secret signing CA");
  const groups = new GroupSuffix(config.apiGroupSuffix);
  const manager = managerFromKubeConfig(options.kubeConfig, {
    groups,
    identity,
    leaseNamespace: namespace,
    leaseName: config.names.deployment,
    log,
    metrics,
    ...(options.leaderElection ? { leaderElection: options.leaderElection } : {}),
  });
  const strategies = config.strategies;
  const strategyHolder = new StrategyHolder(strategies.order);
  // Requests to the CSR API come from every replica, not only the leader: its own unguarded client.
  const csrClient = strategies.certificateSigningRequestAPI
    ? new KubeRestClient(options.kubeConfig)
    : undefined;
  // TokenReviews come from every replica too: each one's issuer serves its own requests.
  const jwtProbeClient = strategies.jwtCredential ? new KubeRestClient(options.kubeConfig) : undefined;
  const jwtIssuer = strategies.jwtCredential
    ? new JWTCredentialIssuer({
        issuer: strategies.jwtCredential.issuer,
        audience: strategies.jwtCredential.audience,
        ...(strategies.jwtCredential.ttlSeconds !== undefined
          ? { ttlSeconds: strategies.jwtCredential.ttlSeconds }
          : {}),
      })
    : undefined;
  if (strategies.jwtCredential && jwtIssuer && jwtProbeClient) {
    const ttl = config.tokenCredentialRequest.clientCertificateTTLSeconds;
    registerJWTCredential(manager, {
      namespace,
      secretName: config.names.jwtSigningKeySecret,
      labels: config.labels,
      policy: rotationPolicy(Math.min(ttl, strategies.jwtCredential.ttlSeconds ?? ttl)),
      issuer: jwtIssuer,
      probeIntervalMs: strategies.jwtCredential.probeIntervalSeconds * 1000,
      ...(config.discovery ? { discoveryURLOverride: config.discovery.url } : {}),
      strategyHolder,
      probeClient: jwtProbeClient,
    });
  }
  // The one place strategies register their issuers; config.strategies.order says which are asked, in what order.
  const issuerOf: Record<(typeof strategies.order)[number], Issuer | undefined> = {
    KubeClusterSigningCertificate: new LocalCAIssuer(kubeSigner),
    SecretSigningCertificate: strategies.secretSigningCertificate
      ? new LocalCAIssuer(secretSigner)
      : undefined,
    CertificateSigningRequestAPI:
      strategies.certificateSigningRequestAPI && csrClient
        ? registerCSRAPI(manager, {
            client: csrClient,
            labels: config.labels,
            probeIntervalMs: strategies.certificateSigningRequestAPI.probeIntervalSeconds * 1000,
            ttlSeconds: config.tokenCredentialRequest.clientCertificateTTLSeconds,
            ...(config.discovery ? { discoveryURLOverride: config.discovery.url } : {}),
            strategyHolder,
          })
        : undefined,
    JWTCredential: jwtIssuer,
    ImpersonationProxy: new LocalCAIssuer(impersonationSigner),
  };
  const holders: Holders = {
    authenticators: new AuthenticatorCache(),
    servingCerts: new ServingCertHolder(),
    kubeSigner,
    secretSigner,
    impersonationSigner,
    strategies: strategyHolder,
    issuers: new OrderedIssuers(
      strategies.order.map((name) => issuerOf[name]).filter((issuer) => issuer !== undefined),
    ),
    frontProxy: new FrontProxyConfigHolder(),
  };
  // A deleted authenticator's metric series go with it; a replaced one keeps its counts.
  holders.authenticators.onChange((key, entry) => {
    if (entry) return;
    const remove =
      key.kind === "JWTAuthenticator" ? removeJWTAuthenticatorSeries : removeWebhookAuthenticatorSeries;
    remove(metrics, key.name).catch((err: unknown) =>
      log.warn("could not remove a deleted authenticator's metrics", { err: (err as Error).message }),
    );
  });

  // Only a JWT carries extras to kube-apiserver; a certificate strategy cannot.
  const extrasDeliverable = jwtIssuer !== undefined && strategies.order.includes("JWTCredential");
  registerJWTAuthenticators(manager, {
    cache: holders.authenticators,
    namespace,
    newAuthenticator: newJWTAuthenticator,
    extrasDeliverable,
  });
  registerWebhookAuthenticators(manager, { cache: holders.authenticators, namespace });
  registerCacheCleaner(manager, { cache: holders.authenticators });
  registerAPICerts(manager, {
    namespace,
    secretName: config.names.servingCertificateSecret,
    serviceName: config.names.apiService,
    apiServiceNames: apiServiceNamesFor(groups),
    webhookConfigurationName: config.names.validatingWebhookConfiguration,
    servingCertHolder: holders.servingCerts,
    durationSeconds: config.api.servingCertificate.durationSeconds,
    renewBeforeSeconds: config.api.servingCertificate.renewBeforeSeconds,
    labels: config.labels,
    extraSANs: config.extraServingSANs,
  });
  registerKubeCertAgent(manager, {
    namespace,
    agentName: config.kubeCertAgent.namePrefix,
    agentImage: config.kubeCertAgent.image ?? fallbackAgentImage,
    serviceAccountName: config.names.agentServiceAccount,
    labels: config.labels,
    imagePullSecrets: config.kubeCertAgent.imagePullSecrets,
    ...(config.kubeCertAgent.priorityClassName
      ? { priorityClassName: config.kubeCertAgent.priorityClassName }
      : {}),
    ...(config.kubeCertAgent.runAsUser !== undefined ? { runAsUser: config.kubeCertAgent.runAsUser } : {}),
    ...(config.kubeCertAgent.runAsGroup !== undefined ? { runAsGroup: config.kubeCertAgent.runAsGroup } : {}),
    ...(config.discovery ? { discoveryURLOverride: config.discovery.url } : {}),
    strategyHolder: holders.strategies,
    signerHolder: holders.kubeSigner,
    executor: websocketPodCommandExecutor(options.kubeConfig),
  });
  registerLegacyPodCleaner(manager, { namespace, labels: config.labels });
  registerCredentialIssuer(manager, {
    holder: holders.strategies,
    credentialIssuerName: config.names.credentialIssuer,
    defaultSpec: defaultCredentialIssuerSpec,
    labels: config.labels,
  });
  const authenticationConfigMaps = manager.informers.informer({
    group: "",
    version: "v1",
    resource: "configmaps",
    namespace: extensionAPIServerAuthentication.namespace,
    fieldSelector: `metadata.name=${extensionAPIServerAuthentication.name}`,
  });
  watchFrontProxyConfig(authenticationConfigMaps, holders.frontProxy, log);
  if (strategies.secretSigningCertificate) {
    registerSecretSigner(manager, {
      sources: strategies.secretSigningCertificate.secrets,
      ...(config.discovery ? { discoveryURLOverride: config.discovery.url } : {}),
      strategyHolder: holders.strategies,
      signerHolder: secretSigner,
      authentication: authenticationConfigMaps,
      authenticationName: extensionAPIServerAuthentication,
    });
  }
  const impersonationProxy = setUpImpersonationProxy({
    manager,
    kubeConfig: options.kubeConfig,
    config,
    strategyHolder: holders.strategies,
    signerHolder: holders.impersonationSigner,
    authenticationConfigMaps,
    host,
    log,
    metrics,
  });
  log.info("reconcilers registered", {
    reconcilers: [
      "jwtcachefiller-controller",
      "webhookcachefiller-controller",
      "cachecleaner",
      "apicerts",
      "kube-cert-agent",
      "credentialissuer",
      "front-proxy-config",
      "impersonator-config",
      ...(strategies.secretSigningCertificate ? ["secret-signer"] : []),
      ...(strategies.certificateSigningRequestAPI ? ["csr-api-probe"] : []),
      ...(strategies.jwtCredential ? ["jwt-signing-keys", "jwt-credential-probe"] : []),
    ],
  });

  const stopping = new AbortController();
  const done = manager.run(stopping.signal);
  const proxyTokens = impersonationProxy.run(stopping.signal);
  // Reported through `done`; this keeps an early failure from being an unhandled rejection.
  done.catch(() => {});
  let synced = false;
  manager.informers.waitForSync(stopping.signal).then(
    () => {
      synced = true;
      log.info("informers synced");
    },
    () => {},
  );
  let shuttingDown = false;
  // Every controller's first pass too: a replica is not put behind the Service before it has
  // loaded the authenticators and the signing key that it can load, or its first logins would
  // fail while an older replica could have answered them.
  const ready = () =>
    !shuttingDown && synced && holders.servingCerts.get() !== undefined && manager.firstPassDone();

  const closers: ((drainMs: number) => Promise<void>)[] = [];
  let stopped: Promise<void> | undefined;
  const stop = (stopOptions?: { drainMs?: number }) => {
    stopped ??= shutdown(stopOptions?.drainMs ?? 0);
    return stopped;
  };
  const shutdown = async (drainMs: number) => {
    shuttingDown = true;
    log.info("stopping: draining connections", { drainMs });
    // Listeners first, while the controllers still run: the Lease is held and the certificates
    // and authenticators stay loaded until the last request in flight is answered.
    await Promise.all([...closers.map((close) => close(drainMs)), impersonationProxy.stop()]);
    log.info("stopping: waiting for controllers and releasing the Lease");
    stopping.abort();
    await done.catch((err: unknown) => log.error("controllers failed", { error: err }));
    await proxyTokens;
    csrClient?.close?.();
    jwtProbeClient?.close?.();
    // The reconciler may have started the proxy again while the controllers wound down.
    await impersonationProxy.stop();
    // JWT authenticators refresh their keys on timers, which would keep the process alive.
    for (const key of holders.authenticators.keys()) holders.authenticators.delete(key);
    log.info("stopped");
  };

  try {
    const webhook = createWebhookHandler({ logger: log, metrics, extrasDeliverable, groups });
    const reviews = new KubeRestClient(options.kubeConfig, { userAgent: "pinniped-concierge-metrics" });
    closers.push(async () => reviews.close?.());
    const metricsHandler = createMetricsHandler({ client: reviews, metrics, log });
    const api = await startAggregatedAPIServer({
      certs: holders.servingCerts,
      frontProxy: holders.frontProxy,
      host,
      port: config.aggregatedAPIServerPort,
      authenticators: holders.authenticators,
      issuer: holders.issuers,
      clientCertificateTTLSeconds: config.tokenCredentialRequest.clientCertificateTTLSeconds,
      logUsernamesAndGroups: config.audit.logUsernamesAndGroups,
      groups,
      log,
      metrics,
      // The webhook handler uses only the API that HTTP/1.1 and HTTP/2 compatibility requests share.
      extraRoutes: new Map([
        [validatePath, (req, res) => webhook(req as IncomingMessage, res as ServerResponse)],
        [metricsPath, metricsHandler],
        ...(jwtIssuer ? jwtIssuerRoutes(jwtIssuer) : []),
      ]),
    });
    // Listening on for a while also when no connection is open: once a stopping pod's address is
    // gone, a connection kube-proxy still sends it is lost (refused, or unanswered for the
    // aggregator's 5 s discovery check, which then marks the APIService unavailable).
    closers.push((drainMs) => api.close(drainMs, Math.min(keepListeningMs, drainMs)));
    log.info("aggregated API, admission webhook and metrics listening", {
      host,
      port: api.port,
      webhookPath: validatePath,
      metricsPath,
    });
    const health = await startHealthListener(host, config.healthPort, ready);
    closers.push(health.close);
    log.info("health listening", { host, port: health.port });
    return {
      ports: { aggregatedAPI: api.port, health: health.port },
      holders,
      manager,
      ready,
      stop,
      done,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The process entry: flags, config, signals. */
async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string", short: "c", default: "pinniped.yaml" },
      kubeconfig: { type: "string" },
      // Within the pod's terminationGracePeriodSeconds, less its preStop pause (config/07-deployment.yaml).
      "shutdown-drain-seconds": { type: "string", default: "15" },
      // Upstream's Deployment passes it: the pod's name and namespace, read from a downwardAPI volume.
      "downward-api-path": { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const drainSeconds = Number(values["shutdown-drain-seconds"]);
  if (!Number.isFinite(drainSeconds) || drainSeconds < 0) {
    throw new Error(
      `--shutdown-drain-seconds must be a number of seconds, not ${values["shutdown-drain-seconds"]}`,
    );
  }
  const podInfo = values["downward-api-path"] ? readDownwardAPI(values["downward-api-path"]) : {};
  const podNamespace = podInfo.namespace;
  let config = loadConfig(values.config, podNamespace ? { readNamespaceFile: () => podNamespace } : {});
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  for (const warning of config.warnings) log.warn(warning);
  const kubeConfig = values.kubeconfig ? loadKubeConfigFile(values.kubeconfig) : loadInClusterConfig();
  log.info("config loaded", {
    config: values.config,
    kubeconfig: values.kubeconfig ?? "in-cluster",
    namespace: config.namespace,
  });

  const podName = process.env.POD_NAME || podInfo.name;
  if (config.kubeCertAgent.image === undefined && podName) {
    const client = new KubeRestClient(kubeConfig);
    const own = await ownImage(
      client,
      { namespace: config.namespace, name: podName, containerName: conciergeContainerName },
      log,
    );
    client.close?.();
    if (own) {
      log.info("kube-cert-agent runs the Concierge's own image", { image: own.image });
      config = {
        ...config,
        kubeCertAgent: {
          ...config.kubeCertAgent,
          image: own.image,
          imagePullSecrets: config.kubeCertAgent.imagePullSecrets.length
            ? config.kubeCertAgent.imagePullSecrets
            : own.imagePullSecrets,
        },
      };
    }
  }
  const concierge = await startConcierge({
    config,
    kubeConfig,
    log,
    ...(podName ? { identity: podName } : {}),
  });
  // The process's own heap only: in-process tests and the local demo keep V8's default behaviour.
  collectWhenIdle();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // Upstream's rule: the first signal shuts down gracefully, a second one exits at once.
    if (++signals > 1) process.exit(1);
    log.info("shutdown requested", { signal });
    concierge.stop({ drainMs: drainSeconds * 1000 }).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error("shutdown failed", { error: err });
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  concierge.done.catch((err: unknown) => {
    log.error("controllers failed; exiting", { error: err });
    process.exit(1);
  });
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
