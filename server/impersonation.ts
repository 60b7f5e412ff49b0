// Puts the impersonation proxy together for the Concierge process: its token client, decider and
// listener, and the holders its TLS is composed from (impersonator/tlsholder.ts): what the
// impersonator-config reconciler publishes (serving chain, signer CAs) and the cluster's own
// client CA (from kube-system/extension-apiserver-authentication), so certificates from either
// signer log in.
import { readFileSync } from "node:fs";
import type { SignerHolder } from "../certs/signer.ts";
import type { StrategyHolder } from "../controllers/credentialissuer/holder.ts";
import { register as registerImpersonatorConfig } from "../controllers/impersonatorconfig/reconciler.ts";
import type { InformerSource } from "../controllers/runtime/informer.ts";
import type { Manager } from "../controllers/runtime/manager.ts";
import { clusterAnonymousPolicy, probeAnonymousAuthentication } from "../impersonator/anonymousauth.ts";
import { clientCAFromConfigMap } from "../impersonator/clientca.ts";
import { ProxyCredentials } from "../impersonator/credentials.ts";
import { createRequestDecider } from "../impersonator/decider.ts";
import { ImpersonationProxyRunner } from "../impersonator/server.ts";
import { composedProxyTLS } from "../impersonator/tlsholder.ts";
import { ServiceAccountTokenClient } from "../impersonator/tokenclient.ts";
import { realClock } from "../kube/clock.ts";
import { Holder, sameValue } from "../kube/holder.ts";
import type { ClusterAccess } from "../kube/kubeconfig.ts";
import type { KubeObject } from "../kube/resource.ts";
import { KubeRestClient } from "../kube/rest.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { ConciergeConfig } from "./config.ts";
import { extensionAPIServerAuthentication } from "./frontproxy.ts";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

/**
 * kube-apiserver's URL and CA as the Concierge's own kubeconfig (or in-cluster config) names them;
 * without a CA there, the system's roots verify it, as they would for the Concierge's own client.
 */
function upstreamOf(kubeConfig: ClusterAccess): { url: string; caPEM?: string } {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error("the Concierge's kubeconfig has no current cluster");
  if (cluster.caData)
    return { url: cluster.server, caPEM: Buffer.from(cluster.caData, "base64").toString("utf8") };
  if (cluster.caFile) return { url: cluster.server, caPEM: readFileSync(cluster.caFile, "utf8") };
  return { url: cluster.server };
}

export interface ImpersonationProxyParts {
  /** Runs the token client until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** Stops the proxy listener, if it runs. */
  stop(): Promise<void>;
}

export function setUpImpersonationProxy(options: {
  manager: Manager;
  kubeConfig: ClusterAccess;
  config: ConciergeConfig;
  strategyHolder: StrategyHolder;
  signerHolder: SignerHolder;
  authenticationConfigMaps: InformerSource<ConfigMap>;
  host: string;
  log: Logger;
  metrics: Metrics;
}): ImpersonationProxyParts {
  const { config, log, metrics } = options;
  const client = new KubeRestClient(options.kubeConfig, {
    userAgent: "pinniped-concierge-impersonation-proxy",
  });
  const tokens = new ServiceAccountTokenClient({
    client,
    namespace: config.namespace,
    serviceAccountName: config.names.impersonationProxyServiceAccount,
    log: log.child({ component: "impersonation-proxy-token" }),
    metrics,
  });
  const credentials = new ProxyCredentials();
  const clusterClientCA = new Holder<string | undefined>(undefined, { equal: sameValue });
  const tls = composedProxyTLS(credentials, clusterClientCA);
  const ours = (cm: ConfigMap) =>
    cm.metadata?.name === extensionAPIServerAuthentication.name &&
    cm.metadata?.namespace === extensionAPIServerAuthentication.namespace;
  const loadClientCA = (cm: ConfigMap) => {
    if (!ours(cm)) return;
    try {
      clusterClientCA.set(clientCAFromConfigMap(cm));
    } catch (err) {
      clusterClientCA.set(undefined);
      log.warn("the cluster's client CA is unusable; the proxy accepts only its own signer's certificates", {
        error: (err as Error).message,
      });
    }
  };
  options.authenticationConfigMaps.addHandler({
    add: loadClientCA,
    update: (_old, cm) => loadClientCA(cm),
    delete: (cm) => {
      if (ours(cm)) clusterClientCA.set(undefined);
    },
  });

  const proxyLog = log.child({ component: "impersonation-proxy" });
  const upstream = upstreamOf(options.kubeConfig);
  const runner = new ImpersonationProxyRunner({
    port: config.impersonationProxyServerPort,
    host: options.host,
    tls,
    decide: createRequestDecider({
      client,
      proxyToken: () => tokens.token(),
      log: proxyLog,
      metrics,
      anonymousAllowed: clusterAnonymousPolicy({
        probe: probeAnonymousAuthentication(upstream),
        clock: realClock,
        log: proxyLog,
      }),
    }),
    upstream,
    log: proxyLog,
    metrics,
    pingIntervalMs: config.impersonationProxy.pingIntervalSeconds * 1000,
    upgradeIdleTimeoutMs: config.impersonationProxy.upgradeIdleTimeoutSeconds * 1000,
    allowedCiphers: config.tls.oneDotTwoAllowedCiphers,
  });

  registerImpersonatorConfig(options.manager, {
    namespace: config.namespace,
    credentialIssuerName: config.names.credentialIssuer,
    names: {
      loadBalancerService: config.names.impersonationLoadBalancerService,
      clusterIPService: config.names.impersonationClusterIPService,
      tlsSecret: config.names.impersonationTLSCertificateSecret,
      caSecret: config.names.impersonationCACertificateSecret,
      signerSecret: config.names.impersonationSignerSecret,
    },
    labels: config.labels,
    appLabel: config.labels.app ?? "pinniped-concierge",
    proxyPort: config.impersonationProxyServerPort,
    runner,
    strategyHolder: options.strategyHolder,
    signerHolder: options.signerHolder,
    credentials,
  });

  return {
    run: (signal) => tokens.run(signal),
    stop: async () => {
      await runner.stop();
      client.close?.();
    },
  };
}
