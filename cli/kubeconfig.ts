// `pinniped get kubeconfig`, static-token path: discovers the Concierge with the admin kubeconfig
// and writes a kubeconfig whose user runs `pinniped login static` as a kubectl exec plugin.
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { stringify } from "yaml";
import { KubeRestClient, type RestClient } from "../controllers/runtime/rest.ts";
import {
  authenticatorKind,
  defaultAPIGroupSuffix,
  parseFlags,
  UsageError,
  validateAPIGroupSuffix,
} from "./flags.ts";
import { loadKubeConfig } from "./kube.ts";

export const defaultInstallHint =
  "The pinniped CLI does not appear to be installed.  See https://get.pinniped.dev/cli for more details";

export const getKubeconfigHelp = `Generate a Pinniped-based kubeconfig for a cluster (static-token login)

Usage:
  pinniped get kubeconfig --static-token TOKEN | --static-token-env VAR [flags]

Flags:
      --concierge-api-group-suffix string     Concierge API group suffix (default "pinniped.dev")
      --concierge-authenticator-name string   Concierge authenticator name (default: autodiscover)
      --concierge-authenticator-type string   Concierge authenticator type (e.g., 'webhook', 'jwt') (default: autodiscover)
      --concierge-credential-issuer string    Concierge CredentialIssuer object to use for autodiscovery (default: autodiscover)
      --credential-cache string               Path to cluster-specific credentials cache (passed to the plugin only if set)
      --generated-name-suffix string          Suffix to append to generated cluster, context, user kubeconfig entries (default "-pinniped")
  -h, --help                                  help for kubeconfig
      --install-hint string                   This text is shown to the user when the pinniped CLI is not installed. (default "${defaultInstallHint}")
      --kubeconfig string                     Path to kubeconfig file (default $KUBECONFIG, else ~/.kube/config)
      --kubeconfig-context string             Kubeconfig context name (default: current active context)
  -o, --output string                         Output file path (default: stdout)
      --pinniped-cli-path string              Full path or executable name for the Pinniped CLI binary to be embedded in the resulting kubeconfig output (default: this CLI's bin/pinniped)
      --static-token string                   Instead of doing an OIDC-based login, specify a static token
      --static-token-env string               Instead of doing an OIDC-based login, read a static token from the environment
`;

export interface GetKubeconfigOptions {
  kubeconfig: string | undefined;
  context: string | undefined;
  credentialIssuer: string | undefined;
  authenticatorType: string | undefined;
  authenticatorName: string | undefined;
  apiGroupSuffix: string;
  staticToken: { token: string } | { env: string };
  credentialCache: string | undefined;
  nameSuffix: string;
  installHint: string;
  cliPath: string;
  output: string | undefined;
}

export function parseGetKubeconfig(args: string[], defaultCLIPath: string): GetKubeconfigOptions | "help" {
  const { values } = parseFlags("get kubeconfig", args, {
    kubeconfig: { type: "string" },
    "kubeconfig-context": { type: "string" },
    "concierge-credential-issuer": { type: "string" },
    "concierge-authenticator-type": { type: "string" },
    "concierge-authenticator-name": { type: "string" },
    "concierge-api-group-suffix": { type: "string", default: defaultAPIGroupSuffix },
    "static-token": { type: "string" },
    "static-token-env": { type: "string" },
    "credential-cache": { type: "string" },
    "generated-name-suffix": { type: "string", default: "-pinniped" },
    "install-hint": { type: "string", default: defaultInstallHint },
    "pinniped-cli-path": { type: "string", default: defaultCLIPath },
    output: { type: "string", short: "o" },
  });
  if (values.help) return "help";
  const token = values["static-token"];
  const env = values["static-token-env"];
  if (token !== undefined && env !== undefined) {
    throw new UsageError("only one of --static-token and --static-token-env can be specified");
  }
  if (token === undefined && env === undefined) {
    throw new UsageError(
      "one of --static-token or --static-token-env must be specified (this CLI supports only static-token login)",
    );
  }
  const type = values["concierge-authenticator-type"];
  const name = values["concierge-authenticator-name"];
  if (type !== undefined) authenticatorKind(type);
  if ((type === undefined) !== (name === undefined)) {
    throw new UsageError(
      "--concierge-authenticator-type and --concierge-authenticator-name must be specified together",
    );
  }
  validateAPIGroupSuffix(values["concierge-api-group-suffix"]);
  return {
    kubeconfig: values.kubeconfig,
    context: values["kubeconfig-context"],
    credentialIssuer: values["concierge-credential-issuer"],
    authenticatorType: type,
    authenticatorName: name,
    apiGroupSuffix: values["concierge-api-group-suffix"],
    staticToken: token !== undefined ? { token } : { env: env! },
    credentialCache: values["credential-cache"],
    nameSuffix: values["generated-name-suffix"],
    installHint: values["install-hint"],
    cliPath: values["pinniped-cli-path"],
    output: values.output,
  };
}

export interface Strategy {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
  frontend?: { type?: string };
}
interface CredentialIssuer {
  metadata: { name: string };
  status?: { strategies?: Strategy[] };
}
interface Authenticator {
  metadata: { name: string };
}

/** The first successful strategy with a TokenCredentialRequestAPI frontend, as upstream walks them. */
export function pickTokenCredentialRequestStrategy(issuer: CredentialIssuer): Strategy {
  const strategies = issuer.status?.strategies ?? [];
  const found = strategies.find(
    (s) => s.status === "Success" && s.frontend?.type === "TokenCredentialRequestAPI",
  );
  if (found) return found;
  const summary = strategies.map((s) => `${s.type}: ${s.status}/${s.reason}: ${s.message}`).join("; ");
  throw new Error(
    `could not find successful Concierge strategy matching --concierge-mode=TokenCredentialRequestAPI ` +
      `(CredentialIssuer ${issuer.metadata.name} reports ${summary || "no strategies"}); ` +
      "check the Concierge's kube-cert-agent (this CLI does not support the impersonation proxy)",
  );
}

export async function discoverIssuer(client: RestClient, suffix: string, name: string | undefined) {
  const base = `/apis/config.concierge.${suffix}/v1alpha1/credentialissuers`;
  if (name) return client.request<CredentialIssuer>({ method: "GET", path: `${base}/${name}` });
  const { items } = await client.request<{ items: CredentialIssuer[] }>({ method: "GET", path: base });
  if (items.length === 0) throw new Error("no CredentialIssuers were found (is the Concierge installed?)");
  if (items.length > 1) {
    throw new Error(
      "multiple CredentialIssuers were found, so the --concierge-credential-issuer flag must be specified",
    );
  }
  return items[0]!;
}

export async function discoverAuthenticator(
  client: RestClient,
  suffix: string,
  type: string | undefined,
  name: string | undefined,
): Promise<{ type: string; name: string }> {
  const base = `/apis/authentication.concierge.${suffix}/v1alpha1`;
  const plural = { WebhookAuthenticator: "webhookauthenticators", JWTAuthenticator: "jwtauthenticators" };
  if (type !== undefined && name !== undefined) {
    const kind = authenticatorKind(type);
    await client.request<Authenticator>({ method: "GET", path: `${base}/${plural[kind]}/${name}` });
    return { type: type.toLowerCase(), name };
  }
  const found: { type: string; name: string }[] = [];
  for (const [t, p] of [
    ["jwt", plural.JWTAuthenticator],
    ["webhook", plural.WebhookAuthenticator],
  ] as const) {
    const { items } = await client.request<{ items: Authenticator[] }>({
      method: "GET",
      path: `${base}/${p}`,
    });
    for (const a of items) found.push({ type: t, name: a.metadata.name });
  }
  if (found.length === 0)
    throw new Error("no authenticators were found (create a WebhookAuthenticator or JWTAuthenticator)");
  if (found.length > 1) {
    throw new Error(
      "multiple authenticators were found, so the --concierge-authenticator-type/--concierge-authenticator-name flags must be specified",
    );
  }
  return found[0]!;
}

/** The current cluster's CA, base64 of PEM, from -data or from the file it names. */
function clusterCABase64(kc: KubeConfig): string {
  const cluster = kc.getCurrentCluster()!;
  if (cluster.caData) return cluster.caData;
  if (cluster.caFile) return readFileSync(cluster.caFile).toString("base64");
  throw new Error(`invalid kubeconfig (no certificateAuthorityData for cluster ${cluster.name})`);
}

export interface KubeconfigInputs {
  contextName: string;
  clusterName: string;
  userName: string;
  server: string;
  caBase64: string;
  authenticator: { type: string; name: string };
  options: Pick<
    GetKubeconfigOptions,
    "apiGroupSuffix" | "staticToken" | "credentialCache" | "nameSuffix" | "installHint" | "cliPath"
  >;
}

/** The generated kubeconfig: upstream's exec stanza (args in upstream's order), static login. */
export function buildKubeconfig(input: KubeconfigInputs): Record<string, unknown> {
  const { options: o } = input;
  const args = [
    "login",
    "static",
    "--enable-concierge",
    `--concierge-api-group-suffix=${o.apiGroupSuffix}`,
    `--concierge-authenticator-name=${input.authenticator.name}`,
    `--concierge-authenticator-type=${input.authenticator.type}`,
    `--concierge-endpoint=${input.server}`,
    `--concierge-ca-bundle-data=${input.caBase64}`,
    ...(o.credentialCache !== undefined ? [`--credential-cache=${o.credentialCache}`] : []),
    "token" in o.staticToken ? `--token=${o.staticToken.token}` : `--token-env=${o.staticToken.env}`,
  ];
  const cluster = `${input.clusterName}${o.nameSuffix}`;
  const user = `${input.userName}${o.nameSuffix}`;
  const context = `${input.contextName}${o.nameSuffix}`;
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name: cluster, cluster: { server: input.server, "certificate-authority-data": input.caBase64 } },
    ],
    users: [
      {
        name: user,
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1beta1",
            command: o.cliPath,
            args,
            env: [],
            installHint: o.installHint,
            interactiveMode: "Never",
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

/** Discovers, builds and writes; returns the YAML when there is no --output file. */
export async function getKubeconfig(
  options: GetKubeconfigOptions,
  log: (line: string) => void,
): Promise<string | undefined> {
  const kc = loadKubeConfig(options.kubeconfig, options.context);
  const client = new KubeRestClient(kc, { userAgent: "pinniped-cli", timeoutMs: 30_000 });
  const issuer = await discoverIssuer(client, options.apiGroupSuffix, options.credentialIssuer);
  log(`discovered CredentialIssuer ${issuer.metadata.name}`);
  const authenticator = await discoverAuthenticator(
    client,
    options.apiGroupSuffix,
    options.authenticatorType,
    options.authenticatorName,
  );
  log(`discovered ${authenticator.type} authenticator ${authenticator.name}`);
  pickTokenCredentialRequestStrategy(issuer);
  log("discovered Concierge operating in TokenCredentialRequest API mode");
  // TCR mode: the Concierge is reached through the cluster's own API server, so upstream uses
  // the current cluster's server and CA, not the CredentialIssuer's tokenCredentialRequestInfo.
  const cluster = kc.getCurrentCluster()!;
  log(`discovered Concierge endpoint ${cluster.server}`);
  const caBase64 = clusterCABase64(kc);
  const contextName = kc.getCurrentContext();
  const ctx = kc.getContextObject(contextName);
  const yaml = stringify(
    buildKubeconfig({
      contextName,
      clusterName: ctx?.cluster ?? cluster.name,
      userName: ctx?.user ?? "user",
      server: cluster.server,
      caBase64,
      authenticator,
      options: { ...options, cliPath: resolveCLIPath(options.cliPath) },
    }),
  );
  if (options.output === undefined) return yaml;
  // 0600: with --static-token the file holds the token.
  await writeFile(options.output, yaml, { mode: 0o600 });
  log(`wrote kubeconfig to ${options.output}`);
  return undefined;
}

/** A path with a slash is made absolute, so the kubeconfig works from any directory. */
function resolveCLIPath(path: string): string {
  return path.includes("/") ? resolve(path) : path;
}
