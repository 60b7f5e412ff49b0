// The impersonation proxy's CAs as pure functions of (the Secret as cached, the time, the policy):
// create, keep, rotate with an overlap, drop the old CA once the overlap ends. Upstream never
// rotates its serving CA (100 years) and deletes the signer CA at 365d − 1h, which breaks every
// kubeconfig or client certificate made before. Here a rotation keeps the old CA next to the new
// one: the serving chain carries the new CA cross-signed by the old key, so a kubeconfig that
// trusts only the old CA still verifies the proxy; the signer's old CA stays trusted for client
// certificates until every certificate it issued has expired.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { CertificateAuthority } from "../../certs/ca.ts";
import { type CertEnv, defaultCertEnv, randomSerial } from "../../certs/env.ts";
import { type IssuedCertificate, issueServingCertificate, type ServingNames } from "../../certs/issue.ts";
import {
  authorityKeyId,
  basicConstraints,
  createCertificate,
  extKeyUsage,
  ipBytes,
  keyUsageDigitalSignatureCertSign,
  subjectKeyId,
  toPEM,
} from "../../certs/x509.ts";
import { rfc3339 } from "../../kube/clock.ts";
import type { KubeObject } from "../../kube/resource.ts";

export type Secret = KubeObject & { type?: string; data?: Record<string, string> };

/** Set to any new value on a CA Secret to rotate that CA now (e.g. `date +%s`). */
export const rotateAnnotation = "concierge.pinniped.dev/rotate";
/** The `rotate` value the last rotation acted on, so one value rotates once. */
export const rotatedForAnnotation = "concierge.pinniped.dev/rotated-for";
/** RFC 3339 time after which the previous CA (and its cross-signed certificate) is dropped. */
export const previousUntilAnnotation = "concierge.pinniped.dev/previous-ca-until";

const day = 24 * 3600_000;

/** How one CA lives: its lifetime, when it is renewed, how long the old one stays trusted. */
export interface CAPolicy {
  commonName: string;
  lifetimeMs: number;
  /** Rotate when less than this is left before NotAfter. */
  renewBeforeMs: number;
  /** How long after a rotation the previous CA stays (never past its own NotAfter). */
  overlapMs: number;
  /** Data keys of the Secret. */
  keys: { cert: string; key: string; previous: string; crossSigned?: string };
}

/**
 * The serving CA: 10 years, renewed with 2 years (1/5) left; the old CA is published and chained
 * to for 90 days, long enough for kubeconfigs to be regenerated on a quarterly cycle.
 */
export function servingCAPolicy(overrides: Partial<Omit<CAPolicy, "keys">> = {}): CAPolicy {
  const lifetimeMs = overrides.lifetimeMs ?? 3650 * day;
  return {
    commonName: "Pinniped Impersonation Proxy Serving CA",
    lifetimeMs,
    renewBeforeMs: lifetimeMs / 5,
    overlapMs: 90 * day,
    ...overrides,
    keys: { cert: "ca.crt", key: "ca.key", previous: "previous-ca.crt", crossSigned: "ca-cross-signed.crt" },
  };
}

/**
 * The signer CA: upstream's 365 days, renewed with 1/5 left; the old CA stays trusted for client
 * certificates for the longest client certificate TTL (default 24 h), after which none it issued
 * can still be valid.
 */
export function signerCAPolicy(overrides: Partial<Omit<CAPolicy, "keys">> = {}): CAPolicy {
  const lifetimeMs = overrides.lifetimeMs ?? 365 * day;
  return {
    commonName: "Pinniped Impersonation Proxy Signer CA",
    lifetimeMs,
    renewBeforeMs: lifetimeMs / 5,
    overlapMs: day,
    ...overrides,
    keys: { cert: "caCertificate", key: "caCertificatePrivateKey", previous: "previousCACertificate" },
  };
}

export interface CAState {
  current: CertificateAuthority;
  /** During an overlap: the old CA's certificate and when it is dropped. */
  previous?: { certPEM: string; untilMs: number };
  /** The current CA cross-signed by the previous CA's key (serving CA only). */
  crossSignedPEM?: string;
}

export type CAEvent = "none" | "created" | "rotated" | "dropped-previous";

export interface CAPlan {
  event: CAEvent;
  /** Why, for logs (never key material). */
  detail: string;
  state: CAState;
  /** The Secret's data and our annotations when `event` is not "none". */
  data: Record<string, string>;
  annotations: Record<string, string>;
  /** When the plan would next change by time alone. */
  nextChangeMs: number;
}

const b64 = (text: string) => Buffer.from(text).toString("base64");
const unb64 = (value: string | undefined) =>
  value === undefined ? undefined : Buffer.from(value, "base64").toString();

/** Reads the CA material of a Secret; undefined when it is missing or unusable. */
export function loadCAState(secret: Secret | undefined, policy: CAPolicy): CAState | undefined {
  const certPEM = unb64(secret?.data?.[policy.keys.cert]);
  const keyPEM = unb64(secret?.data?.[policy.keys.key]);
  if (!certPEM || !keyPEM) return undefined;
  let current: CertificateAuthority;
  try {
    current = CertificateAuthority.load(certPEM, keyPEM);
  } catch {
    return undefined;
  }
  const state: CAState = { current };
  const previousPEM = unb64(secret?.data?.[policy.keys.previous]);
  const until = Date.parse(secret?.metadata?.annotations?.[previousUntilAnnotation] ?? "");
  if (previousPEM && Number.isFinite(until) && parsesAsCertificate(previousPEM)) {
    state.previous = { certPEM: previousPEM, untilMs: until };
    const crossKey = policy.keys.crossSigned;
    const cross = crossKey ? unb64(secret?.data?.[crossKey]) : undefined;
    if (cross && parsesAsCertificate(cross)) state.crossSignedPEM = cross;
  }
  return state;
}

function parsesAsCertificate(pem: string): boolean {
  try {
    new X509Certificate(pem);
    return true;
  } catch {
    return false;
  }
}

/**
 * What the CA Secret should hold at `nowMs`. Rotation is due when less than `renewBeforeMs` is
 * left, or when the Secret's `rotate` annotation has a value no rotation has acted on yet.
 * A second rotation inside an overlap replaces the previous CA: only one step is bridged.
 */
export async function planCA(
  secret: Secret | undefined,
  nowMs: number,
  policy: CAPolicy,
  env: CertEnv = { ...defaultCertEnv, now: () => nowMs },
): Promise<CAPlan> {
  const existing = loadCAState(secret, policy);
  const annotations = secret?.metadata?.annotations ?? {};
  const requested = annotations[rotateAnnotation];
  const rotatedFor = annotations[rotatedForAnnotation];
  const ours: Record<string, string> = {};
  if (rotatedFor !== undefined) ours[rotatedForAnnotation] = rotatedFor;

  if (!existing) {
    const current = await CertificateAuthority.create(policy.commonName, policy.lifetimeMs, env);
    // A rotate value present at creation is satisfied by the creation itself.
    if (requested !== undefined) ours[rotatedForAnnotation] = requested;
    return finish("created", secret ? "the Secret holds no usable CA" : "no CA Secret", { current }, ours);
  }

  const renewAtMs = notAfterMs(existing.current) - policy.renewBeforeMs;
  const asked = requested !== undefined && requested !== "" && requested !== rotatedFor;
  if (asked || nowMs >= renewAtMs) {
    const old = existing.current;
    // A distinct subject per generation, so chain building never confuses the two CAs.
    const current = await CertificateAuthority.create(
      `${policy.commonName} (${rfc3339(nowMs)})`,
      policy.lifetimeMs,
      env,
    );
    const state: CAState = {
      current,
      previous: { certPEM: old.certPEM, untilMs: Math.min(nowMs + policy.overlapMs, notAfterMs(old)) },
    };
    if (policy.keys.crossSigned) state.crossSignedPEM = await crossSign(current, old, env);
    if (asked) ours[rotatedForAnnotation] = requested;
    return finish(
      "rotated",
      asked ? `${rotateAnnotation} set to ${requested}` : "renewal window reached",
      state,
      ours,
    );
  }

  if (existing.previous && nowMs >= existing.previous.untilMs) {
    return finish("dropped-previous", "the overlap ended", { current: existing.current }, ours);
  }
  return { ...finish("none", "up to date", existing, ours), data: secret?.data ?? {} };

  function finish(
    event: CAEvent,
    detail: string,
    state: CAState,
    annotationsOut: Record<string, string>,
  ): CAPlan {
    const data: Record<string, string> = {
      [policy.keys.cert]: b64(state.current.certPEM),
      [policy.keys.key]: b64(state.current.privateKeyPEM()),
    };
    if (state.previous) {
      data[policy.keys.previous] = b64(state.previous.certPEM);
      annotationsOut[previousUntilAnnotation] = rfc3339(state.previous.untilMs);
      if (policy.keys.crossSigned && state.crossSignedPEM)
        data[policy.keys.crossSigned] = b64(state.crossSignedPEM);
    }
    const renewAt = notAfterMs(state.current) - policy.renewBeforeMs;
    const nextChangeMs = state.previous ? Math.min(renewAt, state.previous.untilMs) : renewAt;
    return { event, detail, state, data, annotations: annotationsOut, nextChangeMs };
  }
}

export function notAfterMs(ca: CertificateAuthority): number {
  return Date.parse(ca.certificate.validTo);
}

/** The bundle clients should trust: the current CA, then the previous one during an overlap. */
export function trustBundle(state: CAState): string {
  return state.previous ? state.current.certPEM + state.previous.certPEM : state.current.certPEM;
}

/**
 * The new CA's certificate re-issued by the old CA: same subject, key and SubjectKeyId as the
 * new CA, issuer and AuthorityKeyId of the old one, valid no longer than either.
 */
export async function crossSign(
  next: CertificateAuthority,
  old: CertificateAuthority,
  env: CertEnv = defaultCertEnv,
): Promise<string> {
  const spki = next.certificate.publicKey.export({ type: "spki", format: "der" });
  const extensions = [
    keyUsageDigitalSignatureCertSign(),
    extKeyUsage(["clientAuth", "serverAuth"]),
    basicConstraints(true),
  ];
  if (next.subjectKeyId) extensions.push(subjectKeyId(next.subjectKeyId));
  if (old.subjectKeyId) extensions.push(authorityKeyId(old.subjectKeyId));
  const der = await createCertificate(
    {
      serial: randomSerial(env),
      issuer: old.subjectDER,
      subject: next.subjectDER,
      notBeforeMs: Date.parse(next.certificate.validFrom),
      notAfterMs: Math.min(notAfterMs(next), notAfterMs(old)),
      subjectPublicKeyInfo: spki,
      extensions,
    },
    old.signingKey(),
    old.scheme,
  );
  return toPEM("CERTIFICATE", der);
}

export interface ServingPolicy {
  /** The leaf's lifetime, never past the CA's NotAfter. Default 1 year. */
  lifetimeMs: number;
  /** Renew the leaf when less than this is left. Default 1/5 of the lifetime. */
  renewBeforeMs: number;
}

export function servingPolicy(overrides: Partial<ServingPolicy> = {}): ServingPolicy {
  const lifetimeMs = overrides.lifetimeMs ?? 365 * day;
  return { lifetimeMs, renewBeforeMs: lifetimeMs / 5, ...overrides };
}

export type ServingPlan =
  | { action: "none"; certPEM: string; keyPEM: string; nextChangeMs: number }
  | { action: "write"; reason: string; certPEM: string; keyPEM: string; nextChangeMs: number };

/**
 * The TLS Secret for exactly `names` (one DNS name, or the IPs in order), signed by the current
 * CA, its chain leaf + the cross-signed CA during an overlap. A leaf that still fits is kept and
 * only its chain rewritten; anything else is issued afresh.
 */
export async function planServing(
  secret: Secret | undefined,
  ca: CAState,
  names: ServingNames,
  nowMs: number,
  policy: ServingPolicy,
  env: CertEnv = { ...defaultCertEnv, now: () => nowMs },
): Promise<ServingPlan> {
  const chainTail = ca.crossSignedPEM ?? "";
  const certPEM = unb64(secret?.data?.["tls.crt"]);
  const keyPEM = unb64(secret?.data?.["tls.key"]);
  const problem = leafProblem(certPEM, keyPEM, ca, names, nowMs, policy);
  if (problem === undefined && certPEM && keyPEM) {
    const leafPEM = new X509Certificate(certPEM).toString();
    const leaf = new X509Certificate(leafPEM);
    const nextChangeMs = Date.parse(leaf.validTo) - policy.renewBeforeMs;
    const chain = leafPEM + chainTail;
    if (secret?.type === "kubernetes.io/tls" && certPEM === chain)
      return { action: "none", certPEM, keyPEM, nextChangeMs };
    return { action: "write", reason: "the chain changed", certPEM: chain, keyPEM, nextChangeMs };
  }
  const ttl = Math.min(policy.lifetimeMs, notAfterMs(ca.current) - nowMs);
  const issued: IssuedCertificate = await issueServingCertificate(ca.current, names, ttl, env);
  return {
    action: "write",
    reason: problem ?? "no certificate",
    certPEM: issued.certPEM + chainTail,
    keyPEM: issued.keyPEM,
    nextChangeMs: issued.notAfter.getTime() - policy.renewBeforeMs,
  };
}

function leafProblem(
  certPEM: string | undefined,
  keyPEM: string | undefined,
  ca: CAState,
  names: ServingNames,
  nowMs: number,
  policy: ServingPolicy,
): string | undefined {
  if (!certPEM || !keyPEM) return "no certificate";
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certPEM);
    if (!leaf.checkPrivateKey(createPrivateKey(keyPEM))) return "the key does not match the certificate";
  } catch {
    return "the certificate or key does not parse";
  }
  if (!leaf.checkIssued(ca.current.certificate) || !leaf.verify(ca.current.certificate.publicKey))
    return "not signed by the current CA";
  if (!sameNames(leaf, names)) return "the names changed";
  if (Date.parse(leaf.validTo) - policy.renewBeforeMs <= nowMs) return "renewal window reached";
  return undefined;
}

/** Upstream's rule: exactly one DNS name and no IPs, or exactly the IPs (in order) and no DNS names. */
function sameNames(leaf: X509Certificate, names: ServingNames): boolean {
  const sans = (leaf.subjectAltName ?? "").split(", ").filter((s) => s !== "");
  const dns = sans.filter((s) => s.startsWith("DNS:")).map((s) => s.slice(4));
  const ips = sans.filter((s) => s.startsWith("IP Address:")).map((s) => normalizeIP(s.slice(11)));
  const wantDNS = names.dnsNames ?? [];
  const wantIPs = (names.ips ?? []).map(normalizeIP);
  return (
    dns.length === wantDNS.length &&
    dns.every((d, i) => d === wantDNS[i]) &&
    ips.length === wantIPs.length &&
    ips.every((ip, i) => ip === wantIPs[i])
  );
}

/** Node prints IPv6 SANs expanded in upper case; compare by bytes. */
function normalizeIP(ip: string): string {
  try {
    return ipBytes(ip).toString("hex");
  } catch {
    return ip;
  }
}
