// The impersonator-config reconciler's decisions (upstream's impersonator_config.go) as pure
// functions of cached objects: spec validation, control-plane detection, whether the proxy runs,
// the Services' shape and the patch that gets them there, the advertised endpoint, the strategy.
import { isIP } from "node:net";
import { isDeepStrictEqual } from "node:util";
import {
  FrontendType,
  type ImpersonationProxySpec,
  StrategyReason,
  StrategyStatus,
} from "../../apis/index.ts";
import type { ServingNames } from "../../certs/issue.ts";
import type { KubeObject } from "../../kube/resource.ts";
import type { StrategyUpdate } from "../credentialissuer/merge.ts";

export type Node = KubeObject;

export interface ServicePort {
  name?: string;
  protocol?: string;
  port: number;
  targetPort?: number | string;
  [field: string]: unknown;
}

export type Service = KubeObject & {
  spec?: {
    type?: string;
    ports?: ServicePort[];
    selector?: Record<string, string>;
    loadBalancerIP?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    [field: string]: unknown;
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } };
};

/** Upstream's bookkeeping of which annotation keys came from the spec. */
export const annotationKeysAnnotation = "credentialissuer.pinniped.dev/annotation-keys";

export type Mode = "auto" | "enabled" | "disabled";
export type ServiceType = "LoadBalancer" | "ClusterIP" | "None";

/** A validated spec. */
export interface ProxyConfig {
  mode: Mode;
  serviceType: ServiceType;
  loadBalancerIP?: string;
  annotations: Record<string, string>;
  externalEndpoint?: Endpoint;
  tls?: { secretName: string; certificateAuthorityData?: string };
}

export interface Endpoint {
  host: string;
  /** undefined when the default (443) applies. */
  port?: number;
}

const specPrefix = "could not load CredentialIssuer spec.impersonationProxy: ";

/** Upstream's step 1 and 2; errors carry upstream's messages. */
export function validateSpec(spec: ImpersonationProxySpec | undefined): ProxyConfig {
  if (!spec) throw new Error("could not load CredentialIssuer: spec.impersonationProxy is nil");
  const mode = spec.mode as string;
  if (mode !== "auto" && mode !== "enabled" && mode !== "disabled")
    throw new Error(`${specPrefix}invalid proxy mode "${mode}" (expected auto, disabled, or enabled)`);
  const serviceType = ((spec.service?.type as string | undefined) || "LoadBalancer") as string;
  const config: ProxyConfig = {
    mode,
    serviceType: serviceType as ServiceType,
    annotations: { ...(spec.service?.annotations ?? {}) },
  };
  if (spec.service?.loadBalancerIP) config.loadBalancerIP = spec.service.loadBalancerIP;
  if (spec.tls)
    config.tls = {
      secretName: spec.tls.secretName ?? "",
      ...(spec.tls.certificateAuthorityData
        ? { certificateAuthorityData: spec.tls.certificateAuthorityData }
        : {}),
    };
  if (mode === "disabled") return config;
  if (serviceType !== "None" && serviceType !== "LoadBalancer" && serviceType !== "ClusterIP")
    throw new Error(
      `${specPrefix}invalid service type "${serviceType}" (expected None, LoadBalancer, or ClusterIP)`,
    );
  if (config.loadBalancerIP !== undefined && isIP(config.loadBalancerIP) === 0)
    throw new Error(`${specPrefix}invalid LoadBalancerIP "${config.loadBalancerIP}"`);
  if (serviceType === "None" && !spec.externalEndpoint)
    throw new Error(`${specPrefix}externalEndpoint must be set when service.type is None`);
  if (spec.externalEndpoint) {
    try {
      config.externalEndpoint = parseEndpoint(spec.externalEndpoint);
    } catch (error) {
      throw new Error(
        `${specPrefix}invalid ExternalEndpoint "${spec.externalEndpoint}": ${(error as Error).message}`,
      );
    }
  }
  if (config.tls && config.tls.secretName === "")
    throw new Error("must provide impersonationSpec.TLS.secretName if impersonationSpec.TLS is provided");
  return config;
}

const dnsName = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

/** Upstream's endpointaddr.Parse: `host[:port]`, IPv6 in brackets when a port is given. */
export function parseEndpoint(text: string): Endpoint {
  let host = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] ?? "";
    portText = bracketed[2];
    if (isIP(host) !== 6) throw new Error("host is not a valid IPv6 address");
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host = "", portText] = text.split(":");
  }
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535)
      throw new Error(`invalid port "${portText}"`);
  }
  if (isIP(host) === 0 && !dnsName.test(host))
    throw new Error("host must be a valid IP address or DNS hostname");
  const port = portText === undefined ? undefined : Number(portText);
  return port === undefined || port === 443 ? { host } : { host, port };
}

/** `host[:port]` as a URL authority: brackets around IPv6, no `:443`. */
export function endpointString(endpoint: Endpoint): string {
  const host = isIP(endpoint.host) === 6 ? `[${endpoint.host}]` : endpoint.host;
  return endpoint.port === undefined ? host : `${host}:${endpoint.port}`;
}

/** upstream's clusterhost rule. */
export function isControlPlaneNode(node: Node): boolean {
  const labels = node.metadata?.labels ?? {};
  if ("node-role.kubernetes.io/control-plane" in labels || "node-role.kubernetes.io/master" in labels)
    return true;
  const role = labels["kubernetes.io/node-role"];
  return role === "control-plane" || role === "master";
}

/**
 * shouldRun = enabled, or auto without control-plane nodes. Upstream lists nodes once per
 * process; here it is re-decided from the Node informer on every change. No nodes at all is
 * upstream's error (`no nodes found`), which matters only in auto mode.
 */
export function shouldRun(config: ProxyConfig, nodes: readonly Node[]): boolean {
  if (config.mode === "enabled") return true;
  if (config.mode === "disabled") return false;
  if (nodes.length === 0) throw new Error("no nodes found");
  return !nodes.some(isControlPlaneNode);
}

export interface ServiceSettings {
  namespace: string;
  labels: Record<string, string>;
  appLabel: string;
  proxyPort: number;
}

/** The Service upstream would create for `type` (LoadBalancer or ClusterIP). */
export function desiredService(
  name: string,
  type: "LoadBalancer" | "ClusterIP",
  config: ProxyConfig,
  settings: ServiceSettings,
): Service {
  const annotations = { ...config.annotations };
  const keys = Object.keys(config.annotations).sort();
  if (keys.length > 0) annotations[annotationKeysAnnotation] = JSON.stringify(keys);
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace: settings.namespace,
      labels: { ...settings.labels },
      ...(keys.length > 0 ? { annotations } : {}),
    },
    spec: {
      type,
      ports: [{ protocol: "TCP", port: 443, targetPort: settings.proxyPort }],
      selector: { app: settings.appLabel },
      ...(type === "LoadBalancer" && config.loadBalancerIP ? { loadBalancerIP: config.loadBalancerIP } : {}),
    },
  };
}

/**
 * A JSON merge patch that brings `existing` to `desired` on the fields we own, or undefined when
 * nothing differs. Labels and annotations set by others are left alone; spec annotation keys
 * that the bookkeeping annotation lists but the spec no longer has are removed, as upstream does.
 * Ports are replaced as a whole: the Service exists only to carry ours.
 */
export function servicePatch(existing: Service, desired: Service): Record<string, unknown> | undefined {
  const metadata: Record<string, unknown> = {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(desired.metadata?.labels ?? {}))
    if (existing.metadata?.labels?.[k] !== v) labels[k] = v;
  if (Object.keys(labels).length > 0) metadata.labels = labels;

  const have = existing.metadata?.annotations ?? {};
  const want = desired.metadata?.annotations ?? {};
  const annotations: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(want)) if (have[k] !== v) annotations[k] = v;
  for (const k of previousSpecKeys(have)) if (!(k in want) && k in have) annotations[k] = null;
  if (!(annotationKeysAnnotation in want) && annotationKeysAnnotation in have)
    annotations[annotationKeysAnnotation] = null;
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;

  const spec: Record<string, unknown> = {};
  const e = existing.spec ?? {};
  const d = desired.spec ?? {};
  if (e.type !== d.type) spec.type = d.type;
  if (!isDeepStrictEqual(e.selector ?? {}, d.selector ?? {})) spec.selector = d.selector;
  if ((e.loadBalancerIP ?? "") !== (d.loadBalancerIP ?? "")) spec.loadBalancerIP = d.loadBalancerIP ?? null;
  if (!samePorts(e.ports ?? [], d.ports ?? [])) spec.ports = d.ports;

  const patch: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) patch.metadata = metadata;
  if (Object.keys(spec).length > 0) patch.spec = spec;
  return Object.keys(patch).length > 0 ? patch : undefined;
}

function previousSpecKeys(annotations: Record<string, string>): string[] {
  try {
    const keys: unknown = JSON.parse(annotations[annotationKeysAnnotation] ?? "[]");
    return Array.isArray(keys) ? keys.filter((k): k is string => typeof k === "string") : [];
  } catch {
    return [];
  }
}

/** Compares what we set; the API server adds defaults (nodePort, an empty name) that we ignore. */
function samePorts(have: readonly ServicePort[], want: readonly ServicePort[]): boolean {
  return (
    have.length === want.length &&
    have.every((p, i) => {
      const w = want[i];
      return (
        w !== undefined &&
        p.port === w.port &&
        (p.protocol ?? "TCP") === (w.protocol ?? "TCP") &&
        String(p.targetPort ?? p.port) === String(w.targetPort ?? w.port)
      );
    })
  );
}

/** Which Service of which type should exist, if any. */
export function wantedServiceType(
  config: ProxyConfig,
  running: boolean,
): "LoadBalancer" | "ClusterIP" | undefined {
  if (!running || config.serviceType === "None") return undefined;
  return config.serviceType;
}

/** Where clients connect, and the names the serving certificate must carry. */
export interface EndpointInfo {
  endpoint: string;
  names: ServingNames;
}

/**
 * Upstream's order: externalEndpoint; else the ClusterIP Service's IPs; else the LoadBalancer's
 * first ingress hostname, else its first valid ingress IP. undefined means not ready yet.
 */
export function endpointInfo(
  config: ProxyConfig,
  clusterIPService: Service | undefined,
  loadBalancerService: Service | undefined,
): EndpointInfo | undefined {
  if (config.externalEndpoint) {
    const { host } = config.externalEndpoint;
    return {
      endpoint: endpointString(config.externalEndpoint),
      names: isIP(host) ? { ips: [host] } : { dnsNames: [host] },
    };
  }
  if (config.serviceType === "ClusterIP") {
    const ip = clusterIPService?.spec?.clusterIP;
    if (!ip || ip === "None") return undefined;
    const ips = (clusterIPService?.spec?.clusterIPs ?? [ip]).filter((i) => isIP(i) !== 0);
    return { endpoint: endpointString({ host: ip }), names: { ips: ips.length > 0 ? ips : [ip] } };
  }
  const ingress = loadBalancerService?.status?.loadBalancer?.ingress ?? [];
  const hostname = ingress.find((i) => i.hostname)?.hostname;
  if (hostname) return { endpoint: hostname, names: { dnsNames: [hostname] } };
  const ip = ingress.find((i) => i.ip && isIP(i.ip) !== 0)?.ip;
  if (ip) return { endpoint: endpointString({ host: ip }), names: { ips: [ip] } };
  return undefined;
}

export type Strategy = Omit<StrategyUpdate, "type">;

export const disabledByConfig: Strategy = {
  status: StrategyStatus.Error,
  reason: StrategyReason.Disabled,
  message: "impersonation proxy was explicitly disabled by configuration",
};

export const disabledAutomatically: Strategy = {
  status: StrategyStatus.Error,
  reason: StrategyReason.Disabled,
  message: "automatically determined that impersonation proxy should be disabled",
};

export const pending: Strategy = {
  status: StrategyStatus.Error,
  reason: StrategyReason.Pending,
  message: "waiting for load balancer Service to be assigned IP or hostname",
};

export function listening(endpoint: string, caBundlePEM: string): Strategy {
  return {
    status: StrategyStatus.Success,
    reason: StrategyReason.Listening,
    message: "impersonation proxy is ready to accept client connections",
    frontend: {
      type: FrontendType.ImpersonationProxy,
      impersonationProxyInfo: {
        endpoint: `https://${endpoint}`,
        certificateAuthorityData: Buffer.from(caBundlePEM).toString("base64"),
      },
    },
  };
}

/** Upstream reports a Conflict or AlreadyExists (another writer raced us) as Pending. */
export function setupError(message: string, raced: boolean): Strategy {
  return {
    status: StrategyStatus.Error,
    reason: raced ? StrategyReason.Pending : StrategyReason.ErrorDuringSetup,
    message,
  };
}
