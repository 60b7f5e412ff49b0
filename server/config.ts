// The Concierge's config file (`pinniped.yaml` in the ConfigMap `<app>-config`): upstream's keys
// that apply here, plus ours. Unlike upstream, which parses leniently, an unknown key or a value of
// the wrong type stops the process at start with an error naming the key: a typo in a ConfigMap
// should not silently fall back to a default. Upstream's semantic checks keep upstream's messages.
import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject } from "ajv";
import { parse } from "yaml";
import { validateAllowedCiphers } from "../certs/ciphers.ts";
import { apiGroupSuffixErrors, defaultAPIGroupSuffix } from "../kube/groupsuffix.ts";
import type { Format, Level } from "../observability/logger.ts";
import {
  type RawStrategies,
  type StrategiesConfig,
  strategiesFromRaw,
  strategiesSchema,
} from "./strategyconfig.ts";
import {
  defaultClientCertificateTTLSeconds,
  maxClientCertificateTTLSeconds,
  minClientCertificateTTLSeconds,
} from "./tokencredentialrequest.ts";

/** The in-cluster ServiceAccount's namespace, when POD_NAMESPACE is not set. */
export const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

export interface ConciergeConfig {
  /** Where the Concierge's Secrets, Lease, Services and agent live. */
  namespace: string;
  names: {
    servingCertificateSecret: string;
    credentialIssuer: string;
    /** The Service of the aggregated API (and of the admission webhook); also the serving cert SAN. */
    apiService: string;
    agentServiceAccount: string;
    /** Ours: the Concierge Deployment, whose name the leader-election Lease takes (upstream's rule). */
    deployment: string;
    /** Ours: the ValidatingWebhookConfiguration whose caBundle follows the serving CA. */
    validatingWebhookConfiguration: string;
    impersonationLoadBalancerService: string;
    impersonationClusterIPService: string;
    impersonationTLSCertificateSecret: string;
    impersonationCACertificateSecret: string;
    impersonationSignerSecret: string;
    impersonationProxyServiceAccount: string;
    /** Ours: the JWTCredential strategy's signing keys, which the Concierge creates and rotates. */
    jwtSigningKeySecret: string;
  };
  labels: Record<string, string>;
  /** Upstream's: the groups are served as `<prefix>.concierge.<apiGroupSuffix>` (kube/groupsuffix.ts). */
  apiGroupSuffix: string;
  api: { servingCertificate: { durationSeconds: number; renewBeforeSeconds: number } };
  aggregatedAPIServerPort: number;
  /** Ours: plain HTTP for the kubelet's probes (/healthz, /readyz, /livez); /metrics is on the HTTPS port. */
  healthPort: number;
  tokenCredentialRequest: { clientCertificateTTLSeconds: number };
  impersonationProxyServerPort: number;
  /**
   * Upstream's `tls.onedottwo.allowedCiphers` (Go names, validated): the TLS 1.2 suites the
   * impersonation proxy offers, out of upstream's Default profile; empty, all of them.
   */
  tls: { oneDotTwoAllowedCiphers: string[] };
  /** Ours: how the proxy keeps long-lived connections alive behind load balancers. */
  impersonationProxy: {
    /**
     * HTTP/2 PINGs on client sessions and WebSocket pings on quiet exec/port-forward connections,
     * so a load balancer sees traffic on an idle watch or session; 0 disables.
     */
    pingIntervalSeconds: number;
    /** Cut an upgraded stream (exec, port-forward) after this long without bytes; 0 never does. */
    upgradeIdleTimeoutSeconds: number;
  };
  kubeCertAgent: {
    namePrefix: string;
    /** Unset: the Concierge's own image (server/ownimage.ts), which carries the agent command. */
    image?: string;
    imagePullSecrets: string[];
    priorityClassName: string;
    /** The agent pod's user and group; upstream's pod runs as root (0) unless these say otherwise. */
    runAsUser?: number;
    runAsGroup?: number;
  };
  /** Upstream's `discovery.url`: the server that the TokenCredentialRequest frontend advertises instead of cluster-info's. */
  discovery?: { url: string };
  audit: { logUsernamesAndGroups: boolean };
  logLevel: Level;
  /** Upstream's `log.format`: JSON lines (the default) or text. */
  logFormat: Format;
  /** Ours: more SANs on the serving certificate, for a Concierge run as a local process. */
  extraServingSANs: string[];
  /** Ours: what authenticators may dial. */
  outbound: {
    /** Link-local and cloud metadata addresses are refused unless this is true. */
    allowLinkLocalAddresses: boolean;
  };
  /** Upstream keys accepted without effect here, one line each; the process logs them at start. */
  warnings: string[];
  /** Ours: which login strategies run, in the order their issuers are asked (server/strategyconfig.ts). */
  strategies: StrategiesConfig;
}

const app = "pinniped-concierge";

/** Upstream's install values (30 and 25 days), not its code defaults: what a fresh install runs with. */
export const defaults = {
  names: {
    servingCertificateSecret: `${app}-api-tls-serving-certificate`,
    credentialIssuer: `${app}-config`,
    apiService: `${app}-api`,
    agentServiceAccount: `${app}-kube-cert-agent`,
    deployment: app,
    validatingWebhookConfiguration: `${app}-authenticators`,
    impersonationLoadBalancerService: `${app}-impersonation-proxy-load-balancer`,
    impersonationClusterIPService: `${app}-impersonation-proxy-cluster-ip`,
    impersonationTLSCertificateSecret: `${app}-impersonation-proxy-tls-serving-certificate`,
    impersonationCACertificateSecret: `${app}-impersonation-proxy-ca-certificate`,
    impersonationSignerSecret: `${app}-impersonation-proxy-signer-ca-certificate`,
    impersonationProxyServiceAccount: `${app}-impersonation-proxy`,
    /** Ours: the JWTCredential strategy's signing keys. */
    jwtSigningKeySecret: `${app}-jwt-signing-keys`,
  },
  durationSeconds: 2_592_000,
  renewBeforeSeconds: 2_160_000,
  aggregatedAPIServerPort: 10250,
  impersonationProxyServerPort: 8444,
  pingIntervalSeconds: 30,
  healthPort: 8080,
  kubeCertAgent: { namePrefix: `${app}-kube-cert-agent-` },
} as const;

// Upstream's name for a Secret its legacy cleanup controller deletes: accepted so that an upstream
// config file loads, unused because this Concierge never created such a Secret.
const legacyNames = ["impersonationProxyLegacySecret"];

/**
 * The admission plugins upstream's aggregated API server runs (k8s.io/apiserver's
 * RecommendedPluginOrder), the only names its `aggregatedAPIServerDisableAdmissionPlugins` takes.
 */
export const upstreamAdmissionPlugins = [
  "NamespaceLifecycle",
  "MutatingAdmissionPolicy",
  "MutatingAdmissionWebhook",
  "ValidatingAdmissionPolicy",
  "ValidatingAdmissionWebhook",
] as const;

const str = { type: "string" } as const;
const int = { type: "integer" } as const;
const strict = (properties: Record<string, unknown>) => ({
  type: "object",
  additionalProperties: false,
  properties,
});

const schema = strict({
  namespace: { type: "string", minLength: 1 },
  names: strict(
    Object.fromEntries(
      [...Object.keys(defaults.names), ...legacyNames].map((k) => [k, { type: "string", minLength: 1 }]),
    ),
  ),
  labels: { type: "object", additionalProperties: str },
  api: strict({ servingCertificate: strict({ durationSeconds: int, renewBeforeSeconds: int }) }),
  apiGroupSuffix: str,
  aggregatedAPIServerPort: int,
  impersonationProxyServerPort: int,
  impersonationProxy: strict({ pingIntervalSeconds: int, upgradeIdleTimeoutSeconds: int }),
  healthPort: int,
  metricsPort: int,
  tokenCredentialRequest: strict({ clientCertificateTTLSeconds: int }),
  kubeCertAgent: strict({
    namePrefix: str,
    image: str,
    imagePullSecrets: { type: "array", items: str },
    priorityClassName: str,
    runAsUser: { type: "integer", minimum: 0 },
    runAsGroup: { type: "integer", minimum: 0 },
  }),
  discovery: strict({ url: { type: ["string", "null"] } }),
  audit: strict({ logUsernamesAndGroups: str }),
  tls: strict({ onedottwo: strict({ allowedCiphers: { type: ["array", "null"], items: str } }) }),
  aggregatedAPIServerDisableAdmissionPlugins: { type: ["array", "null"], items: str },
  logLevel: str,
  log: strict({ level: str, format: str }),
  extraServingSANs: { type: "array", items: { type: "string", minLength: 1 } },
  outbound: strict({ allowLinkLocalAddresses: { type: "boolean" } }),
  strategies: strategiesSchema,
});

const ajv = new Ajv({ allErrors: true });
const validateShape = ajv.compile(schema);

/** The raw file, as the schema has checked it. */
interface RawConfig {
  namespace?: string;
  names?: Record<string, string>;
  labels?: Record<string, string>;
  api?: { servingCertificate?: { durationSeconds?: number; renewBeforeSeconds?: number } };
  apiGroupSuffix?: string;
  aggregatedAPIServerPort?: number;
  impersonationProxyServerPort?: number;
  impersonationProxy?: { pingIntervalSeconds?: number; upgradeIdleTimeoutSeconds?: number };
  healthPort?: number;
  metricsPort?: number;
  tokenCredentialRequest?: { clientCertificateTTLSeconds?: number };
  kubeCertAgent?: Partial<ConciergeConfig["kubeCertAgent"]>;
  discovery?: { url?: string | null };
  audit?: { logUsernamesAndGroups?: string };
  tls?: { onedottwo?: { allowedCiphers?: string[] | null } };
  aggregatedAPIServerDisableAdmissionPlugins?: string[] | null;
  logLevel?: string;
  log?: { level?: string; format?: string };
  extraServingSANs?: string[];
  outbound?: { allowLinkLocalAddresses?: boolean };
  strategies?: RawStrategies;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** `a.b.c` from ajv's `/a/b/c`, with the offending key appended for unknown keys. */
function describe(error: ErrorObject): string {
  const path = error.instancePath.split("/").slice(1).join(".");
  if (error.keyword === "additionalProperties") {
    const key = (error.params as { additionalProperty: string }).additionalProperty;
    return `unknown key ${path ? `${path}.${key}` : key}`;
  }
  return `${path || "the config"}: ${error.message ?? "is invalid"}`;
}

// Upstream's levels, mapped onto this logger's: upstream's "" shows warnings and errors only,
// "all" adds what trace would (this logger has nothing beyond trace).
const logLevels: Record<string, Level> = {
  "": "warn",
  info: "info",
  debug: "debug",
  trace: "trace",
  all: "trace",
};

// k8s.io/apimachinery's IsDNS1123Subdomain, for priorityClassName.
const dns1123Label = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const dns1123Subdomain = new RegExp(`^${dns1123Label}(\\.${dns1123Label})*$`);
function dns1123SubdomainError(value: string): string | undefined {
  if (value.length > 253) return "must be no more than 253 characters";
  if (!dns1123Subdomain.test(value)) {
    return (
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', " +
      "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation " +
      "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
  }
  return undefined;
}

function port(value: number | undefined, fallback: number, key: string, errors: string[]): number {
  const p = value ?? fallback;
  if (p < 1024 || p > 65535) errors.push(`validate ${key}: must be within range 1024 to 65535`);
  return p;
}

export interface ConfigEnvironment {
  /** POD_NAMESPACE and friends; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Reads the ServiceAccount namespace file; undefined when there is none (not in a pod). */
  readNamespaceFile?: () => string | undefined;
}

function inClusterNamespace(): string | undefined {
  try {
    return readFileSync(serviceAccountNamespaceFile, "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Validates and completes a parsed config file. Every problem is collected, so one start shows
 * them all; the thrown ConfigError lists them one per line.
 */
export function configFromObject(raw: unknown, environment: ConfigEnvironment = {}): ConciergeConfig {
  const input = raw ?? {};
  if (!validateShape(input)) {
    throw new ConfigError(
      `invalid config file:\n${(validateShape.errors ?? []).map((e) => `  ${describe(e)}`).join("\n")}`,
    );
  }
  const c = input as RawConfig;
  const errors: string[] = [];

  const durationSeconds = c.api?.servingCertificate?.durationSeconds ?? defaults.durationSeconds;
  const renewBeforeSeconds = c.api?.servingCertificate?.renewBeforeSeconds ?? defaults.renewBeforeSeconds;
  // Upstream's order: a non-positive renewBefore is reported before the comparison.
  if (renewBeforeSeconds <= 0) errors.push("validate api: renewBefore must be positive");
  else if (durationSeconds < renewBeforeSeconds) {
    errors.push("validate api: durationSeconds cannot be smaller than renewBeforeSeconds");
  }

  const apiGroupSuffix = c.apiGroupSuffix ?? defaultAPIGroupSuffix;
  for (const e of apiGroupSuffixErrors(apiGroupSuffix)) errors.push(`validate apiGroupSuffix: ${e}`);

  const aggregatedAPIServerPort = port(
    c.aggregatedAPIServerPort,
    defaults.aggregatedAPIServerPort,
    "aggregatedAPIServerPort",
    errors,
  );
  if (c.healthPort !== undefined && c.metricsPort !== undefined && c.healthPort !== c.metricsPort) {
    errors.push("validate healthPort: healthPort and metricsPort name the same listener; set one of them");
  }
  const healthPort = port(c.healthPort ?? c.metricsPort, defaults.healthPort, "healthPort", errors);
  if (healthPort === aggregatedAPIServerPort) {
    errors.push("validate healthPort: must differ from aggregatedAPIServerPort");
  }

  const impersonationProxyServerPort = port(
    c.impersonationProxyServerPort,
    defaults.impersonationProxyServerPort,
    "impersonationProxyServerPort",
    errors,
  );
  if (
    impersonationProxyServerPort === aggregatedAPIServerPort ||
    impersonationProxyServerPort === healthPort
  ) {
    errors.push(
      "validate impersonationProxyServerPort: must differ from aggregatedAPIServerPort and healthPort",
    );
  }
  const pingIntervalSeconds = c.impersonationProxy?.pingIntervalSeconds ?? defaults.pingIntervalSeconds;
  const upgradeIdleTimeoutSeconds = c.impersonationProxy?.upgradeIdleTimeoutSeconds ?? 0;
  if (pingIntervalSeconds < 0 || upgradeIdleTimeoutSeconds < 0) {
    errors.push("validate impersonationProxy: intervals and timeouts must not be negative (0 disables)");
  }

  const ttl = c.tokenCredentialRequest?.clientCertificateTTLSeconds ?? defaultClientCertificateTTLSeconds;
  if (ttl < minClientCertificateTTLSeconds || ttl > maxClientCertificateTTLSeconds) {
    errors.push(
      `validate tokenCredentialRequest: clientCertificateTTLSeconds must be within range ` +
        `${minClientCertificateTTLSeconds} to ${maxClientCertificateTTLSeconds}`,
    );
  }

  const priorityClassName = c.kubeCertAgent?.priorityClassName ?? "";
  const priorityError = priorityClassName === "" ? undefined : dns1123SubdomainError(priorityClassName);
  if (priorityError) errors.push(`validate kubeCertAgent: invalid priorityClassName: ${priorityError}`);

  const discoveryURL = c.discovery?.url ?? undefined;
  if (discoveryURL !== undefined && !/^https:\/\/[^/?#]+/.test(discoveryURL)) {
    errors.push("validate discovery: url must be an https URL with a host");
  }

  const auditSetting = c.audit?.logUsernamesAndGroups ?? "";
  if (!["", "enabled", "disabled"].includes(auditSetting)) {
    errors.push(
      "validate audit: invalid logUsernamesAndGroups format, valid choices are 'enabled', 'disabled', " +
        "or empty string (equivalent to 'disabled')",
    );
  }

  if (c.logLevel !== undefined && c.log?.level !== undefined && c.logLevel !== c.log.level) {
    errors.push("validate log: logLevel and log.level disagree; set log.level only");
  }
  const levelSetting = c.log?.level ?? c.logLevel;
  const logLevel = levelSetting === undefined ? "info" : logLevels[levelSetting];
  if (logLevel === undefined) {
    errors.push("invalid log level, valid choices are the empty string, info, debug, trace and all");
  }
  const formatSetting = c.log?.format ?? "";
  if (!["", "json", "text"].includes(formatSetting)) {
    errors.push("invalid log format, valid choices are the empty string, 'json' and 'text'");
  }

  // Upstream's aggregated API runs admission plugins and this one runs none, so there is nothing to
  // disable; names upstream would refuse are refused here too, with upstream's message.
  const warnings: string[] = [];
  const disabledPlugins = c.aggregatedAPIServerDisableAdmissionPlugins ?? [];
  const unknownPlugins = disabledPlugins.filter(
    (name) => !(upstreamAdmissionPlugins as readonly string[]).includes(name),
  );
  if (unknownPlugins.length > 0) {
    errors.push(
      `validate aggregatedAPIServerDisableAdmissionPlugins: admission plugin names not recognized: ` +
        `[${unknownPlugins.join(" ")}] (each must be one of [${upstreamAdmissionPlugins.join(" ")}])`,
    );
  } else if (disabledPlugins.length > 0) {
    warnings.push(
      "aggregatedAPIServerDisableAdmissionPlugins is accepted and has no effect: this aggregated API runs no admission plugins",
    );
  }
  // Upstream's rule: the aggregated API and the webhook take TLS 1.3 only, so the list narrows the
  // TLS 1.2 suites of the impersonation proxy; a name outside upstream's list stops the process.
  const ciphers = validateAllowedCiphers(c.tls?.onedottwo?.allowedCiphers ?? []);
  if (!ciphers.ok) errors.push(`validate tls.onedottwo.allowedCiphers: ${ciphers.error}`);

  const env = environment.env ?? process.env;
  const namespace =
    c.namespace ?? (env.POD_NAMESPACE || (environment.readNamespaceFile ?? inClusterNamespace)());
  if (!namespace) {
    errors.push(
      `validate namespace: not set, and neither POD_NAMESPACE nor ${serviceAccountNamespaceFile} gives one`,
    );
  }

  if (errors.length > 0 || !namespace || !logLevel) {
    throw new ConfigError(`invalid config file:\n${errors.map((e) => `  ${e}`).join("\n")}`);
  }
  const names = c.names ?? {};
  return {
    namespace,
    names: {
      servingCertificateSecret: names.servingCertificateSecret ?? defaults.names.servingCertificateSecret,
      credentialIssuer: names.credentialIssuer ?? defaults.names.credentialIssuer,
      apiService: names.apiService ?? defaults.names.apiService,
      agentServiceAccount: names.agentServiceAccount ?? defaults.names.agentServiceAccount,
      deployment: names.deployment ?? defaults.names.deployment,
      validatingWebhookConfiguration:
        names.validatingWebhookConfiguration ?? defaults.names.validatingWebhookConfiguration,
      impersonationLoadBalancerService:
        names.impersonationLoadBalancerService ?? defaults.names.impersonationLoadBalancerService,
      impersonationClusterIPService:
        names.impersonationClusterIPService ?? defaults.names.impersonationClusterIPService,
      impersonationTLSCertificateSecret:
        names.impersonationTLSCertificateSecret ?? defaults.names.impersonationTLSCertificateSecret,
      impersonationCACertificateSecret:
        names.impersonationCACertificateSecret ?? defaults.names.impersonationCACertificateSecret,
      impersonationSignerSecret: names.impersonationSignerSecret ?? defaults.names.impersonationSignerSecret,
      impersonationProxyServiceAccount:
        names.impersonationProxyServiceAccount ?? defaults.names.impersonationProxyServiceAccount,
      jwtSigningKeySecret: names.jwtSigningKeySecret ?? defaults.names.jwtSigningKeySecret,
    },
    labels: { ...c.labels },
    apiGroupSuffix,
    api: { servingCertificate: { durationSeconds, renewBeforeSeconds } },
    aggregatedAPIServerPort,
    healthPort,
    tokenCredentialRequest: { clientCertificateTTLSeconds: ttl },
    impersonationProxyServerPort,
    impersonationProxy: { pingIntervalSeconds, upgradeIdleTimeoutSeconds },
    kubeCertAgent: {
      namePrefix: c.kubeCertAgent?.namePrefix ?? defaults.kubeCertAgent.namePrefix,
      ...(c.kubeCertAgent?.image ? { image: c.kubeCertAgent.image } : {}),
      imagePullSecrets: [...(c.kubeCertAgent?.imagePullSecrets ?? [])],
      priorityClassName,
      ...(c.kubeCertAgent?.runAsUser !== undefined ? { runAsUser: c.kubeCertAgent.runAsUser } : {}),
      ...(c.kubeCertAgent?.runAsGroup !== undefined ? { runAsGroup: c.kubeCertAgent.runAsGroup } : {}),
    },
    ...(discoveryURL !== undefined ? { discovery: { url: discoveryURL } } : {}),
    audit: { logUsernamesAndGroups: auditSetting === "enabled" },
    logLevel,
    logFormat: formatSetting === "text" ? "text" : "json",
    extraServingSANs: [...(c.extraServingSANs ?? [])],
    outbound: { allowLinkLocalAddresses: c.outbound?.allowLinkLocalAddresses ?? false },
    warnings,
    strategies: strategiesFromRaw(c.strategies),
    tls: { oneDotTwoAllowedCiphers: ciphers.ok ? ciphers.names : [] },
  };
}

/** Parses YAML (JSON is YAML too) and validates it. */
export function parseConfig(text: string, environment?: ConfigEnvironment): ConciergeConfig {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new ConfigError(`invalid config file: not YAML: ${(err as Error).message}`);
  }
  if (raw !== null && raw !== undefined && (typeof raw !== "object" || Array.isArray(raw))) {
    throw new ConfigError("invalid config file: the top level must be a mapping");
  }
  return configFromObject(raw, environment);
}

/**
 * Upstream's `--downward-api-path` folder (a downwardAPI volume with the files `name` and
 * `namespace`), so that upstream's Deployment, which sets no POD_NAME or POD_NAMESPACE, runs this
 * image; a missing file is left out.
 */
export function readDownwardAPI(dir: string): { name?: string; namespace?: string } {
  const read = (file: string) => {
    try {
      return readFileSync(`${dir}/${file}`, "utf8").trim() || undefined;
    } catch {
      return undefined;
    }
  };
  const name = read("name");
  const namespace = read("namespace");
  return { ...(name ? { name } : {}), ...(namespace ? { namespace } : {}) };
}

export function loadConfig(path: string, environment?: ConfigEnvironment): ConciergeConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`could not read config file ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, environment);
}
