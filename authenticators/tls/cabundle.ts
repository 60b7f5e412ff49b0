// Resolves a TLSSpec (inline CA data, or a Secret or ConfigMap in the Concierge
// namespace) into a CA bundle and upstream's TLSConfigurationValid condition, with
// upstream's exact messages.
import { createHash, X509Certificate } from "node:crypto";
import { decodeStdBase64 } from "./gobase64.ts";

export interface TLSSpecInput {
  certificateAuthorityData?: string;
  certificateAuthorityDataSource?: { kind: string; name: string; key: string };
}

/** The minimum of a Secret or ConfigMap that the resolver reads, from an informer cache. */
export interface SecretLike {
  type?: string;
  data?: Record<string, string>;
}
export interface ConfigMapLike {
  data?: Record<string, string>;
}

export interface CABundleLookups {
  secret(namespace: string, name: string): SecretLike | undefined;
  configMap(namespace: string, name: string): ConfigMapLike | undefined;
}

export interface CABundle {
  /** Only the certificates that parsed, as PEM: what a TLS client should trust. */
  pem: string;
  /** SHA-256 (hex) of the bundle bytes as configured, for "nothing changed" checks. */
  sha256: string;
}

export interface TLSCondition {
  type: "TLSConfigurationValid";
  status: "True" | "False";
  reason: "Success" | "InvalidTLSConfig";
  message: string;
}

export interface TLSResolution {
  condition: TLSCondition;
  /** Undefined when no CA is configured (system roots apply) or when the spec is invalid. */
  bundle: CABundle | undefined;
}

const beginCertificate = '(PEM certificates must begin with "-----BEGIN CERTIFICATE-----")';

/** Like Go's CertPool.AppendCertsFromPEM: CERTIFICATE blocks without headers that parse. */
export function parsePEMCertificates(pem: Buffer): X509Certificate[] {
  const text = pem.toString("latin1");
  const blocks = text.matchAll(/-----BEGIN CERTIFICATE-----\r?\n([\s\S]*?)-----END CERTIFICATE-----/g);
  const certs: X509Certificate[] = [];
  for (const [, body = ""] of blocks) {
    if (/^[\w-]+:/m.test(body)) continue;
    try {
      certs.push(new X509Certificate(Buffer.from(body.replace(/\s+/g, ""), "base64")));
    } catch {
      // Go skips certificates that do not parse, and so do we.
    }
  }
  return certs;
}

function valid(prefix: string, bundle: CABundle | undefined): TLSResolution {
  const what = bundle
    ? "using configured CA bundle"
    : "no TLS configuration provided: using default root CA bundle from container image";
  return {
    condition: {
      type: "TLSConfigurationValid",
      status: "True",
      reason: "Success",
      message: `${prefix} is valid: ${what}`,
    },
    bundle,
  };
}

function invalid(message: string): TLSResolution {
  return {
    condition: { type: "TLSConfigurationValid", status: "False", reason: "InvalidTLSConfig", message },
    bundle: undefined,
  };
}

function readSource(
  source: { kind: string; name: string; key: string },
  namespace: string,
  lookups: CABundleLookups,
): string {
  const namespaced = `${namespace}/${source.name}`;
  if (source.kind === "Secret") {
    const secret = lookups.secret(namespace, source.name);
    if (!secret) throw new Error(`failed to get secret "${namespaced}": secret "${source.name}" not found`);
    const type = secret.type ?? "Opaque";
    if (type !== "kubernetes.io/tls" && type !== "Opaque") {
      throw new Error(
        `secret "${namespaced}" of type "${type}" cannot be used as a certificate authority data source`,
      );
    }
    const value = secret.data?.[source.key];
    if (value === undefined) throw new Error(`key "${source.key}" not found in secret "${namespaced}"`);
    // Secret data arrives base64-encoded on the wire; the bundle itself is raw PEM.
    const decoded = Buffer.from(value, "base64").toString("latin1");
    if (decoded.length === 0)
      throw new Error(`key "${source.key}" has empty value in secret "${namespaced}"`);
    return decoded;
  }
  if (source.kind === "ConfigMap") {
    const configMap = lookups.configMap(namespace, source.name);
    if (!configMap)
      throw new Error(`failed to get configmap "${namespaced}": configmap "${source.name}" not found`);
    const value = configMap.data?.[source.key];
    if (value === undefined) throw new Error(`key "${source.key}" not found in configmap "${namespaced}"`);
    if (value.length === 0)
      throw new Error(`key "${source.key}" has empty value in configmap "${namespaced}"`);
    return value;
  }
  throw new Error(`unsupported CA bundle source kind: ${source.kind}`);
}

/**
 * `prefix` names the field in messages, as upstream's conditionPrefix does: "spec.tls".
 * Pure: reads Secrets and ConfigMaps only through `lookups` (informer caches).
 */
export function resolveCABundle(
  tls: TLSSpecInput | undefined,
  prefix: string,
  namespace: string,
  lookups: CABundleLookups,
): TLSResolution {
  if (!tls) return valid(prefix, undefined);
  const inline = tls.certificateAuthorityData ?? "";
  const source = tls.certificateAuthorityDataSource;
  if (inline.length > 0 && source) {
    return invalid(
      `${prefix} is invalid: both tls.certificateAuthorityDataSource and tls.certificateAuthorityData provided`,
    );
  }
  let bytes: Buffer;
  let notPEM: () => string;
  if (source) {
    const field = `${prefix}.certificateAuthorityDataSource`;
    let text: string;
    try {
      text = readSource(source, namespace, lookups);
    } catch (err) {
      return invalid(`${field} is invalid: ${(err as Error).message}`);
    }
    bytes = Buffer.from(text, "latin1");
    notPEM = () =>
      `${field} is invalid: key "${source.key}" with ${text.length} bytes of data in ${source.kind.toLowerCase()} "${namespace}/${source.name}" is not a PEM-encoded certificate ${beginCertificate}`;
  } else {
    const field = `${prefix}.certificateAuthorityData`;
    if (inline.length === 0) return valid(prefix, undefined);
    try {
      bytes = decodeStdBase64(inline);
    } catch (err) {
      return invalid(`${field} is invalid: ${(err as Error).message}`);
    }
    notPEM = () =>
      `${field} is invalid: no base64-encoded PEM certificates found in ${inline.length} bytes of data ${beginCertificate}`;
  }
  const certs = parsePEMCertificates(bytes);
  if (certs.length === 0) return invalid(notPEM());
  return valid(prefix, {
    pem: certs.map((c) => c.toString()).join(""),
    sha256: createHash("sha256").update(bytes).digest("hex"),
  });
}
