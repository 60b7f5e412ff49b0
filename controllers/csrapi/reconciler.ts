// The CertificateSigningRequestAPI strategy's health: a probe CSR at start and on an interval
// (sooner after a failure, and at once when a real request failed), published as the strategy's
// entry in CredentialIssuer.status. A signer that is off, RBAC that forbids approval, or a denied
// CSR shows here with its reason. Every replica probes: each one's issuer serves its own requests.
import { StrategyReason, StrategyStatus, StrategyType } from "../../apis/index.ts";
import { type StrategyHolder, strategyPublisher } from "../credentialissuer/holder.ts";
import {
  type ClusterInfo,
  clusterInfoFrontend,
  clusterInfoInformer,
  onClusterInfo,
} from "../kubecertagent/clusterinfo.ts";
import type { Controller, ControllerOptions, Syncer } from "../runtime/controller.ts";
import type { InformerSource } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import {
  type CSR,
  expirationSecondsFor,
  minExpirationSeconds,
  strategyLabel,
  strategyLabelValue,
} from "./decide.ts";
import { CSRAPIIssuer, csrResource } from "./issuer.ts";

export const controllerName = "csr-api-probe";
/** After a failed probe, the next one comes this soon (the interval applies while healthy). */
export const retryAfterFailureMs = 10_000;
/** Whom the probe's certificate names; it is never handed to anyone. */
export const probeUser = { username: "pinniped-concierge-csr-api-probe", groups: [] };

export interface CSRAPIDeps {
  issuer: CSRAPIIssuer;
  probeIntervalMs: number;
  /** The configured TokenCredentialRequest TTL, which the CSRs ask for (at least the API's minimum). */
  ttlSeconds: number;
  discoveryURLOverride?: string;
  strategyHolder: StrategyHolder;
}

export interface CSRAPIEnv {
  clusterInfo: InformerSource<ClusterInfo>;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

/** What the Success message says about lifetimes, so the status explains a certificate longer than the TTL. */
export function lifetimeNote(ttlSeconds: number): string {
  const seconds = expirationSecondsFor(ttlSeconds);
  if (seconds === ttlSeconds) return `certificates live ${seconds}s`;
  return (
    `certificates live ${seconds}s, the CSR API's minimum ` +
    `(the configured clientCertificateTTLSeconds is ${ttlSeconds}; kube-apiserver refuses expirationSeconds under ${minExpirationSeconds})`
  );
}

export function csrAPIController(env: CSRAPIEnv, deps: CSRAPIDeps): Controller {
  const key = controllerName;
  const { issuer } = deps;
  const publish = strategyPublisher(deps.strategyHolder, StrategyType.CertificateSigningRequestAPI);
  let probing = false;

  const sync: Syncer = async ({ signal, log }) => {
    const frontend = clusterInfoFrontend(env.clusterInfo, deps.discoveryURLOverride);
    if (!frontend.ok) {
      issuer.state.set({ ok: false, reason: `${issuer.name}: ${frontend.message}` });
      publish(StrategyStatus.Error, frontend.reason, frontend.message);
      return { requeueAfterMs: retryAfterFailureMs };
    }
    probing = true;
    let result: Awaited<ReturnType<CSRAPIIssuer["request"]>>;
    try {
      result = await issuer.request({ user: probeUser, ttlSeconds: deps.ttlSeconds, signal });
    } finally {
      probing = false;
    }
    if (signal.aborted) return undefined;
    if (!result.ok) {
      log.info("CertificateSigningRequest API probe failed", { reason: result.reason });
      issuer.state.set({ ok: false, reason: result.reason });
      publish(StrategyStatus.Error, StrategyReason.ProbeFailed, result.reason);
      return { requeueAfterMs: retryAfterFailureMs };
    }
    issuer.state.set({ ok: true });
    publish(
      StrategyStatus.Success,
      StrategyReason.ProbeSucceeded,
      `the kubernetes.io/kube-apiserver-client signer issued a probe certificate; ${lifetimeNote(deps.ttlSeconds)}`,
      frontend.frontend,
    );
    return { requeueAfterMs: deps.probeIntervalMs };
  };

  const controller = env
    .controller({ name: controllerName, sync })
    .withInformer(env.clusterInfo, onClusterInfo(key))
    .withInitialEvent(key);
  // A real request that failed: say so now, and probe again at once rather than at the interval.
  issuer.state.onChange((health) => {
    if (health.ok || probing) return;
    publish(StrategyStatus.Error, StrategyReason.ProbeFailed, health.reason);
    controller.enqueue(key);
  });
  return controller;
}

/** The issuer (for the issuers list) and its probe, registered with `manager`. */
export function register(
  manager: Manager,
  deps: Omit<CSRAPIDeps, "issuer"> & {
    client: ConstructorParameters<typeof CSRAPIIssuer>[0]["client"];
    labels?: Record<string, string>;
  },
): CSRAPIIssuer {
  const issuer = new CSRAPIIssuer({
    client: deps.client,
    csrs: manager.informers.informer<CSR>({
      ...csrResource,
      labelSelector: `${strategyLabel}=${strategyLabelValue}`,
    }),
    ...(deps.labels ? { labels: deps.labels } : {}),
  });
  csrAPIController(
    {
      clusterInfo: clusterInfoInformer(manager.informers),
      controller: (options) => manager.controller(options),
    },
    { ...deps, issuer },
  );
  return issuer;
}
