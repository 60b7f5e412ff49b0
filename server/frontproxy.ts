// Front-proxy (request-header) authentication, as k8s.io/apiserver's requestheader authenticator
// does it: kube-apiserver's aggregator presents a client certificate signed by the request-header
// CA and names the user in X-Remote-* headers. The headers are believed only when that
// certificate verifies against the CA and its CN is an allowed name. The configuration comes
// from kube-system/extension-apiserver-authentication, fed into a holder by an informer, so a
// request never waits on the cluster.
import { X509Certificate } from "node:crypto";
import type { InformerSource } from "../controllers/runtime/informer.ts";
import { Holder, sameValue } from "../kube/holder.ts";
import type { KubeObject } from "../kube/resource.ts";
import type { Logger } from "../observability/logger.ts";

export const extensionAPIServerAuthentication = {
  namespace: "kube-system",
  name: "extension-apiserver-authentication",
} as const;

export interface FrontProxyConfig {
  /** PEM of one or more CA certificates. */
  caPEM: string;
  /** CNs allowed to assert identities; empty allows any certificate the CA verifies. */
  allowedNames: string[];
  usernameHeaders: string[];
  uidHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

/** The user kube-apiserver authenticated, as forwarded to us. */
export interface RequestUser {
  username: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export type FrontProxyResult = { ok: true; user: RequestUser } | { ok: false; reason: string };

const clientAuthOID = "1.3.6.1.5.5.7.3.2";
const maxChainLength = 10;

function jsonList(data: Record<string, string>, key: string): string[] {
  const raw = data[key];
  if (raw === undefined || raw === "") return [];
  const parsed: unknown = JSON.parse(raw);
  if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === "string")) {
    throw new Error(`${key} is not a JSON list of strings`);
  }
  return parsed;
}

/** Reads the ConfigMap's data; throws when request-header authentication is not configured. */
export function frontProxyConfigFromConfigMap(data: Record<string, string> | undefined): FrontProxyConfig {
  const d = data ?? {};
  const caPEM = d["requestheader-client-ca-file"];
  if (!caPEM) throw new Error("requestheader-client-ca-file is missing");
  const config = {
    caPEM,
    allowedNames: jsonList(d, "requestheader-allowed-names"),
    usernameHeaders: jsonList(d, "requestheader-username-headers"),
    uidHeaders: jsonList(d, "requestheader-uid-headers"),
    groupHeaders: jsonList(d, "requestheader-group-headers"),
    extraHeaderPrefixes: jsonList(d, "requestheader-extra-headers-prefix"),
  };
  if (config.usernameHeaders.length === 0) throw new Error("requestheader-username-headers is empty");
  return config;
}

function parseCAs(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const cas = blocks.map((b) => new X509Certificate(b));
  if (cas.length === 0) throw new Error("requestheader-client-ca-file holds no certificate");
  return cas;
}

interface Loaded {
  config: FrontProxyConfig;
  cas: X509Certificate[];
  /**
   * Each certificate's verified issuer (null: none among the CAs and the certificates sent with
   * it), for this configuration's CAs. A signature check costs about a millisecond; the aggregator
   * keeps its connections, whose certificates the server parses once (see peerChain), so a flood
   * of requests costs one check per connection rather than one per request.
   */
  issuers: WeakMap<X509Certificate, X509Certificate | null>;
}

/** The current front-proxy configuration; empty until the first successful `set`. */
export class FrontProxyConfigHolder {
  // Parsed once per change: every request through the aggregator is checked against the CAs.
  readonly #loaded = new Holder<Loaded | undefined>(undefined, { equal: sameValue });

  get(): FrontProxyConfig | undefined {
    return this.#loaded.get()?.config;
  }

  /** Throws, keeping the previous configuration, when the CA does not parse. */
  set(config: FrontProxyConfig): void {
    this.#loaded.set({
      config: structuredClone(config),
      cas: parseCAs(config.caPEM),
      issuers: new WeakMap(),
    });
  }

  clear(): void {
    this.#loaded.set(undefined);
  }

  /**
   * `chain` is the client's certificates, leaf first, as the TLS handshake delivered them (the
   * handshake already proved the client holds the leaf's key). `headers` is the raw header list.
   */
  authenticate(
    chain: readonly X509Certificate[],
    headers: readonly RawHeader[],
    now = new Date(),
  ): FrontProxyResult {
    const loaded = this.#loaded.get();
    if (!loaded) return { ok: false, reason: "front-proxy configuration not loaded" };
    const [leaf] = chain;
    if (!leaf) return { ok: false, reason: "no client certificate" };
    const verified = verifyChain(chain, loaded, now);
    if (verified !== undefined) return { ok: false, reason: verified };
    const { allowedNames } = loaded.config;
    const cn = commonName(leaf);
    if (allowedNames.length > 0 && !allowedNames.includes(cn)) {
      return { ok: false, reason: `client certificate CN ${JSON.stringify(cn)} is not an allowed name` };
    }
    return userFromHeaders(loaded.config, headers);
  }
}

export type RawHeader = readonly [name: string, value: string];

/** Pairs Node's flat `rawHeaders` list, which keeps repeated headers apart. */
export function pairHeaders(raw: readonly string[]): RawHeader[] {
  const pairs: RawHeader[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}

function commonName(cert: X509Certificate): string {
  for (const line of cert.subject.split("\n")) if (line.startsWith("CN=")) return line.slice(3);
  return "";
}

function validAt(cert: X509Certificate, now: Date): boolean {
  return cert.validFromDate <= now && now <= cert.validToDate;
}

// Go's x509 Verify with ExtKeyUsageClientAuth: every certificate on the path must be current, the
// leaf must allow client auth (no extended key usage at all allows anything), and each issuer
// must be a CA that signed the certificate below it.
function verifyChain(chain: readonly X509Certificate[], loaded: Loaded, now: Date) {
  const leaf = chain[0]!;
  if (leaf.keyUsage !== undefined && !leaf.keyUsage.includes(clientAuthOID)) {
    return "client certificate is not for client authentication";
  }
  let current = leaf;
  const intermediates = chain.slice(1);
  for (let depth = 0; depth < maxChainLength; depth++) {
    if (!validAt(current, now)) return "client certificate has expired or is not yet valid";
    const issuer = verifiedIssuer(current, intermediates, loaded);
    if (!issuer) return "client certificate is not signed by the request-header CA";
    if (loaded.cas.includes(issuer)) {
      return validAt(issuer, now) ? undefined : "request-header CA has expired or is not yet valid";
    }
    current = issuer;
  }
  return "client certificate chain is too long";
}

/** A CA that signed `cert`, the configured roots first; remembered per parsed certificate. */
function verifiedIssuer(
  cert: X509Certificate,
  intermediates: readonly X509Certificate[],
  loaded: Loaded,
): X509Certificate | null {
  const known = loaded.issuers.get(cert);
  if (known !== undefined) return known;
  const issuedBy = (ca: X509Certificate) => ca.ca && cert.checkIssued(ca) && cert.verify(ca.publicKey);
  const issuer = loaded.cas.find(issuedBy) ?? intermediates.find(issuedBy) ?? null;
  loaded.issuers.set(cert, issuer);
  return issuer;
}

function headerValues(headers: readonly RawHeader[], names: readonly string[]): string[] {
  const values: string[] = [];
  for (const name of names) {
    const lower = name.toLowerCase();
    for (const [n, v] of headers) if (n.toLowerCase() === lower && v !== "") values.push(v);
  }
  return values;
}

// url.PathUnescape, which keeps a key it cannot decode as it came.
function unescapeExtraKey(key: string): string {
  if (/%(?![0-9a-fA-F]{2})/.test(key)) return key;
  try {
    return decodeURIComponent(key);
  } catch {
    return key;
  }
}

/** requestheader's user, groups and extras; the first non-empty username header wins. */
export function userFromHeaders(config: FrontProxyConfig, headers: readonly RawHeader[]): FrontProxyResult {
  const username = headerValues(headers, config.usernameHeaders)[0];
  if (username === undefined) return { ok: false, reason: "no username header" };
  const uid = headerValues(headers, config.uidHeaders)[0];
  const groups = headerValues(headers, config.groupHeaders);
  const extra: Record<string, string[]> = {};
  for (const prefix of config.extraHeaderPrefixes) {
    const p = prefix.toLowerCase();
    for (const [name, value] of headers) {
      const lower = name.toLowerCase();
      if (!lower.startsWith(p)) continue;
      const key = unescapeExtraKey(lower.slice(p.length));
      const existing = extra[key];
      if (existing) existing.push(value);
      else extra[key] = [value];
    }
  }
  return { ok: true, user: { username, ...(uid ? { uid } : {}), groups, extra } };
}

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

/**
 * Keeps `holder` in step with the ConfigMap an informer (on kube-system, ideally narrowed to
 * this one name) caches. A deleted or unusable ConfigMap clears the holder, so every request is
 * refused rather than trusted against a CA kube-apiserver no longer uses.
 */
export function watchFrontProxyConfig(
  informer: InformerSource<ConfigMap>,
  holder: FrontProxyConfigHolder,
  log: Logger,
): () => void {
  const ours = (obj: ConfigMap) =>
    obj.metadata?.name === extensionAPIServerAuthentication.name &&
    obj.metadata?.namespace === extensionAPIServerAuthentication.namespace;
  const load = (obj: ConfigMap) => {
    if (!ours(obj)) return;
    try {
      holder.set(frontProxyConfigFromConfigMap(obj.data));
      log.info("front-proxy configuration loaded", { resourceVersion: obj.metadata?.resourceVersion });
    } catch (err) {
      holder.clear();
      log.error("front-proxy configuration is unusable; refusing every request", { error: err });
    }
  };
  return informer.addHandler({
    add: load,
    update: (_old, obj) => load(obj),
    delete: (obj) => {
      if (!ours(obj)) return;
      holder.clear();
      log.warn("front-proxy configuration deleted; refusing every request");
    },
  });
}
