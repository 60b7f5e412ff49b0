// The JWTCredential strategy's key material: ES256 (ECDSA P-256, SHA-256) signing keys, their
// public JWKs named by their RFC 7638 thumbprint, and compact JWS signing. node:crypto only.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from "node:crypto";
import type { StoredKey } from "./decide.ts";

export interface PublicJWK {
  kty: "EC";
  crv: "P-256";
  x: string;
  y: string;
  kid: string;
  use: "sig";
  alg: "ES256";
}

/** What the issuer signs with and what the JWKS publishes; the holder's value. */
export interface LoadedKeys {
  signing: { kid: string; key: KeyObject };
  /** Every published key, the signing one included. */
  jwks: PublicJWK[];
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

function ecPoint(publicKey: KeyObject): { x: string; y: string } {
  const jwk = publicKey.export({ format: "jwk" });
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.x || !jwk.y) throw new Error("not an ECDSA P-256 key");
  return { x: jwk.x, y: jwk.y };
}

/** RFC 7638: the SHA-256 of the key's required members in lexicographic order. */
export function thumbprint(publicKey: KeyObject): string {
  const { x, y } = ecPoint(publicKey);
  return b64url(
    createHash("sha256")
      .update(JSON.stringify({ crv: "P-256", kty: "EC", x, y }))
      .digest(),
  );
}

export function publicJWK(privateKeyPEM: string): PublicJWK {
  const publicKey = createPublicKey(createPrivateKey(privateKeyPEM));
  return {
    kty: "EC",
    crv: "P-256",
    ...ecPoint(publicKey),
    kid: thumbprint(publicKey),
    use: "sig",
    alg: "ES256",
  };
}

/** A new key, made at `nowMs`. */
export function generateStoredKey(nowMs: number): StoredKey {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    kid: thumbprint(publicKey),
    createdAtMs: nowMs,
    privateKeyPEM: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
  };
}

/** The holder's value for the published keys and the signing one; throws on a key that does not load. */
export function loadKeys(stored: readonly StoredKey[], signingKid: string): LoadedKeys {
  const signing = stored.find((k) => k.kid === signingKid);
  if (!signing) throw new Error(`no key ${signingKid}`);
  const jwks = stored.map((k) => {
    const jwk = publicJWK(k.privateKeyPEM);
    // The kid is the key's thumbprint: a stored kid that is not says the entry was edited.
    if (jwk.kid !== k.kid) throw new Error(`key ${k.kid} does not match its kid`);
    return jwk;
  });
  return { signing: { kid: signing.kid, key: createPrivateKey(signing.privateKeyPEM) }, jwks };
}

/** A compact JWS (RFC 7515) of `claims`, signed ES256 with the holder's signing key. */
export function signJWT(keys: LoadedKeys, claims: Record<string, unknown>): string {
  const header = b64url(JSON.stringify({ alg: "ES256", kid: keys.signing.kid, typ: "JWT" }));
  const payload = b64url(JSON.stringify(claims));
  const input = `${header}.${payload}`;
  // JWS wants r||s (IEEE P1363), not DER.
  const signature = sign("sha256", Buffer.from(input), { key: keys.signing.key, dsaEncoding: "ieee-p1363" });
  return `${input}.${b64url(signature)}`;
}
