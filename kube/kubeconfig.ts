// Where the API server is and how to authenticate to it: a kubeconfig file or the pod's in-cluster
// ServiceAccount, read the way client-go reads them. The server's own loader, so that its runtime
// never loads @kubernetes/client-node (its KubeConfig pulls in its generated models, undici and ws:
// +78 MiB RSS when loaded; README "Performance"). client-node's KubeConfig has the same shape
// (`ClusterAccess`), so tests and tools may still pass one.
import { readFileSync, statSync } from "node:fs";
import type https from "node:https";
import { dirname, isAbsolute, join } from "node:path";
import { parse as parseYAML } from "yaml";

/** The API server of the current context. */
export interface ClusterInfo {
  readonly server: string;
  /** The CA bundle, base64-encoded PEM. */
  readonly caData?: string | undefined;
  readonly caFile?: string | undefined;
  readonly tlsServerName?: string | undefined;
  readonly skipTLSVerify: boolean;
  readonly proxyUrl?: string | undefined;
}

/** What the Concierge's clients need from a kubeconfig; client-node's KubeConfig fits it too. */
export interface ClusterAccess {
  getCurrentCluster(): ClusterInfo | null;
  /** Sets the CA, client certificate and key, TLS server name and Authorization header. */
  applyToHTTPSOptions(options: https.RequestOptions): Promise<void>;
}

/** client-go re-reads token and certificate files this often, so rotated ones are picked up. */
const fileRereadMs = 60_000;

/** A file's content, re-read once it is older than `fileRereadMs` and its mtime changed. */
function cachedFile(path: string, now: () => number = Date.now) {
  let content: Buffer | undefined;
  let mtimeMs = -1;
  let readAt = 0;
  return (): Buffer => {
    if (content !== undefined && now() - readAt < fileRereadMs) return content;
    const mtime = statSync(path).mtimeMs;
    if (content === undefined || mtime !== mtimeMs) {
      content = readFileSync(path);
      mtimeMs = mtime;
    }
    readAt = now();
    return content;
  };
}

interface Credentials {
  cert?: () => Buffer | string;
  key?: () => Buffer | string;
  token?: () => string;
  basic?: { username: string; password: string };
}

class Access implements ClusterAccess {
  readonly #cluster: ClusterInfo;
  readonly #ca: Buffer | undefined;
  readonly #credentials: Credentials;

  constructor(cluster: ClusterInfo, credentials: Credentials) {
    this.#cluster = cluster;
    this.#credentials = credentials;
    // Read once, as client-go builds its TLS config once.
    this.#ca = cluster.caData
      ? Buffer.from(cluster.caData, "base64")
      : cluster.caFile
        ? readFileSync(cluster.caFile)
        : undefined;
  }

  getCurrentCluster(): ClusterInfo {
    return this.#cluster;
  }

  async applyToHTTPSOptions(options: https.RequestOptions): Promise<void> {
    const c = this.#credentials;
    if (this.#ca) options.ca = this.#ca;
    if (this.#cluster.skipTLSVerify) options.rejectUnauthorized = false;
    if (this.#cluster.tlsServerName) options.servername = this.#cluster.tlsServerName;
    if (c.cert && c.key) {
      options.cert = c.cert();
      options.key = c.key();
    }
    const authorization = c.token
      ? `Bearer ${c.token().trim()}`
      : c.basic
        ? `Basic ${Buffer.from(`${c.basic.username}:${c.basic.password}`).toString("base64")}`
        : undefined;
    if (authorization) options.headers = { ...options.headers, Authorization: authorization };
  }
}

export const inClusterDir = "/var/run/secrets/kubernetes.io/serviceaccount";

/** client-go's rest.InClusterConfig: the Service's address from the environment, the mounted token and CA. */
export function loadInClusterConfig(
  env: NodeJS.ProcessEnv = process.env,
  dir: string = inClusterDir,
): ClusterAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new Error(
      "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined",
    );
  }
  const caFile = join(dir, "ca.crt");
  const token = cachedFile(join(dir, "token"));
  // Fails now rather than at the first request when the token is not mounted.
  token();
  return new Access(
    { server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`, caFile, skipTLSVerify: false },
    { token: () => token().toString("utf8") },
  );
}

type Entry = Record<string, unknown>;

function named(list: unknown, kind: string, field: string, name: string): Entry {
  const found = (Array.isArray(list) ? (list as Entry[]) : []).find((e) => e?.name === name);
  const value = found?.[field];
  if (!value || typeof value !== "object") throw new Error(`${kind} "${name}" is not in the kubeconfig`);
  return value as Entry;
}

function optionalString(entry: Entry, key: string, where: string): string | undefined {
  const value = entry[key];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw new Error(`${where}: ${key} must be a string`);
  return value;
}

/**
 * A kubeconfig file's current context (client-go's clientcmd for one file): its cluster's server,
 * CA, TLS server name and insecure-skip-tls-verify; its user's client certificate and key (data or
 * files), token or token file, or username and password. Relative paths are relative to the
 * file. Exec and auth-provider plugins are refused: the Concierge runs in-cluster, and a local run
 * uses a token or a certificate.
 */
export function loadKubeConfigFile(path: string, contextName?: string): ClusterAccess {
  const doc = parseYAML(readFileSync(path, "utf8")) as Entry | null;
  if (!doc || typeof doc !== "object") throw new Error(`${path} is not a kubeconfig`);
  const context = contextName ?? optionalString(doc, "current-context", path);
  if (!context) throw new Error(`${path} has no current-context`);
  const ctx = named(doc.contexts, "context", "context", context);
  const clusterName = optionalString(ctx, "cluster", `context ${context}`);
  if (!clusterName) throw new Error(`context "${context}" names no cluster`);
  const cluster = named(doc.clusters, "cluster", "cluster", clusterName);
  const where = `cluster ${clusterName}`;
  const resolve = (p: string | undefined) => (p && !isAbsolute(p) ? join(dirname(path), p) : p);
  const server = optionalString(cluster, "server", where);
  if (!server) throw new Error(`${where} has no server`);
  if (optionalString(cluster, "proxy-url", where)) throw new Error(`${where}: proxy-url is not supported`);
  const info: ClusterInfo = {
    server,
    caData: optionalString(cluster, "certificate-authority-data", where),
    caFile: resolve(optionalString(cluster, "certificate-authority", where)),
    tlsServerName: optionalString(cluster, "tls-server-name", where),
    skipTLSVerify: cluster["insecure-skip-tls-verify"] === true,
  };

  const userName = optionalString(ctx, "user", `context ${context}`);
  const user = userName ? named(doc.users, "user", "user", userName) : {};
  const who = `user ${userName}`;
  for (const plugin of ["exec", "auth-provider"]) {
    if (user[plugin] !== undefined) throw new Error(`${who}: ${plugin} credentials are not supported`);
  }
  const credentials: Credentials = {};
  const pemOf = (dataKey: string, fileKey: string) => {
    const data = optionalString(user, dataKey, who);
    if (data) {
      const pem = Buffer.from(data, "base64");
      return () => pem;
    }
    const file = resolve(optionalString(user, fileKey, who));
    return file ? cachedFile(file) : undefined;
  };
  const cert = pemOf("client-certificate-data", "client-certificate");
  const key = pemOf("client-key-data", "client-key");
  if (Boolean(cert) !== Boolean(key))
    throw new Error(`${who}: a client certificate needs its key, and a key its certificate`);
  if (cert && key) {
    credentials.cert = cert;
    credentials.key = key;
  }
  const token = optionalString(user, "token", who);
  const tokenFile = resolve(optionalString(user, "tokenFile", who));
  if (token) credentials.token = () => token;
  else if (tokenFile) {
    const read = cachedFile(tokenFile);
    credentials.token = () => read().toString("utf8");
  }
  const username = optionalString(user, "username", who);
  if (username) credentials.basic = { username, password: optionalString(user, "password", who) ?? "" };
  return new Access(info, credentials);
}
