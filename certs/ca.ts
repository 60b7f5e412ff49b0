// A certificate authority: loaded from PEM the way upstream's certauthority.Load accepts it (the
// kube cluster signing CA, the impersonation-proxy signer), or created fresh and self-signed
// (the aggregated API's serving CA). The private key stays in a private field: it never shows in
// util.inspect, JSON or a log line, and leaves only through privateKeyPEM() for the Secret.
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  X509Certificate,
} from "node:crypto";
import { children, decodeObjectIdentifier, type Element, readElement } from "../kube/der.ts";
import { type CertEnv, certBackdateMs, defaultCertEnv, randomSerial } from "./env.ts";
import {
  basicConstraints,
  createCertificate,
  encodeName,
  extKeyUsage,
  keyUsageDigitalSignatureCertSign,
  type SignatureScheme,
  signatureSchemeFor,
  subjectKeyId,
  toPEM,
} from "./x509.ts";

/** Upstream's ErrInvalidCACertificate, so callers can tell a bad CA from unreadable PEM. */
export class InvalidCACertificateError extends Error {
  constructor(detail: string) {
    super(`invalid CA certificate: ${detail}`);
    this.name = "InvalidCACertificateError";
  }
}

export class CertificateAuthority {
  /** The CA certificate alone, PEM: the bundle clients trust. */
  readonly certPEM: string;
  readonly certificate: X509Certificate;
  /** The CA's subject Name DER, copied as the issuer of everything it signs. */
  readonly subjectDER: Buffer;
  /** The CA's SubjectKeyId, which becomes its leaves' AuthorityKeyId; absent if the CA has none. */
  readonly subjectKeyId: Buffer | undefined;
  readonly scheme: SignatureScheme;
  readonly #key: KeyObject;

  private constructor(certificate: X509Certificate, key: KeyObject) {
    this.certificate = certificate;
    this.certPEM = toPEM("CERTIFICATE", certificate.raw);
    this.#key = key;
    this.scheme = signatureSchemeFor(key);
    const parts = parseTBS(certificate.raw);
    this.subjectDER = parts.subject;
    this.subjectKeyId = parts.subjectKeyId;
  }

  /**
   * Upstream's certauthority.Load: the PEM must hold exactly one certificate, its private key
   * (RSA PKCS#1, EC SEC1 or PKCS#8) must match it, and it must be a CA by basicConstraints.
   * Error messages follow Go's, so they read the same in a CredentialIssuer status.
   */
  static load(certPEM: string, keyPEM: string): CertificateAuthority {
    const certBlocks = pemBlocks(certPEM).filter((block) => block.type === "CERTIFICATE");
    const first = certBlocks[0];
    if (!first) throw new Error("could not load CA: tls: failed to find any PEM data in certificate input");
    const keyBlock = pemBlocks(keyPEM).find((block) => block.type.endsWith("PRIVATE KEY"));
    if (!keyBlock) throw new Error("could not load CA: tls: failed to find any PEM data in key input");

    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(first.der);
    } catch (error) {
      throw new Error(`could not load CA: x509: malformed certificate (${(error as Error).message})`);
    }
    let key: KeyObject;
    try {
      // Only the block's text goes in, and only our own message comes out: key material never
      // reaches an error.
      key = createPrivateKey(keyBlock.text);
    } catch {
      throw new Error("could not load CA: tls: failed to parse private key");
    }
    if (!certificate.checkPrivateKey(key)) {
      throw new Error("could not load CA: tls: private key does not match public key");
    }
    if (certBlocks.length !== 1) {
      throw new InvalidCACertificateError(
        `expected a single certificate, found ${certBlocks.length} certificates`,
      );
    }
    if (!parseTBS(certificate.raw).isCA)
      throw new InvalidCACertificateError("passed in key pair is not a CA");
    try {
      return new CertificateAuthority(certificate, key);
    } catch (error) {
      throw new Error(`could not load CA: ${(error as Error).message}`);
    }
  }

  /**
   * Upstream's certauthority.New: a fresh ECDSA P-256 CA, self-signed, valid from 5 minutes ago
   * for `ttlMs`, KeyUsage digitalSignature+certSign, ExtKeyUsage clientAuth+serverAuth, and a
   * SubjectKeyId. privateKeyPEM() then gives the `EC PRIVATE KEY` the serving-cert Secret stores.
   */
  static async create(
    commonName: string,
    ttlMs: number,
    env: CertEnv = defaultCertEnv,
  ): Promise<CertificateAuthority> {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const spki = publicKey.export({ type: "spki", format: "der" });
    const subject = encodeName(commonName, []);
    const now = env.now();
    const der = await createCertificate(
      {
        serial: randomSerial(env),
        issuer: subject,
        subject,
        notBeforeMs: now - certBackdateMs,
        notAfterMs: now + ttlMs,
        subjectPublicKeyInfo: spki,
        extensions: [
          keyUsageDigitalSignatureCertSign(),
          extKeyUsage(["clientAuth", "serverAuth"]),
          basicConstraints(true),
          subjectKeyId(keyIdOf(spki)),
        ],
      },
      privateKey,
      signatureSchemeFor(privateKey),
    );
    return new CertificateAuthority(new X509Certificate(der), privateKey);
  }

  /** The signing key, for issue.ts. Not for export: use privateKeyPEM() for persistence. */
  signingKey(): KeyObject {
    return this.#key;
  }

  /** The key as PEM: SEC1 `EC PRIVATE KEY` for EC keys (as upstream writes its CA key), else PKCS#8. */
  privateKeyPEM(): string {
    const type = this.#key.asymmetricKeyType === "ec" ? "sec1" : "pkcs8";
    return this.#key.export({ type, format: "pem" }).toString();
  }

  toJSON(): { subject: string; validTo: string } {
    return { subject: this.certificate.subject, validTo: this.certificate.validTo };
  }
}

/**
 * A SubjectKeyId derived from the public key: the first 160 bits of the SHA-256 of the
 * subjectPublicKey bits (RFC 7093 method 1), which Go's CreateCertificate uses since Go 1.25.
 */
export function keyIdOf(spki: Buffer): Buffer {
  const [, publicKeyBits] = children(readElement(spki));
  if (!publicKeyBits) throw new Error("malformed SubjectPublicKeyInfo");
  return createHash("sha256").update(publicKeyBits.content.subarray(1)).digest().subarray(0, 20);
}

interface PEMBlock {
  type: string;
  text: string;
  der: Buffer;
}

function pemBlocks(pem: string): PEMBlock[] {
  const blocks: PEMBlock[] = [];
  for (const match of pem.matchAll(/-----BEGIN ([^-\r\n]+)-----\r?\n([\s\S]*?)-----END \1-----/g)) {
    const [text, type = "", body = ""] = match;
    blocks.push({ type, text, der: Buffer.from(body.replace(/\s+/g, ""), "base64") });
  }
  return blocks;
}

interface TBSParts {
  subject: Buffer;
  subjectKeyId: Buffer | undefined;
  isCA: boolean;
}

/** The few TBSCertificate parts a CA needs that Node's X509Certificate does not expose raw. */
function parseTBS(certDER: Buffer): TBSParts {
  const [tbs] = children(readElement(certDER));
  if (!tbs) throw new Error("x509: malformed certificate");
  const fields = children(tbs);
  const skipVersion = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[skipVersion + 4];
  if (!subject) throw new Error("x509: malformed certificate");
  const parts: TBSParts = { subject: Buffer.from(subject.raw), subjectKeyId: undefined, isCA: false };
  const extensionsWrapper = fields.find((field) => field.tag === 0xa3);
  const [extensions] = extensionsWrapper ? children(extensionsWrapper) : [];
  for (const ext of extensions ? children(extensions) : []) {
    const [id, ...rest] = children(ext);
    const value = rest.at(-1);
    if (!id || !value) continue;
    const inner = readElement(value.content);
    switch (decodeObjectIdentifier(id.content)) {
      case "2.5.29.14":
        parts.subjectKeyId = Buffer.from(inner.content);
        break;
      case "2.5.29.19":
        parts.isCA = isCATrue(children(inner)[0]);
        break;
    }
  }
  return parts;
}

function isCATrue(first: Element | undefined): boolean {
  return first?.tag === 0x01 && first.content[0] !== 0;
}
