// PKCS#10 certificate signing requests (RFC 2986) for the CertificateSigningRequest API strategy:
// a fresh key and a request whose subject is the user (CN = username, O = groups, as the client
// certificates issue.ts writes), which kube-controller-manager's kube-apiserver-client signer
// copies into the certificate. Built on der.ts and x509.ts for the same reason issue.ts is.
import { createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import {
  bitString,
  children,
  decodeObjectIdentifier,
  readElement,
  sequence,
  smallInteger,
  tlv,
} from "../kube/der.ts";
import type { ClientIdentity } from "./issue.ts";
import { encodeName, signatureSchemeFor, toPEM } from "./x509.ts";

export interface SigningRequest {
  /** `CERTIFICATE REQUEST` PEM. */
  csrPEM: string;
  /** The request's fresh ECDSA P-256 key, PKCS#8 PEM. Never log it. */
  keyPEM: string;
}

/** A request for `identity` signed with a fresh P-256 key (signing runs off the main thread). */
export async function createSigningRequest(identity: ClientIdentity): Promise<SigningRequest> {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const der = await signingRequestDER(
    identity,
    privateKey,
    publicKey.export({ type: "spki", format: "der" }),
  );
  return {
    csrPEM: toPEM("CERTIFICATE REQUEST", der),
    keyPEM: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

async function signingRequestDER(identity: ClientIdentity, key: KeyObject, spki: Buffer): Promise<Buffer> {
  const scheme = signatureSchemeFor(key);
  const info = sequence(
    smallInteger(0),
    encodeName(identity.username, identity.groups, identity.organizationalUnits),
    spki,
    // attributes [0] IMPLICIT SET OF Attribute: none.
    tlv(0xa0),
  );
  const signature = await new Promise<Buffer>((resolve, reject) => {
    sign(scheme.hash, info, key, (error, result) => (error ? reject(error) : resolve(result)));
  });
  return sequence(info, scheme.algorithmIdentifier, bitString(signature));
}

/** Signature algorithms a request may be signed with, by OID: the hash crypto.verify takes. */
const signatureHashes: Record<string, string | null> = {
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.3.101.112": null,
};

/** The smallest RSA modulus accepted for a key the client holds. */
export const minRSABits = 2048;

/**
 * The public key of a client's certificate signing request, once its self-signature proves the
 * client holds the private key. Accepts ECDSA P-256 and P-384, Ed25519 and RSA of at least 2048
 * bits; throws with a message for the client otherwise. Only the key is used: the certificate's
 * subject is the authenticated user, never what the request says.
 */
export function signingRequestPublicKey(pem: string): Buffer {
  const known = accepted.get(pem);
  if (known) return known;
  const spki = checkedPublicKey(pem);
  accepted.set(pem, spki);
  if (accepted.size > maxAccepted) accepted.delete(accepted.keys().next().value!);
  return spki;
}

// A TokenCredentialRequest's CSR is checked by the handler, to answer a bad one with its error,
// and read again by the issuer that signs it: accepted requests are remembered by their exact
// text, so the signature (an ECDSA verification costs more than the signature the CA then makes)
// is verified once. Only what passed every check is kept, and a few in flight at a time suffice.
const accepted = new Map<string, Buffer>();
const maxAccepted = 64;

function checkedPublicKey(pem: string): Buffer {
  const match =
    /-----BEGIN CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE REQUEST-----/.exec(pem);
  if (!match) throw new Error("not a PEM CERTIFICATE REQUEST");
  let info: Buffer;
  let algorithm: string;
  let signature: Buffer;
  let spki: Buffer;
  try {
    const request = readElement(Buffer.from((match[1] ?? "").replace(/\s+/g, ""), "base64"));
    const [infoElement, algorithmElement, signatureElement] = children(request);
    if (!infoElement || !algorithmElement || !signatureElement) throw new Error("missing parts");
    info = infoElement.raw;
    const [oid] = children(algorithmElement);
    algorithm = decodeObjectIdentifier(oid?.content ?? Buffer.alloc(0));
    // A BIT STRING's first content byte counts unused bits, always 0 for a signature.
    signature = signatureElement.content.subarray(1);
    const spkiElement = children(infoElement)[2];
    if (!spkiElement) throw new Error("missing subjectPKInfo");
    spki = spkiElement.raw;
  } catch (error) {
    throw new Error(`malformed certificate request: ${(error as Error).message}`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: "der", type: "spki" });
  } catch {
    throw new Error("the certificate request's public key cannot be read");
  }
  const problem = unacceptableKey(key);
  if (problem) throw new Error(problem);
  const hash = signatureHashes[algorithm];
  if (hash === undefined) throw new Error(`unsupported signature algorithm ${algorithm}`);
  if (!verify(hash, info, key, signature)) {
    throw new Error(
      "the certificate request's signature does not verify: it must be signed with its own key",
    );
  }
  return spki;
}

function unacceptableKey(key: KeyObject): string | undefined {
  const details = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case "ec":
      return details?.namedCurve === "prime256v1" || details?.namedCurve === "secp384r1"
        ? undefined
        : `unsupported EC curve ${details?.namedCurve ?? "(unnamed)"}: use P-256 or P-384`;
    case "ed25519":
      return undefined;
    case "rsa":
      return (details?.modulusLength ?? 0) >= minRSABits
        ? undefined
        : `RSA keys must have at least ${minRSABits} bits, not ${details?.modulusLength}`;
    default:
      return `unsupported key type ${key.asymmetricKeyType}: use ECDSA P-256 or P-384, Ed25519 or RSA`;
  }
}
