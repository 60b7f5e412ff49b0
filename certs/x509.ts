// X.509 v3 certificate building blocks over der.ts, encoding every field the way Go's
// crypto/x509.CreateCertificate does for the templates upstream uses (internal/certauthority),
// so a certificate from here reads the same as one from the Go Concierge.
import { type KeyObject, sign } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import {
  bitString,
  boolean,
  explicit,
  implicitPrimitive,
  nullValue,
  objectIdentifier,
  octetString,
  printableString,
  sequence,
  setOf,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from "../kube/der.ts";

/** The OBJECT IDENTIFIERs used, encoded once: issuance is a hot path. */
const oid = {
  commonName: objectIdentifier("2.5.4.3"),
  organization: objectIdentifier("2.5.4.10"),
  organizationalUnit: objectIdentifier("2.5.4.11"),
  keyUsage: objectIdentifier("2.5.29.15"),
  extKeyUsage: objectIdentifier("2.5.29.37"),
  basicConstraints: objectIdentifier("2.5.29.19"),
  subjectKeyId: objectIdentifier("2.5.29.14"),
  authorityKeyId: objectIdentifier("2.5.29.35"),
  subjectAltName: objectIdentifier("2.5.29.17"),
  clientAuth: objectIdentifier("1.3.6.1.5.5.7.3.2"),
  serverAuth: objectIdentifier("1.3.6.1.5.5.7.3.1"),
};

export type ExtKeyUsage = "clientAuth" | "serverAuth";

/** How a CA key signs: Go's choice for the key type (x509.signingParamsForKey). */
export interface SignatureScheme {
  /** The AlgorithmIdentifier written into the certificate, twice. */
  algorithmIdentifier: Buffer;
  /** The digest for crypto.sign; null for Ed25519, which hashes internally. */
  hash: string | null;
}

const rsaSHA256: SignatureScheme = {
  algorithmIdentifier: sequence(objectIdentifier("1.2.840.113549.1.1.11"), nullValue),
  hash: "sha256",
};
const ecdsa = (algorithm: string, hash: string): SignatureScheme => ({
  algorithmIdentifier: sequence(objectIdentifier(algorithm)),
  hash,
});
const ecdsaByCurve: Record<string, SignatureScheme> = {
  secp224r1: ecdsa("1.2.840.10045.4.3.2", "sha256"),
  prime256v1: ecdsa("1.2.840.10045.4.3.2", "sha256"),
  secp384r1: ecdsa("1.2.840.10045.4.3.3", "sha384"),
  secp521r1: ecdsa("1.2.840.10045.4.3.4", "sha512"),
};
const ed25519: SignatureScheme = {
  algorithmIdentifier: sequence(objectIdentifier("1.3.101.112")),
  hash: null,
};

/** Throws for key types Go's x509 cannot sign certificates with (and RSA-PSS, which it cannot load). */
export function signatureSchemeFor(key: KeyObject): SignatureScheme {
  switch (key.asymmetricKeyType) {
    case "rsa":
      return rsaSHA256;
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? "";
      const scheme = ecdsaByCurve[curve];
      if (!scheme) throw new Error(`unsupported CA key: EC curve ${curve || "(unnamed)"}`);
      return scheme;
    }
    case "ed25519":
      return ed25519;
    default:
      throw new Error(`unsupported CA key type ${key.asymmetricKeyType ?? "(unknown)"}`);
  }
}

/**
 * Go's encoding/asn1 writes a string as PrintableString when every character is in that set
 * (without its '*' and '&' leniency), else as UTF8String.
 */
function directoryString(value: string): Buffer {
  return /^[A-Za-z0-9'()+,\-./:=? ]*$/.test(value) ? printableString(value) : utf8String(value);
}

/** One RDN holding every value of one attribute: the shape of Go's pkix.Name.ToRDNSequence. */
function rdn(type: Buffer, values: readonly string[]): Buffer {
  return setOf(values.map((value) => sequence(type, directoryString(value))));
}

/**
 * The subject Name as Go writes pkix.Name{CommonName, Organization, OrganizationalUnit}: all O
 * values in one multi-valued RDN (so in DER set order, not the order given), then all OU values
 * likewise, then the CN if it is not empty. No values at all gives the empty Name.
 */
export function encodeName(
  commonName: string,
  organizations: readonly string[],
  organizationalUnits: readonly string[] = [],
): Buffer {
  const rdns: Buffer[] = [];
  if (organizations.length > 0) rdns.push(rdn(oid.organization, organizations));
  if (organizationalUnits.length > 0) rdns.push(rdn(oid.organizationalUnit, organizationalUnits));
  if (commonName !== "") rdns.push(rdn(oid.commonName, [commonName]));
  return sequence(...rdns);
}

function extension(id: Buffer, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(id, boolean(true), octetString(value)) : sequence(id, octetString(value));
}

/** KeyUsage digitalSignature | keyCertSign, the only combination upstream writes (on its CAs). */
export function keyUsageDigitalSignatureCertSign(): Buffer {
  // Bits 0 and 5 from the left, trailing zero bits trimmed as Go's asn1BitLength does.
  return extension(oid.keyUsage, true, bitString(Buffer.of(0x84), 2));
}

export function extKeyUsage(usages: readonly ExtKeyUsage[]): Buffer {
  return extension(oid.extKeyUsage, false, sequence(...usages.map((usage) => oid[usage])));
}

/** Critical; cA is DEFAULT FALSE, so a leaf's value is the empty SEQUENCE. No path length. */
export function basicConstraints(isCA: boolean): Buffer {
  return extension(oid.basicConstraints, true, isCA ? sequence(boolean(true)) : sequence());
}

export function subjectKeyId(id: Uint8Array): Buffer {
  return extension(oid.subjectKeyId, false, octetString(id));
}

/** Only the keyIdentifier field, copied from the issuer's SubjectKeyId as Go does. */
export function authorityKeyId(id: Uint8Array): Buffer {
  return extension(oid.authorityKeyId, false, sequence(implicitPrimitive(0, id)));
}

/**
 * DNS names then IP addresses, as Go orders them. Critical when the subject is empty
 * (RFC 5280 4.2.1.6), which is the case for upstream's serving certificates.
 */
export function subjectAltName(
  dnsNames: readonly string[],
  ips: readonly string[],
  subjectEmpty: boolean,
): Buffer {
  const names = [
    ...dnsNames.map((name) => {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: IA5String is exactly ASCII.
      if (!/^[\x00-\x7f]*$/.test(name)) throw new Error(`DNS name ${JSON.stringify(name)} is not ASCII`);
      return implicitPrimitive(2, Buffer.from(name, "latin1"));
    }),
    ...ips.map((ip) => implicitPrimitive(7, ipBytes(ip))),
  ];
  return extension(oid.subjectAltName, subjectEmpty, sequence(...names));
}

/** 4 bytes for IPv4 and IPv4-mapped IPv6 (Go's ip.To4()), else 16. */
export function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split(".").map(Number));
  if (!isIPv6(ip)) throw new Error(`${JSON.stringify(ip)} is not an IP address`);
  let text = ip.replace(/%.*$/, "");
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4Tail) {
    const [a = 0, b = 0, c = 0, d = 0] = v4Tail.split(".").map(Number);
    text = `${text.slice(0, -v4Tail.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = new Array<string>(8 - headGroups.length - tailGroups.length).fill("0");
  const groups = [...headGroups, ...(tail === undefined ? [] : zeros), ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => {
    bytes.writeUInt16BE(Number.parseInt(group, 16), i * 2);
  });
  const mapped = bytes.subarray(0, 12).equals(Buffer.from("00000000000000000000ffff", "hex"));
  return mapped ? Buffer.from(bytes.subarray(12)) : bytes;
}

export interface CertificateFields {
  /** Unsigned big-endian serial number. */
  serial: Uint8Array;
  /** The issuer Name, byte for byte as it appears as the subject of the issuing certificate. */
  issuer: Buffer;
  subject: Buffer;
  notBeforeMs: number;
  notAfterMs: number;
  /** The subject's SubjectPublicKeyInfo (KeyObject.export({ type: "spki", format: "der" })). */
  subjectPublicKeyInfo: Buffer;
  extensions: Buffer[];
}

/** Encodes the TBSCertificate, signs it with `key` off the main thread, and returns the certificate DER. */
export async function createCertificate(
  fields: CertificateFields,
  key: KeyObject,
  scheme: SignatureScheme,
): Promise<Buffer> {
  const tbs = sequence(
    explicit(0, smallInteger(2)),
    unsignedInteger(fields.serial),
    scheme.algorithmIdentifier,
    fields.issuer,
    sequence(time(fields.notBeforeMs), time(fields.notAfterMs)),
    fields.subject,
    fields.subjectPublicKeyInfo,
    explicit(3, sequence(...fields.extensions)),
  );
  const signature = await new Promise<Buffer>((resolve, reject) => {
    sign(scheme.hash, tbs, key, (error, result) => (error ? reject(error) : resolve(result)));
  });
  return sequence(tbs, scheme.algorithmIdentifier, bitString(signature));
}

export function toPEM(type: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join("\n")}\n-----END ${type}-----\n`;
}
