// PKCE (RFC 7636, S256 only) and the random state and nonce of an authorization request.
import { createHash, randomBytes } from "node:crypto";

/** 32 random bytes, base64url: unguessable, and valid as a PKCE verifier, state or nonce. */
export function randomValue(): string {
  return randomBytes(32).toString("base64url");
}

export interface PKCE {
  verifier: string;
  challenge: string;
  method: "S256";
}

export function newPKCE(): PKCE {
  const verifier = randomValue();
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url"), method: "S256" };
}
