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
      --client-held-key                       Keep the client certificate's private key on this machine: send the Concierge a certificate signing request when it supports one (default true)
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
  /** Send a certificate signing request for a key made here, when the Concierge takes one. */
  clientHeldKey: boolean;
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
  "client-held-key": { type: "boolean" },
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
  return {
    clientHeldKey: values["client-held-key"] !== false,
    endpoint,
    caPEM,
    caBundleData,
    apiGroupSuffix,
    authenticatorType,
    authenticatorName,
  };
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

/**
 * Trades `token` for a cluster credential through a TokenCredentialRequest. With a client-held
 * key (the default), the request carries a certificate signing request for a key made here, and
 * the answer's certificate is paired with that key. Whether the Concierge takes the field is
 * asked of the Concierge itself, not guessed: the request is sent with `fieldValidation=Strict`,
 * which upstream's Concierge (the generic apiserver's decoding) answers with a 400 naming the
 * unknown field, and then the request is sent again as upstream's CLI sends it. A Concierge that
 * knows the field but whose serving strategy cannot sign the client's key answers a key of its
 * own, as upstream does, and that credential is used as it is.
 */
export async function exchangeToken(params: ConciergeParams, token: string): Promise<ExecCredentialStatus> {
  if (!params.clientHeldKey) return credentialOf(await postTokenCredentialRequest(params, token));
  const { certifiesKey, newClientKey } = await import("./clientkey.ts");
  const key = newClientKey();
  const answer = await postTokenCredentialRequest(params, token, key.csrPEM);
  if (answer.code === 400 && unknownFieldPattern.test(answer.parsed.message ?? "")) {
    return credentialOf(await postTokenCredentialRequest(params, token));
  }
  return credentialOf(answer, (certificatePEM) => {
    if (!certifiesKey(certificatePEM, key.keyPEM)) {
      throw exchangeFailed(
        "login failed: the certificate the Concierge answered is not for the key this CLI sent",
      );
    }
    return key.keyPEM;
  });
}

/** The generic apiserver's strict decoding error for the field upstream's Concierge does not have. */
const unknownFieldPattern = /unknown field "spec\.certificateSigningRequest"/;

const exchangeFailed = (why: string) =>
  new LoginError(`could not complete Concierge credential exchange: ${why}`);

interface TokenCredentialRequestAnswer {
  code: number;
  parsed: { message?: string; status?: { credential?: Record<string, string>; message?: string } };
}

/** POSTs a TokenCredentialRequest anonymously, trusting only the given CA. */
async function postTokenCredentialRequest(
  params: ConciergeParams,
  token: string,
  certificateSigningRequest?: string,
): Promise<TokenCredentialRequestAnswer> {
  const group = `login.concierge.${params.apiGroupSuffix}`;
  const url = new URL(
    `${params.endpoint.replace(/\/+$/, "")}/apis/${group}/v1alpha1/tokencredentialrequests`,
  );
  if (certificateSigningRequest !== undefined) url.searchParams.set("fieldValidation", "Strict");
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
      ...(certificateSigningRequest !== undefined ? { certificateSigningRequest } : {}),
    },
  });
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
    req.on("error", (err) => reject(exchangeFailed(`could not login: ${err.message}`)));
    req.end(body);
  });
  try {
    return { code, parsed: JSON.parse(text) };
  } catch {
    throw exchangeFailed(`could not login: HTTP ${code} with a body that is not JSON`);
  }
}

/**
 * The credential of a successful answer: a token, or a certificate with the key the answer holds
 * or, when it holds none, the key `heldKey` gives for it (the one this CLI made).
 */
function credentialOf(
  { code, parsed }: TokenCredentialRequestAnswer,
  heldKey?: (certificatePEM: string) => string,
): ExecCredentialStatus {
  if (code < 200 || code > 299)
    throw exchangeFailed(`could not login: HTTP ${code}: ${parsed.message ?? "no message"}`);
  const credential = parsed.status?.credential;
  // A token (the JWTCredential strategy's) goes to kubectl as `status.token`, as upstream's CLI passes it.
  if (credential?.token) {
    return { expirationTimestamp: credential.expirationTimestamp, token: credential.token };
  }
  const certificate = credential?.clientCertificateData;
  const key = certificate && (credential.clientKeyData || heldKey?.(certificate));
  if (!certificate || !key) {
    throw exchangeFailed(`login failed: ${parsed.status?.message ?? "unknown cause"}`);
  }
  return {
    expirationTimestamp: credential.expirationTimestamp,
    clientCertificateData: certificate,
    clientKeyData: key,
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
  // Whether the key is held here does not name a different credential: keys stay as they were.
  const { clientHeldKey: _, ...keyed } = params;
  const key = cacheKey({ ...keyed, token: options.token });
  const exchange = () => (deps.exchange ?? exchangeToken)(params, options.token);
  return wrap(cache ? await cache.getOrCreate(key, exchange) : await exchange());
}
