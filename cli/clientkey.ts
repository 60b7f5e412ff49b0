// Client-held keys: the key of the certificate kubectl presents is made here and never leaves
// this machine. The TokenCredentialRequest carries a PKCS#10 request (RFC 2986) for it in
// `spec.certificateSigningRequest`; the Concierge checks its self-signature, signs its public key
// for the user it authenticated and answers the certificate alone. The key is kept with the
// certificate in the 0600 credential cache, as a key the Concierge made would be.
//
// Imported only when a login misses the cache. It stays in the entry bundle (about 2 kB, run
// only then): the on-demand bundle is 4 MB of Kubernetes and OIDC client that a static login
// never needed, and compiling it would cost more than the key.
import { createPrivateKey, generateKeyPairSync, sign, X509Certificate } from "node:crypto";
import { bitString, objectIdentifier, sequence, smallInteger, tlv } from "../kube/der.ts";

export interface ClientKey {
  /** The private key, PKCS#8 PEM: what kubectl's client-key-data takes. Never log it. */
  keyPEM: string;
  /** `CERTIFICATE REQUEST` PEM: public, sent to the Concierge. */
  csrPEM: string;
}

const ecdsaWithSHA256 = "1.2.840.10045.4.3.2";

/**
 * A fresh ECDSA P-256 key and a request signed with it. The subject is empty: the Concierge
 * takes only the key from the request and names the user it authenticated.
 */
export function newClientKey(): ClientKey {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const info = sequence(
    smallInteger(0), // version 1
    sequence(), // subject: the empty Name
    publicKey.export({ type: "spki", format: "der" }),
    tlv(0xa0), // attributes [0]: none
  );
  const request = sequence(
    info,
    sequence(objectIdentifier(ecdsaWithSHA256)),
    bitString(sign("sha256", info, privateKey)),
  );
  return {
    keyPEM: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    csrPEM: pem("CERTIFICATE REQUEST", request),
  };
}

/** Whether the first certificate of `certificatePEM` is for the key `keyPEM`. */
export function certifiesKey(certificatePEM: string, keyPEM: string): boolean {
  try {
    return new X509Certificate(certificatePEM).checkPrivateKey(createPrivateKey(keyPEM));
  } catch {
    return false;
  }
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
