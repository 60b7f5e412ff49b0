// `pinniped login oidc`: the exec plugin for OIDC logins. It gets an ID token from the issuer
// (cached, refreshed, or through a browser login) and prints it as an ExecCredential, or, with
// --enable-concierge, trades it for a cluster certificate through a TokenCredentialRequest.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { CredentialCache, type ExecCredentialStatus } from "./cache.ts";
import { parseFlags, UsageError } from "./flags.ts";
import {
  type ConciergeParams,
  conciergeFlags,
  conciergeParams,
  defaultCredentialCachePath,
  type ExecCredential,
  exchangeToken,
  execInfo,
} from "./login-static.ts";
import type { LoginIO, LoginOptions } from "./oidc/client.ts";
import { defaultLoginTimeoutMs } from "./oidc/timeouts.ts";

export const defaultScopes = ["offline_access", "openid", "pinniped:request-audience", "username", "groups"];

export const loginOIDCHelp = `Login using an OpenID Connect provider

Use "pinniped get kubeconfig" to generate a kubeconfig file which includes this
login command in its configuration. This login command is not meant to be
invoked directly by a user.

This login command is a Kubernetes client-go credential plugin which is meant to
be configured inside a kubeconfig file. (See the Kubernetes authentication
documentation for more information about client-go credential plugins.)

Usage:
  pinniped login oidc --issuer ISSUER [flags]

Flags:
      --ca-bundle strings                        Path to TLS certificate authority bundle (PEM format, optional, can be repeated)
      --ca-bundle-data strings                   Base64 encoded TLS certificate authority bundle (base64 encoded PEM format, optional, can be repeated)
      --client-held-key                          Keep the client certificate's private key on this machine: send the Concierge a certificate signing request when it supports one (default true)
      --client-id string                         OpenID Connect client ID (default "pinniped-cli")
      --concierge-api-group-suffix string        Concierge API group suffix (default "pinniped.dev")
      --concierge-authenticator-name string      Concierge authenticator name
      --concierge-authenticator-type string      Concierge authenticator type (e.g., 'webhook', 'jwt')
      --concierge-ca-bundle-data string          CA bundle to use when connecting to the Concierge
      --concierge-endpoint string                API base for the Concierge endpoint
      --credential-cache string                  Path to cluster-specific credentials cache ("" disables the cache) (default "~/.config/pinniped/credentials.yaml")
      --enable-concierge                         Use the Concierge to login
  -h, --help                                     help for oidc
      --issuer string                            OpenID Connect issuer URL
      --listen-port uint16                       TCP port for localhost listener (authorization code flow only)
      --request-audience string                  Request a token with an alternate audience using RFC8693 token exchange
      --scopes strings                           OIDC scopes to request during login (default [offline_access,openid,pinniped:request-audience,username,groups])
      --session-cache string                     Path to session cache file (default "~/.config/pinniped/sessions.yaml")
      --skip-browser                             Skip opening the browser (just print the URL)
      --upstream-identity-provider-flow string   The type of client flow to use with the upstream identity provider during login with a Supervisor (e.g. 'browser_authcode', 'cli_password')
      --upstream-identity-provider-name string   The name of the upstream identity provider used during login with a Supervisor
      --upstream-identity-provider-type string   The type of the upstream identity provider used during login with a Supervisor (e.g. 'oidc', 'ldap', 'activedirectory', 'github') (default "oidc")
`;

export interface LoginOIDCOptions {
  login: Omit<LoginOptions, "sessionCache">;
  sessionCachePath: string;
  debugSessionCache: boolean;
  concierge: ConciergeParams | undefined;
  credentialCache: string;
  /** The command line, for the credential cache key: any flag change is a different credential. */
  args: string[];
}

/** Upstream's default: $XDG_CONFIG_HOME/pinniped/sessions.yaml, else ~/.config/…. */
export function defaultSessionCachePath(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "pinniped", "sessions.yaml");
}

/** pflag's string slices: repeatable, and each value may hold a comma-separated list. */
const slice = (values: string[] | undefined) =>
  (values ?? []).flatMap((v) => v.split(",")).filter((v) => v !== "");

export const loginOIDCFlags = {
  issuer: { type: "string" },
  "client-id": { type: "string" },
  scopes: { type: "string", multiple: true },
  "listen-port": { type: "string" },
  "skip-browser": { type: "boolean" },
  "skip-listen": { type: "boolean" },
  "session-cache": { type: "string" },
  "debug-session-cache": { type: "boolean" },
  "ca-bundle": { type: "string", multiple: true },
  "ca-bundle-data": { type: "string", multiple: true },
  "request-audience": { type: "string" },
  "upstream-identity-provider-name": { type: "string" },
  "upstream-identity-provider-type": { type: "string" },
  "upstream-identity-provider-flow": { type: "string" },
  "concierge-namespace": { type: "string" },
  ...conciergeFlags,
} as const;

export async function parseLoginOIDC(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<LoginOIDCOptions | "help"> {
  const { values } = parseFlags("login oidc", args, loginOIDCFlags);
  if (values.help) return "help";
  const issuer = values.issuer;
  if (!issuer) throw new UsageError(`required flag(s) "issuer" not set`);
  const portText = values["listen-port"] ?? "0";
  const listenPort = Number(portText);
  if (!/^\d+$/.test(portText) || listenPort > 65535)
    throw new UsageError(
      `invalid argument "${portText}" for "--listen-port" flag: must be a port number 0-65535`,
    );
  const ca = await caBundles(slice(values["ca-bundle"]), slice(values["ca-bundle-data"]));
  const scopes = values.scopes === undefined ? defaultScopes : slice(values.scopes);
  // The environment overrides the kubeconfig's flow, e.g. for an IDE with no terminal.
  const flow = env.PINNIPED_UPSTREAM_IDENTITY_PROVIDER_FLOW ?? values["upstream-identity-provider-flow"];
  const idpName = values["upstream-identity-provider-name"];
  let concierge: ConciergeParams | undefined;
  if (values["enable-concierge"]) {
    try {
      concierge = conciergeParams(values);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return {
    login: {
      issuer,
      clientID: values["client-id"] ?? "pinniped-cli",
      scopes,
      listenPort,
      skipBrowser: values["skip-browser"] ?? false,
      skipListen: values["skip-listen"] ?? false,
      skipPrintLoginURL: env.PINNIPED_SKIP_PRINT_LOGIN_URL === "true",
      ca,
      requestAudience: values["request-audience"] || undefined,
      upstreamIdentityProvider: idpName
        ? {
            name: idpName,
            type: values["upstream-identity-provider-type"] || "oidc",
            flow: flow || undefined,
          }
        : undefined,
    },
    sessionCachePath: values["session-cache"] ?? defaultSessionCachePath(env),
    debugSessionCache: values["debug-session-cache"] ?? false,
    concierge,
    credentialCache: values["credential-cache"] ?? defaultCredentialCachePath(env),
    args: ["login", "oidc", ...args],
  };
}

/** The PEM of every --ca-bundle file and --ca-bundle-data value; undefined when none: system roots. */
async function caBundles(paths: string[], data: string[]): Promise<string[] | undefined> {
  if (paths.length === 0 && data.length === 0) return undefined;
  const pems: string[] = [];
  for (const p of paths) {
    try {
      pems.push(await readFile(p, "utf8"));
    } catch (err) {
      throw new UsageError(`could not read --ca-bundle: ${(err as Error).message}`);
    }
  }
  for (const d of data) {
    const pem = Buffer.from(d, "base64").toString("utf8");
    if (!pem.includes("-----BEGIN CERTIFICATE-----"))
      throw new UsageError("could not read --ca-bundle-data: not base64 of a PEM certificate bundle");
    pems.push(pem);
  }
  return pems;
}

export interface LoginOIDCDeps {
  env: NodeJS.ProcessEnv;
  stderr: (text: string) => void;
  exchange?: typeof exchangeToken;
}

/** The credential cache key of a `login oidc` command line: any flag change is a new credential. */
export function oidcCredentialKey(args: string[], spec: Record<string, unknown>): string {
  return createHash("sha256")
    .update(JSON.stringify({ args, cluster: spec.cluster ?? null }))
    .digest("hex");
}

export async function loginOIDC(options: LoginOIDCOptions, deps: LoginOIDCDeps): Promise<ExecCredential> {
  const debugOn = deps.env.PINNIPED_DEBUG === "true";
  const debug = (message: string) => {
    if (debugOn) deps.stderr(`${new Date().toISOString()}  debug  ${message}\n`);
  };
  const info = execInfo(deps.env);
  const obtain = async (): Promise<ExecCredentialStatus> => {
    // The OIDC client and the browser are loaded only when the cached credential will not do.
    const [{ openURL }, { login }, { SessionCache }] = await Promise.all([
      import("./oidc/browser.ts"),
      import("./oidc/client.ts"),
      import("./oidc/sessioncache.ts"),
    ]);
    debug(`Performing OIDC login issuer=${options.login.issuer} client id=${options.login.clientID}`);
    const sessionCache =
      options.sessionCachePath === ""
        ? undefined
        : new SessionCache(
            options.sessionCachePath,
            (m) => {
              if (options.debugSessionCache || debugOn)
                deps.stderr(`error during session cache operation: ${m}\n`);
            },
            (line) => deps.stderr(`warning: ${line}\n`),
          );
    const io: LoginIO = {
      stderr: deps.stderr,
      debug,
      openURL: (url) => openURL(url, deps.env),
      stdinIsTTY: process.stdin.isTTY === true,
    };
    let idToken: { token: string; expiry: Date };
    try {
      idToken = await login({ ...options.login, sessionCache }, io);
    } catch (err) {
      throw new Error(`could not complete Pinniped login: ${(err as Error).message}`);
    }
    if (!options.concierge) {
      debug("No concierge configured, skipping token credential exchange");
      return { token: idToken.token, expirationTimestamp: idToken.expiry.toISOString() };
    }
    debug(
      `Exchanging token for cluster credential endpoint=${options.concierge.endpoint} authenticator type=${options.concierge.authenticatorType} authenticator name=${options.concierge.authenticatorName}`,
    );
    const credential = await (deps.exchange ?? exchangeToken)(options.concierge, idToken.token);
    debug("Successfully exchanged token for cluster credential.");
    return credential;
  };
  const key = oidcCredentialKey(options.args, info.spec);
  const status =
    options.credentialCache === ""
      ? await obtain()
      : await new CredentialCache(options.credentialCache, {
          warn: (line) => deps.stderr(`warning: ${line}\n`),
          // A second kubectl during a browser login waits for it and uses its credential,
          // rather than start a second login after upstream's 10 s.
          lockTimeoutMs: (options.login.loginTimeoutMs ?? defaultLoginTimeoutMs) + 60_000,
        }).getOrCreate(key, obtain);
  return { apiVersion: info.apiVersion, kind: "ExecCredential", spec: info.spec, status };
}
