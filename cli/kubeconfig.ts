// `pinniped get kubeconfig`: discovers the Concierge with the admin kubeconfig and writes a
// kubeconfig whose user runs `pinniped login static` or `pinniped login oidc` as a kubectl exec
// plugin, as upstream's cmd/pinniped/cmd/kubeconfig.go.

import { readFileSync } from "node:fs";
import { chmod, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import type { RestClient } from "../kube/rest.ts";
import { type ScopeNeed, scopesForClaimMappings } from "./claim-scopes.ts";
import {
  authenticatorKind,
  defaultAPIGroupSuffix,
  parseFlags,
  UsageError,
  validateAPIGroupSuffix,
} from "./flags.ts";
import {
  type ConciergeMode,
  type CredentialIssuer,
  countCerts,
  decodeBase64Strict,
  discoverOIDCCABundle,
  type JWTAuthenticatorSpecLike,
  parseConciergeMode,
  pickFrontend,
  strategyLines,
  waitWhilePending,
} from "./kubeconfig-discovery.ts";
import { parseGoDuration } from "./kubeconfig-duration.ts";
import { pruneScopes, validateConnection } from "./kubeconfig-http.ts";

export const defaultInstallHint =
  "The pinniped CLI does not appear to be installed.  See https://get.pinniped.dev/cli for more details";
export const defaultOIDCScopes = [
  "offline_access",
  "openid",
  "pinniped:request-audience",
  "username",
  "groups",
];

export const getKubeconfigHelp = `Generate a Pinniped-based kubeconfig for a cluster

Usage:
  pinniped get kubeconfig [flags]

Flags:
      --concierge-api-group-suffix string        Concierge API group suffix (default "pinniped.dev")
      --concierge-authenticator-name string      Concierge authenticator name (default: autodiscover)
      --concierge-authenticator-type string      Concierge authenticator type (e.g., 'webhook', 'jwt') (default: autodiscover)
      --concierge-ca-bundle path                 Path to TLS certificate authority bundle (PEM format, optional, can be repeated) to use when connecting to the Concierge
      --concierge-credential-issuer string       Concierge CredentialIssuer object to use for autodiscovery (default: autodiscover)
      --concierge-endpoint string                API base for the Concierge endpoint
      --concierge-mode mode                      Concierge mode of operation (default TokenCredentialRequestAPI)
      --concierge-skip-wait                      Skip waiting for any pending Concierge strategies to become ready (default: false)
      --credential-cache string                  Path to cluster-specific credentials cache
      --generated-name-suffix string             Suffix to append to generated cluster, context, user kubeconfig entries (default "-pinniped")
  -h, --help                                     help for kubeconfig
      --install-hint string                      This text is shown to the user when the pinniped CLI is not installed. (default "${defaultInstallHint}")
      --kubeconfig string                        Path to kubeconfig file (default $KUBECONFIG, else ~/.kube/config)
      --kubeconfig-context string                Kubeconfig context name (default: current active context)
      --no-concierge                             Generate a configuration which does not use the Concierge, but sends the credential to the cluster directly
      --oidc-ca-bundle path                      Path to TLS certificate authority bundle (PEM format, optional, can be repeated)
      --oidc-client-id string                    OpenID Connect client ID (default "pinniped-cli")
      --oidc-issuer string                       OpenID Connect issuer URL (default: autodiscover)
      --oidc-listen-port uint16                  TCP port for localhost listener (authorization code flow only)
      --oidc-request-audience string             Request a token with an alternate audience using RFC8693 token exchange
      --oidc-scopes strings                      OpenID Connect scopes to request during login (default [${defaultOIDCScopes.join(",")}])
      --oidc-session-cache string                Path to OpenID Connect session cache file
      --oidc-skip-browser                        During OpenID Connect login, skip opening the browser (just print the URL)
  -o, --output string                            Output file path (default: stdout)
      --pinniped-cli-path string                 Full path or executable name for the Pinniped CLI binary to be embedded in the resulting kubeconfig output (default "pinniped", found on PATH, so the kubeconfig works on any machine with the CLI installed)
      --skip-validation                          Skip final validation of the kubeconfig (default: false)
      --static-token string                      Instead of doing an OIDC-based login, specify a static token
      --static-token-env string                  Instead of doing an OIDC-based login, read a static token from the environment
      --timeout duration                         Timeout for autodiscovery and validation (default 10m0s)
      --upstream-identity-provider-flow string   The type of client flow to use with the upstream identity provider during login with a Supervisor (e.g. 'cli_password', 'browser_authcode')
      --upstream-identity-provider-name string   The name of the upstream identity provider used during login with a Supervisor
      --upstream-identity-provider-type string   The type of the upstream identity provider used during login with a Supervisor (e.g. 'oidc', 'ldap', 'activedirectory', 'github')
`;

export interface OIDCOptions {
  issuer: string | undefined;
  clientID: string;
  scopes: string[];
  /** The user gave --oidc-scopes: they are passed as given, never pruned by discovery. */
  scopesSet: boolean;
  listenPort: number | undefined;
  skipBrowser: boolean;
  skipListen: boolean;
  /** PEM, the --oidc-ca-bundle files joined. */
  caBundle: string | undefined;
  sessionCache: string | undefined;
  debugSessionCache: boolean;
  requestAudience: string | undefined;
  upstreamIDPName: string | undefined;
  upstreamIDPType: string | undefined;
  upstreamIDPFlow: string | undefined;
}

export interface GetKubeconfigOptions {
  kubeconfig: string | undefined;
  context: string | undefined;
  noConcierge: boolean;
  credentialIssuer: string | undefined;
  authenticatorType: string | undefined;
  authenticatorName: string | undefined;
  apiGroupSuffix: string;
  conciergeEndpoint: string | undefined;
  /** PEM, the --concierge-ca-bundle files joined. */
  conciergeCABundle: string | undefined;
  conciergeMode: ConciergeMode | undefined;
  conciergeSkipWait: boolean;
  /** Absent: OIDC login. */
  staticToken: { token: string } | { env: string } | undefined;
  oidc: OIDCOptions;
  credentialCache: string | undefined;
  nameSuffix: string;
  installHint: string;
  cliPath: string;
  output: string | undefined;
  skipValidation: boolean;
  timeoutMs: number;
  /** As given, for messages. */
  timeoutText: string;
  /** Deprecation notices to log before running. */
  warnings: string[];
}

/** PEM files joined with a newline, as upstream's repeatable CA bundle flag; each must hold a cert. */
function readCABundles(paths: string[] | undefined): string | undefined {
  if (!paths || paths.length === 0) return undefined;
  return paths
    .map((path) => {
      let pem: string;
      try {
        pem = readFileSync(path, "utf8");
      } catch (err) {
        throw new UsageError(`could not read CA bundle path: ${(err as Error).message}`);
      }
      if (countCerts(pem) === 0) throw new UsageError(`failed to load any CA certificates from "${path}"`);
      return pem;
    })
    .join("\n");
}

function parsePort(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) {
    throw new UsageError(
      `invalid argument "${value}" for "--oidc-listen-port" flag: must be a port number 0-65535`,
    );
  }
  return port === 0 ? undefined : port;
}

const nonEmpty = (v: string | undefined) => (v === "" ? undefined : v);

/** What generated kubeconfigs run: the CLI on the user's PATH, never a path on this machine. */
export const defaultCLIPath = "pinniped";

export const getKubeconfigFlags = {
  kubeconfig: { type: "string" },
  "kubeconfig-context": { type: "string" },
  "no-concierge": { type: "boolean", default: false },
  "concierge-namespace": { type: "string" },
  "concierge-credential-issuer": { type: "string" },
  "concierge-authenticator-type": { type: "string" },
  "concierge-authenticator-name": { type: "string" },
  "concierge-api-group-suffix": { type: "string", default: defaultAPIGroupSuffix },
  "concierge-endpoint": { type: "string" },
  "concierge-ca-bundle": { type: "string", multiple: true },
  "concierge-mode": { type: "string" },
  "concierge-skip-wait": { type: "boolean", default: false },
  "static-token": { type: "string" },
  "static-token-env": { type: "string" },
  "oidc-issuer": { type: "string" },
  "oidc-client-id": { type: "string", default: "pinniped-cli" },
  "oidc-scopes": { type: "string", multiple: true },
  "oidc-listen-port": { type: "string" },
  "oidc-skip-browser": { type: "boolean", default: false },
  "oidc-skip-listen": { type: "boolean", default: false },
  "oidc-ca-bundle": { type: "string", multiple: true },
  "oidc-session-cache": { type: "string" },
  "oidc-debug-session-cache": { type: "boolean", default: false },
  "oidc-request-audience": { type: "string" },
  "upstream-identity-provider-name": { type: "string" },
  "upstream-identity-provider-type": { type: "string" },
  "upstream-identity-provider-flow": { type: "string" },
  "credential-cache": { type: "string" },
  "generated-name-suffix": { type: "string", default: "-pinniped" },
  "install-hint": { type: "string", default: defaultInstallHint },
  "pinniped-cli-path": { type: "string", default: defaultCLIPath },
  "skip-validation": { type: "boolean", default: false },
  timeout: { type: "string", default: "10m" },
  output: { type: "string", short: "o" },
} as const;

export function parseGetKubeconfig(args: string[]): GetKubeconfigOptions | "help" {
  const { values } = parseFlags("get kubeconfig", args, getKubeconfigFlags);
  if (values.help) return "help";
  // Upstream treats an empty value as unset for these.
  const token = nonEmpty(values["static-token"]);
  const env = nonEmpty(values["static-token-env"]);
  if (token !== undefined && env !== undefined) {
    throw new UsageError("only one of --static-token and --static-token-env can be specified");
  }
  const type = nonEmpty(values["concierge-authenticator-type"]);
  const name = nonEmpty(values["concierge-authenticator-name"]);
  if (type !== undefined) authenticatorKind(type);
  if ((type === undefined) !== (name === undefined)) {
    throw new UsageError(
      "--concierge-authenticator-type and --concierge-authenticator-name must be specified together",
    );
  }
  validateAPIGroupSuffix(values["concierge-api-group-suffix"]);
  const scopes = values["oidc-scopes"]?.flatMap((s) => s.split(",")).filter((s) => s !== "");
  return {
    kubeconfig: values.kubeconfig,
    context: values["kubeconfig-context"],
    noConcierge: values["no-concierge"],
    credentialIssuer: nonEmpty(values["concierge-credential-issuer"]),
    authenticatorType: type,
    authenticatorName: name,
    apiGroupSuffix: values["concierge-api-group-suffix"],
    conciergeEndpoint: nonEmpty(values["concierge-endpoint"]),
    conciergeCABundle: readCABundles(values["concierge-ca-bundle"]),
    conciergeMode: parseConciergeMode(values["concierge-mode"] ?? ""),
    conciergeSkipWait: values["concierge-skip-wait"],
    staticToken: token !== undefined ? { token } : env !== undefined ? { env } : undefined,
    oidc: {
      issuer: nonEmpty(values["oidc-issuer"]),
      clientID: values["oidc-client-id"],
      scopes: scopes ?? [...defaultOIDCScopes],
      scopesSet: scopes !== undefined,
      listenPort: parsePort(values["oidc-listen-port"]),
      skipBrowser: values["oidc-skip-browser"],
      skipListen: values["oidc-skip-listen"],
      caBundle: readCABundles(values["oidc-ca-bundle"]),
      sessionCache: nonEmpty(values["oidc-session-cache"]),
      debugSessionCache: values["oidc-debug-session-cache"],
      requestAudience: nonEmpty(values["oidc-request-audience"]),
      upstreamIDPName: nonEmpty(values["upstream-identity-provider-name"]),
      upstreamIDPType: nonEmpty(values["upstream-identity-provider-type"]),
      upstreamIDPFlow: nonEmpty(values["upstream-identity-provider-flow"]),
    },
    credentialCache: values["credential-cache"],
    nameSuffix: values["generated-name-suffix"],
    installHint: values["install-hint"],
    cliPath: values["pinniped-cli-path"],
    output: values.output,
    skipValidation: values["skip-validation"],
    timeoutMs: parseGoDuration(values.timeout),
    timeoutText: values.timeout,
    warnings:
      values["concierge-namespace"] !== undefined
        ? ["Flag --concierge-namespace has been deprecated, not needed anymore"]
        : [],
  };
}

interface Named {
  metadata: { name: string };
}

export async function discoverIssuer(
  client: RestClient,
  suffix: string,
  name: string | undefined,
  signal?: AbortSignal,
): Promise<CredentialIssuer> {
  const base = `/apis/config.concierge.${suffix}/v1alpha1/credentialissuers`;
  const s = signal ? { signal } : {};
  if (name) return client.request<CredentialIssuer>({ method: "GET", path: `${base}/${name}`, ...s });
  const { items } = await client.request<{ items: CredentialIssuer[] }>({ method: "GET", path: base, ...s });
  if (items.length === 0) throw new Error("no CredentialIssuers were found (is the Concierge installed?)");
  if (items.length > 1) {
    throw new Error(
      "multiple CredentialIssuers were found, so the --concierge-credential-issuer flag must be specified",
    );
  }
  return items[0]!;
}

export type DiscoveredAuthenticator =
  | { type: "webhook"; name: string }
  | { type: "jwt"; name: string; spec: JWTAuthenticatorSpecLike };

export async function discoverAuthenticator(
  client: RestClient,
  suffix: string,
  type: string | undefined,
  name: string | undefined,
  signal?: AbortSignal,
): Promise<DiscoveredAuthenticator> {
  const base = `/apis/authentication.concierge.${suffix}/v1alpha1`;
  const s = signal ? { signal } : {};
  type AuthObject = Named & { spec?: JWTAuthenticatorSpecLike };
  const found = (t: "webhook" | "jwt", o: AuthObject): DiscoveredAuthenticator =>
    t === "jwt" ? { type: t, name: o.metadata.name, spec: o.spec ?? {} } : { type: t, name: o.metadata.name };
  if (type !== undefined && name !== undefined) {
    const t = authenticatorKind(type) === "JWTAuthenticator" ? "jwt" : "webhook";
    const o = await client.request<AuthObject>({
      method: "GET",
      path: `${base}/${t}authenticators/${name}`,
      ...s,
    });
    return found(t, o);
  }
  const all: DiscoveredAuthenticator[] = [];
  for (const t of ["jwt", "webhook"] as const) {
    const { items } = await client.request<{ items: AuthObject[] }>({
      method: "GET",
      path: `${base}/${t}authenticators`,
      ...s,
    });
    for (const o of items) all.push(found(t, o));
  }
  if (all.length === 0)
    throw new Error("no authenticators were found (create a WebhookAuthenticator or JWTAuthenticator)");
  if (all.length > 1) {
    throw new Error(
      "multiple authenticators were found, so the --concierge-authenticator-type/--concierge-authenticator-name flags must be specified",
    );
  }
  return all[0]!;
}

/** The output cluster entry; extra fields of the source cluster are kept only where still valid. */
export interface OutputCluster {
  server: string;
  /** PEM. */
  ca: string | undefined;
  tlsServerName?: string | undefined;
  proxyURL?: string | undefined;
  insecureSkipTLSVerify?: boolean | undefined;
}

export interface OIDCLogin {
  issuer: string;
  clientID: string;
  scopes: string[];
  listenPort?: number | undefined;
  skipBrowser?: boolean;
  skipListen?: boolean;
  /** PEM. */
  caBundle?: string | undefined;
  sessionCache?: string | undefined;
  debugSessionCache?: boolean;
  requestAudience?: string | undefined;
  upstreamIDPName?: string | undefined;
  upstreamIDPType?: string | undefined;
  upstreamIDPFlow?: string | undefined;
}

export interface KubeconfigInputs {
  contextName: string;
  clusterName: string;
  userName: string;
  cluster: OutputCluster;
  /** Absent with --no-concierge. */
  concierge:
    | { apiGroupSuffix: string; authenticator: { type: string; name: string }; endpoint: string; ca: string }
    | undefined;
  login: { static: { token: string } | { env: string } } | { oidc: OIDCLogin };
  credentialCache: string | undefined;
  nameSuffix: string;
  installHint: string;
  cliPath: string;
}

const b64 = (pem: string) => Buffer.from(pem).toString("base64");

/** Upstream's exec args, in upstream's order. */
export function execArgs(input: KubeconfigInputs): string[] {
  const c = input.concierge;
  const common = [
    ...(c
      ? [
          "--enable-concierge",
          `--concierge-api-group-suffix=${c.apiGroupSuffix}`,
          `--concierge-authenticator-name=${c.authenticator.name}`,
          `--concierge-authenticator-type=${c.authenticator.type}`,
          `--concierge-endpoint=${c.endpoint}`,
          `--concierge-ca-bundle-data=${b64(c.ca)}`,
        ]
      : []),
    ...(input.credentialCache !== undefined ? [`--credential-cache=${input.credentialCache}`] : []),
  ];
  if ("static" in input.login) {
    const t = input.login.static;
    return ["login", "static", ...common, "token" in t ? `--token=${t.token}` : `--token-env=${t.env}`];
  }
  const o = input.login.oidc;
  if (o.requestAudience?.includes(".pinniped.dev")) {
    throw new Error(
      `request audience is not allowed to include the substring '.pinniped.dev': ${o.requestAudience}`,
    );
  }
  const opt = (cond: unknown, arg: string) => (cond ? [arg] : []);
  return [
    "login",
    "oidc",
    ...common,
    `--issuer=${o.issuer}`,
    `--client-id=${o.clientID}`,
    `--scopes=${o.scopes.join(",")}`,
    ...opt(o.skipBrowser, "--skip-browser"),
    ...opt(o.skipListen, "--skip-listen"),
    ...opt(o.listenPort, `--listen-port=${o.listenPort}`),
    ...opt(o.caBundle, `--ca-bundle-data=${b64(o.caBundle ?? "")}`),
    ...opt(o.sessionCache, `--session-cache=${o.sessionCache}`),
    ...opt(o.debugSessionCache, "--debug-session-cache"),
    ...opt(o.requestAudience, `--request-audience=${o.requestAudience}`),
    ...opt(o.upstreamIDPName, `--upstream-identity-provider-name=${o.upstreamIDPName}`),
    ...opt(o.upstreamIDPType, `--upstream-identity-provider-type=${o.upstreamIDPType}`),
    ...opt(o.upstreamIDPFlow, `--upstream-identity-provider-flow=${o.upstreamIDPFlow}`),
  ];
}

/** The generated kubeconfig: upstream's exec stanza and a single cluster/user/context. */
export function buildKubeconfig(input: KubeconfigInputs): Record<string, unknown> {
  const c = input.cluster;
  const cluster = `${input.clusterName}${input.nameSuffix}`;
  const user = `${input.userName}${input.nameSuffix}`;
  const context = `${input.contextName}${input.nameSuffix}`;
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: cluster,
        cluster: {
          server: c.server,
          ...(c.ca !== undefined ? { "certificate-authority-data": b64(c.ca) } : {}),
          ...(c.tlsServerName ? { "tls-server-name": c.tlsServerName } : {}),
          ...(c.proxyURL ? { "proxy-url": c.proxyURL } : {}),
          ...(c.insecureSkipTLSVerify ? { "insecure-skip-tls-verify": true } : {}),
        },
      },
    ],
    users: [
      {
        name: user,
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1beta1",
            command: input.cliPath,
            args: execArgs(input),
            env: [],
            installHint: input.installHint,
            // A browser or a password prompt may be needed for OIDC; a static token never asks.
            interactiveMode: "static" in input.login ? "Never" : "IfAvailable",
            provideClusterInfo: true,
          },
        },
      },
    ],
    contexts: [{ name: context, context: { cluster, user } }],
    "current-context": context,
    preferences: {},
  };
}

/** The current cluster's CA as PEM, from -data or from the file it names. */
function clusterCA(kc: KubeConfig): string | undefined {
  const cluster = kc.getCurrentCluster()!;
  if (cluster.caData) return Buffer.from(cluster.caData, "base64").toString("utf8");
  if (cluster.caFile) return readFileSync(cluster.caFile, "utf8");
  return undefined;
}

export interface GenerateDeps {
  kc: KubeConfig;
  client: RestClient;
  log: (line: string) => void;
  /** Between CredentialIssuer polls and validation retries; upstream's 2 s. */
  pollMs?: number;
}

/** Discovers and validates; returns the kubeconfig object. */
export async function generateKubeconfig(
  options: GetKubeconfigOptions,
  deps: GenerateDeps,
): Promise<Record<string, unknown>> {
  const { kc, client, log } = deps;
  const pollMs = deps.pollMs ?? 2000;
  for (const w of options.warnings) log(w);
  const signal = AbortSignal.timeout(options.timeoutMs);
  const deadline = Date.now() + options.timeoutMs;
  const source = kc.getCurrentCluster()!;
  const sourceCA = clusterCA(kc);
  let cluster: OutputCluster = {
    server: source.server,
    ca: sourceCA,
    tlsServerName: source.tlsServerName,
    proxyURL: source.proxyUrl,
    insecureSkipTLSVerify: source.skipTLSVerify,
  };
  const oidc = { ...options.oidc };
  let concierge: KubeconfigInputs["concierge"];
  let neededScopes: ScopeNeed[] = [];
  if (!options.noConcierge) {
    const suffix = options.apiGroupSuffix;
    const reload = () => discoverIssuer(client, suffix, options.credentialIssuer, signal);
    let issuer = await reload();
    log(`discovered CredentialIssuer ${issuer.metadata.name}`);
    if (!options.conciergeSkipWait) {
      issuer = await waitWhilePending(issuer, reload, { pollMs, signal, deadline, log });
    }
    const authenticator = await discoverAuthenticator(
      client,
      suffix,
      options.authenticatorType,
      options.authenticatorName,
      signal,
    );
    log(`discovered ${authenticator.type} authenticator ${authenticator.name}`);

    let frontend: ReturnType<typeof pickFrontend>;
    try {
      frontend = pickFrontend(issuer, options.conciergeMode);
    } catch (err) {
      for (const line of strategyLines(issuer)) log(line);
      throw err;
    }
    if (options.conciergeMode === undefined) {
      log(
        frontend.type === "TokenCredentialRequestAPI"
          ? "discovered Concierge operating in TokenCredentialRequest API mode"
          : "discovered Concierge operating in impersonation proxy mode",
      );
    }
    let endpoint = options.conciergeEndpoint;
    if (endpoint === undefined) {
      // TCR mode: the Concierge is reached through the cluster's own API server, so upstream uses
      // the current cluster's server and CA, not the CredentialIssuer's tokenCredentialRequestInfo.
      endpoint =
        frontend.type === "TokenCredentialRequestAPI"
          ? source.server
          : frontend.impersonationProxyInfo?.endpoint;
      if (!endpoint) throw new Error("autodiscovered Concierge endpoint is empty");
      log(`discovered Concierge endpoint ${endpoint}`);
    }
    let ca = options.conciergeCABundle;
    if (ca === undefined) {
      if (frontend.type === "TokenCredentialRequestAPI") {
        ca = sourceCA;
      } else {
        try {
          ca = decodeBase64Strict(frontend.impersonationProxyInfo?.certificateAuthorityData ?? "");
        } catch (err) {
          throw new Error(`autodiscovered Concierge CA bundle is invalid: ${(err as Error).message}`);
        }
      }
      if (ca === undefined || ca === "") {
        throw new Error(`invalid kubeconfig (no certificateAuthorityData for cluster ${source.name})`);
      }
      log(`discovered Concierge certificate authority bundle (roots: ${countCerts(ca)})`);
    }

    if (authenticator.type === "jwt") {
      const spec = authenticator.spec;
      if (oidc.issuer === undefined && spec.issuer) {
        oidc.issuer = spec.issuer;
        log(`discovered OIDC issuer ${spec.issuer}`);
      }
      const audience = spec.audience ?? spec.audiences?.[0];
      if (oidc.requestAudience === undefined && audience) {
        oidc.requestAudience = audience;
        log(`discovered OIDC audience ${audience}`);
      }
      if (oidc.caBundle === undefined) {
        oidc.caBundle = await discoverOIDCCABundle(client, suffix, authenticator.name, spec, log, signal);
      }
      neededScopes = scopesForClaimMappings(authenticator.name, spec);
    } else if (options.staticToken === undefined && oidc.issuer === undefined) {
      throw new UsageError(
        `the Concierge authenticator is WebhookAuthenticator ${authenticator.name}, which cannot supply an OIDC issuer: ` +
          "pass --static-token or --static-token-env for a static-token login, or --oidc-issuer for an OIDC login",
      );
    }
    concierge = { apiGroupSuffix: suffix, authenticator, endpoint, ca };
    // Only the endpoint's TLS identity is known now: the source's tls-server-name named the old server.
    cluster = {
      server: endpoint,
      ca,
      tlsServerName: endpoint === source.server ? source.tlsServerName : undefined,
      proxyURL: source.proxyUrl,
    };
  }

  let login: KubeconfigInputs["login"];
  if (options.staticToken !== undefined) {
    login = { static: options.staticToken };
  } else {
    if (oidc.issuer === undefined) {
      throw new UsageError(
        "could not autodiscover --oidc-issuer and none was provided: pass --oidc-issuer, or --static-token/--static-token-env for a static-token login",
      );
    }
    if (!oidc.scopesSet) {
      oidc.scopes = await pruneScopes(
        oidc.issuer,
        oidc.scopes,
        { ca: oidc.caBundle, signal, log },
        neededScopes,
      );
    }
    login = { oidc: { ...oidc, issuer: oidc.issuer } };
  }

  const contextName = kc.getCurrentContext();
  const ctx = kc.getContextObject(contextName);
  const config = buildKubeconfig({
    contextName,
    clusterName: ctx?.cluster ?? source.name,
    userName: ctx?.user ?? "user",
    cluster,
    concierge,
    login,
    credentialCache: options.credentialCache,
    nameSuffix: options.nameSuffix,
    installHint: options.installHint,
    cliPath: resolveCLIPath(options.cliPath),
  });

  if (!options.skipValidation) {
    if (!cluster.ca || countCerts(cluster.ca) === 0)
      throw new Error("invalid kubeconfig (no certificateAuthorityData)");
    await validateConnection(cluster.server, {
      ca: cluster.ca,
      servername: cluster.tlsServerName,
      signal,
      pollMs,
      timeoutText: options.timeoutText,
      log,
    });
  }
  return config;
}

/** Discovers, builds and writes; returns the YAML when there is no --output file. */
export async function getKubeconfig(
  options: GetKubeconfigOptions,
  log: (line: string) => void,
): Promise<string | undefined> {
  // The Kubernetes client and the YAML writer are loaded by the commands that use them only.
  const [{ KubeRestClient }, { loadKubeConfig }, { stringify }] = await Promise.all([
    import("../kube/rest.ts"),
    import("./kube.ts"),
    import("yaml"),
  ]);
  const kc = loadKubeConfig(options.kubeconfig, options.context);
  const client = new KubeRestClient(kc, { userAgent: "pinniped-cli", timeoutMs: 30_000 });
  let yaml: string;
  try {
    yaml = stringify(await generateKubeconfig(options, { kc, client, log }));
  } finally {
    client.close?.();
  }
  if (options.output === undefined) return yaml;
  // 0600: with --static-token the file holds the token. The mode option applies only when the
  // file is created, so an existing file is narrowed first.
  await chmod(options.output, 0o600).catch(() => {});
  await writeFile(options.output, yaml, { mode: 0o600 });
  log(`wrote kubeconfig to ${options.output}`);
  return undefined;
}

/** A path with a slash is made absolute, so the kubeconfig works from any directory. */
function resolveCLIPath(path: string): string {
  return path.includes("/") ? resolve(path) : path;
}
