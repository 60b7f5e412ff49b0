// `pinniped login static`: the exec plugin kubectl runs. It trades a static token for a short-lived
// client certificate through the Concierge's TokenCredentialRequest API and prints an
// ExecCredential. The request is anonymous: the token is the only credential it carries.
import { X509Certificate } from "node:crypto";
import { homedir } from "node:os";
import { join } from "node:path";
import { CredentialCache, cacheKey, type ExecCredentialStatus } from "./cache.ts";
import {
  authenticatorKind,
  defaultAPIGroupSuffix,
  parseFlags,
  UsageError,
  validateAPIGroupSuffix,
} from "./flags.ts";

export const loginStaticHelp = `Login using a static token

Usage:
  pinniped login static [--token TOKEN] [--token-env TOKEN_NAME] [flags]

Flags:
      --concierge-api-group-suffix string     Concierge API group suffix (default "pinniped.dev")
      --concierge-authenticator-name string   Concierge authenticator name
      --concierge-authenticator-type string   Concierge authenticator type (e.g., 'webhook', 'jwt')
      --concierge-ca-bundle-data string       CA bundle to use when connecting to the Concierge (base64-encoded PEM)
      --concierge-endpoint string             API base for the Concierge endpoint
      --credential-cache string               Path to cluster-specific credentials cache ("" disables the cache) (default "~/.config/pinniped/credentials.yaml")
      --enable-concierge                      Use the Concierge to login
  -h, --help                                  help for static
      --token string                          Static token to present during login
      --token-env string                      Environment variable containing a static token
`;

/** Upstream's default: $XDG_CONFIG_HOME/pinniped/credentials.yaml, else ~/.config/…. */
export function defaultCredentialCachePath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "pinniped", "credentials.yaml");
}

export interface ConciergeParams {
  endpoint: string;
  caPEM: string;
  caBundleData: string;
  apiGroupSuffix: string;
  authenticatorType: string;
  authenticatorName: string;
}

export interface LoginStaticOptions {
  token: string;
  /** Undefined without --enable-concierge: the token goes to the cluster as it is. */
  concierge: ConciergeParams | undefined;
  /** Empty: no cache. */
  credentialCache: string;
}

/** The Concierge and credential-cache flags every `login` command takes. */
export const conciergeFlags = {
  "enable-concierge": { type: "boolean" },
  "concierge-endpoint": { type: "string" },
  "concierge-ca-bundle-data": { type: "string" },
  "concierge-authenticator-type": { type: "string" },
  "concierge-authenticator-name": { type: "string" },
  "concierge-api-group-suffix": { type: "string" },
  "credential-cache": { type: "string" },
} as const;

export const loginStaticFlags = {
  token: { type: "string" },
  "token-env": { type: "string" },
  ...conciergeFlags,
} as const;

export function parseLoginStatic(args: string[], env: NodeJS.ProcessEnv): LoginStaticOptions | "help" {
  const { values } = parseFlags("login static", args, loginStaticFlags);
  if (values.help) return "help";
  let token = values.token;
  const tokenEnv = values["token-env"];
  if (token === undefined && tokenEnv === undefined)
    throw new UsageError("one of --token or --token-env must be set");
  if (token === undefined && tokenEnv !== undefined) {
    const fromEnv = env[tokenEnv];
    if (fromEnv === undefined) throw new UsageError(`--token-env variable "${tokenEnv}" is not set`);
    if (fromEnv === "") throw new UsageError(`--token-env variable "${tokenEnv}" is empty`);
    token = fromEnv;
  }
  const credentialCache = values["credential-cache"] ?? defaultCredentialCachePath(env);
  if (!values["enable-concierge"]) return { token: token!, concierge: undefined, credentialCache };
  return { token: token!, concierge: conciergeParams(values), credentialCache };
}

/** Validates the Concierge flags as upstream's conciergeclient does. */
export function conciergeParams(values: Record<string, unknown>): ConciergeParams {
  const invalid = (why: string) => new UsageError(`invalid Concierge parameters: ${why}`);
  const str = (name: string) => {
    const v = values[name];
    return typeof v === "string" ? v : "";
  };
  const endpoint = str("concierge-endpoint");
  if (endpoint === "") throw invalid("endpoint must not be empty (set --concierge-endpoint)");
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw invalid(`invalid endpoint URL "${endpoint}"`);
  }
  if (url.protocol !== "https:")
    throw invalid(`invalid endpoint scheme "${url.protocol.slice(0, -1)}" (must be "https")`);
  const caBundleData = str("concierge-ca-bundle-data");
  const caPEM = Buffer.from(caBundleData, "base64").toString("utf8");
  try {
    // Each certificate in the bundle must parse; X509Certificate reads the first.
    const blocks = caPEM.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) throw new Error("no certificates found");
    for (const b of blocks) new X509Certificate(b);
  } catch (err) {
    throw invalid(
      `invalid CA bundle data (--concierge-ca-bundle-data, base64 of PEM): ${(err as Error).message}`,
    );
  }
  const authenticatorName = str("concierge-authenticator-name");
  if (authenticatorName === "")
    throw invalid("authenticator name must not be empty (set --concierge-authenticator-name)");
  const authenticatorType = str("concierge-authenticator-type");
  try {
    authenticatorKind(authenticatorType);
  } catch (err) {
    throw invalid((err as Error).message);
  }
  const apiGroupSuffix = str("concierge-api-group-suffix") || defaultAPIGroupSuffix;
  validateAPIGroupSuffix(apiGroupSuffix);
  return { endpoint, caPEM, caBundleData, apiGroupSuffix, authenticatorType, authenticatorName };
}

export interface ExecCredential {
  apiVersion: string;
  kind: "ExecCredential";
  spec: Record<string, unknown>;
  status: ExecCredentialStatus;
}

/**
 * The ExecCredential version kubectl asked for in KUBERNETES_EXEC_INFO (it must match the exec
 * stanza's apiVersion), with its spec; v1 when run by hand.
 */
export function execInfo(env: NodeJS.ProcessEnv): { apiVersion: string; spec: Record<string, unknown> } {
  const fallback = { apiVersion: "client.authentication.k8s.io/v1", spec: { interactive: false } };
  const raw = env.KUBERNETES_EXEC_INFO;
  if (!raw) return fallback;
  try {
    const info = JSON.parse(raw) as { apiVersion?: unknown; spec?: Record<string, unknown> };
    if (typeof info.apiVersion !== "string") return fallback;
    // spec.cluster may hold the cluster's CA and config; upstream echoes spec back, so do we.
    return { apiVersion: info.apiVersion, spec: info.spec ?? {} };
  } catch {
    return fallback;
  }
}

export class LoginError extends Error {}

/** POSTs a TokenCredentialRequest anonymously, trusting only the given CA. */
export async function exchangeToken(params: ConciergeParams, token: string): Promise<ExecCredentialStatus> {
  const group = `login.concierge.${params.apiGroupSuffix}`;
  const url = new URL(
    `${params.endpoint.replace(/\/+$/, "")}/apis/${group}/v1alpha1/tokencredentialrequests`,
  );
  const body = JSON.stringify({
    apiVersion: `${group}/v1alpha1`,
    kind: "TokenCredentialRequest",
    metadata: {},
    spec: {
      token,
      authenticator: {
        apiGroup: `authentication.concierge.${params.apiGroupSuffix}`,
        kind: authenticatorKind(params.authenticatorType),
        name: params.authenticatorName,
      },
    },
  });
  const fail = (why: string) => new LoginError(`could not complete Concierge credential exchange: ${why}`);
  // Loaded here, not at the top: a cached credential must not pay for TLS and HTTP.
  const { request } = await import("node:https");
  const { code, text } = await new Promise<{ code: number; text: string }>((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        ca: params.caPEM,
        minVersion: "TLSv1.3",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "Content-Length": String(Buffer.byteLength(body)),
          "User-Agent": "pinniped-cli",
        },
        signal: AbortSignal.timeout(30_000),
      },
      (res) => {
        res.setEncoding("utf8");
        let text = "";
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => resolve({ code: res.statusCode ?? 0, text }));
        res.on("error", reject);
      },
    );
    req.on("error", (err) => reject(fail(`could not login: ${err.message}`)));
    req.end(body);
  });
  let parsed: { message?: string; status?: { credential?: Record<string, string>; message?: string } };
  try {
    parsed = JSON.parse(text);
  } catch {
    throw fail(`could not login: HTTP ${code} with a body that is not JSON`);
  }
  if (code < 200 || code > 299)
    throw fail(`could not login: HTTP ${code}: ${parsed.message ?? "no message"}`);
  const credential = parsed.status?.credential;
  // A token (the JWTCredential strategy's) goes to kubectl as `status.token`, as upstream's CLI passes it.
  if (credential?.token) {
    return { expirationTimestamp: credential.expirationTimestamp, token: credential.token };
  }
  if (!credential?.clientCertificateData || !credential.clientKeyData) {
    throw fail(`login failed: ${parsed.status?.message ?? "unknown cause"}`);
  }
  return {
    expirationTimestamp: credential.expirationTimestamp,
    clientCertificateData: credential.clientCertificateData,
    clientKeyData: credential.clientKeyData,
  };
}

export interface LoginDeps {
  env: NodeJS.ProcessEnv;
  /** Hears one-line warnings, e.g. about a cache file that is ignored. */
  stderr?: (text: string) => void;
  exchange?: typeof exchangeToken;
  now?: () => Date;
}

export async function loginStatic(options: LoginStaticOptions, deps: LoginDeps): Promise<ExecCredential> {
  const info = execInfo(deps.env);
  const wrap = (status: ExecCredentialStatus): ExecCredential => ({
    apiVersion: info.apiVersion,
    kind: "ExecCredential",
    spec: info.spec,
    status,
  });
  // Without the Concierge the token itself is the credential; nothing to cache.
  if (!options.concierge) return wrap({ token: options.token });
  const params = options.concierge;
  const cache =
    options.credentialCache === ""
      ? undefined
      : new CredentialCache(options.credentialCache, {
          ...(deps.now ? { now: deps.now } : {}),
          warn: (line) => deps.stderr?.(`warning: ${line}\n`),
        });
  const key = cacheKey({ ...params, token: options.token });
  const exchange = () => (deps.exchange ?? exchangeToken)(params, options.token);
  return wrap(cache ? await cache.getOrCreate(key, exchange) : await exchange());
}
