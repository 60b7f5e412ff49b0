// PKCE (RFC 7636, S256) and the random state and nonce of an authorization request, from
// openid-client.
import * as oidc from "openid-client";

export interface PKCE {
  verifier: string;
  challenge: string;
  method: "S256";
}

export const randomValue = (): string => oidc.randomState();

export async function newPKCE(): Promise<PKCE> {
  const verifier = oidc.randomPKCECodeVerifier();
  return { verifier, challenge: await oidc.calculatePKCECodeChallenge(verifier), method: "S256" };
}
