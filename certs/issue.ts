// Issuing client and serving certificates the way upstream's certauthority.issueCert does.
//
// Why a hand-written DER writer (der.ts, x509.ts) and not @peculiar/x509: measured with
// bench/cert-issuance.ts on the 2-core dev box (Node 24), one issuance in flight, each including
// the leaf's P-256 key generation and both PEMs:
//
//   CA        crypto ceiling   this code          @peculiar/x509 2.2
//   RSA-2048  ~2,900/s         ~2,100/s (72%)     ~330/s (11%)
//   P-256     ~9,700/s         ~5,100/s (52%)     ~400/s (4%)
//
// (ceiling: keygen + one CA signature and nothing else). peculiar spends its time in ASN.1 schema
// and dependency-injection machinery, not in crypto, and needs reflect-metadata besides. At 6 to
// 13 times the throughput per CPU-second the TokenCredentialRequest handler stays cheap on a
// small box, so the writer earns its ~380 lines; issue.test.ts holds its output to openssl.
import { generateKeyPairSync } from "node:crypto";
import { bitString, explicit, objectIdentifier, octetString, sequence, smallInteger } from "../kube/der.ts";
import type { CertificateAuthority } from "./ca.ts";
import { type CertEnv, certBackdateMs, defaultCertEnv, randomSerial } from "./env.ts";
import {
  authorityKeyId,
  basicConstraints,
  createCertificate,
  type ExtKeyUsage,
  encodeName,
  extKeyUsage,
  subjectAltName,
  toPEM,
} from "./x509.ts";

/** Upstream's clientCertificateTTL for TokenCredentialRequest; not configurable there either. */
export const clientCertificateTTLMs = 5 * 60_000;

export interface IssuedCertificate {
  /** The leaf alone, PEM. */
  certPEM: string;
  /** The leaf's fresh ECDSA P-256 key, PEM `PRIVATE KEY` (PKCS#8). Never log it. */
  keyPEM: string;
  /** As written in the certificate, so whole seconds. */
  notBefore: Date;
  notAfter: Date;
}

export interface ClientIdentity {
  username: string;
  groups: readonly string[];
  /**
   * OU values. Recent upstream (vmware/pinniped 2025) writes the user's extras here as sorted
   * "key=value" strings; older releases, and the default here, write none.
   */
  organizationalUnits?: readonly string[];
}

/**
 * A client certificate: CN = username, one O per group (Go puts them in one multi-valued RDN, so
 * they come out in DER set order), no SANs, ExtKeyUsage clientAuth, CA:false, no KeyUsage.
 */
export function issueClientCertificate(
  ca: CertificateAuthority,
  identity: ClientIdentity,
  ttlMs: number = clientCertificateTTLMs,
  env: CertEnv = defaultCertEnv,
): Promise<IssuedCertificate> {
  const subject = encodeName(identity.username, identity.groups, identity.organizationalUnits);
  return issue(ca, subject, "clientAuth", [], [], ttlMs, env);
}

/**
 * A client certificate as issueClientCertificate writes it, for a key the client holds: its
 * public key comes from the client's certificate signing request (certs/csr.ts checked it), so
 * there is no key to return.
 */
export function issueClientCertificateForKey(
  ca: CertificateAuthority,
  identity: ClientIdentity,
  subjectPublicKeyInfo: Buffer,
  ttlMs: number = clientCertificateTTLMs,
  env: CertEnv = defaultCertEnv,
): Promise<Omit<IssuedCertificate, "keyPEM">> {
  const subject = encodeName(identity.username, identity.groups, identity.organizationalUnits);
  return signLeaf(ca, subject, "clientAuth", [], [], ttlMs, env, subjectPublicKeyInfo);
}

export interface ServingNames {
  dnsNames?: readonly string[];
  ips?: readonly string[];
}

/** A serving certificate: empty subject, the names as SANs (then critical), ExtKeyUsage serverAuth. */
export function issueServingCertificate(
  ca: CertificateAuthority,
  names: ServingNames,
  ttlMs: number,
  env: CertEnv = defaultCertEnv,
): Promise<IssuedCertificate> {
  return issue(ca, encodeName("", []), "serverAuth", names.dnsNames ?? [], names.ips ?? [], ttlMs, env);
}

async function issue(
  ca: CertificateAuthority,
  subject: Buffer,
  usage: ExtKeyUsage,
  dnsNames: readonly string[],
  ips: readonly string[],
  ttlMs: number,
  env: CertEnv,
): Promise<IssuedCertificate> {
  // Synchronous on purpose: a P-256 key pair costs tens of microseconds, less than a hop to
  // the thread pool; the CA signature (~0.35 ms for RSA-2048 here) is what createCertificate moves
  // off the event loop.
  const { spki, pkcs8 } = newP256Key();
  const signed = await signLeaf(ca, subject, usage, dnsNames, ips, ttlMs, env, spki);
  return { ...signed, keyPEM: toPEM("PRIVATE KEY", pkcs8) };
}

async function signLeaf(
  ca: CertificateAuthority,
  subject: Buffer,
  usage: ExtKeyUsage,
  dnsNames: readonly string[],
  ips: readonly string[],
  ttlMs: number,
  env: CertEnv,
  spki: Buffer,
): Promise<Omit<IssuedCertificate, "keyPEM">> {
  const serial = randomSerial(env);
  const now = env.now();
  const extensions = [extKeyUsage([usage]), basicConstraints(false)];
  // Go copies the parent's SubjectKeyId unless the certificate would look self-issued.
  if (ca.subjectKeyId && !subject.equals(ca.subjectDER)) extensions.push(authorityKeyId(ca.subjectKeyId));
  if (dnsNames.length > 0 || ips.length > 0)
    extensions.push(subjectAltName(dnsNames, ips, subject.length === 2));
  const der = await createCertificate(
    {
      serial,
      issuer: ca.subjectDER,
      subject,
      notBeforeMs: now - certBackdateMs,
      notAfterMs: now + ttlMs,
      subjectPublicKeyInfo: spki,
      extensions,
    },
    ca.signingKey(),
    ca.scheme,
  );
  return {
    certPEM: toPEM("CERTIFICATE", der),
    notBefore: new Date(Math.floor((now - certBackdateMs) / 1000) * 1000),
    notAfter: new Date(Math.floor((now + ttlMs) / 1000) * 1000),
  };
}

const ecPublicKeyP256 = sequence(
  objectIdentifier("1.2.840.10045.2.1"),
  objectIdentifier("1.2.840.10045.3.1.7"),
);

/**
 * A fresh P-256 key as SubjectPublicKeyInfo and PKCS#8 DER, encoded here from its JWK form:
 * OpenSSL 3's encoders make KeyObject.export to SPKI/PKCS#8 cost about 45 + 20 µs, twice the
 * key generation itself, while the JWK export takes 7. The PKCS#8 has Go's shape
 * (MarshalPKCS8PrivateKey): the curve in the outer AlgorithmIdentifier, the inner ECPrivateKey
 * with the public key but no repeated parameters.
 */
function newP256Key(): { spki: Buffer; pkcs8: Buffer } {
  const jwk = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
  const coordinate = (value: string | undefined) => {
    const bytes = Buffer.from(value ?? "", "base64url");
    if (bytes.length > 32) throw new Error("P-256 key component longer than 32 bytes");
    return Buffer.concat([Buffer.alloc(32 - bytes.length), bytes]);
  };
  const point = Buffer.concat([Buffer.of(0x04), coordinate(jwk.x), coordinate(jwk.y)]);
  const ecPrivateKey = sequence(
    smallInteger(1),
    octetString(coordinate(jwk.d)),
    explicit(1, bitString(point)),
  );
  return {
    spki: sequence(ecPublicKeyP256, bitString(point)),
    pkcs8: sequence(smallInteger(0), ecPublicKeyP256, octetString(ecPrivateKey)),
  };
}
