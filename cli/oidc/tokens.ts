// The token endpoint through openid-client: authorization code with PKCE, refresh, and RFC 8693
// token exchange. openid-client checks each ID token (signature against the issuer's JWKS, iss,
// aud, exp, and the nonce of a fresh login). Error messages name the provider's error code,
// never a token or code.
import * as oidc from "openid-client";
import { describe, type ProviderMetadata } from "./discovery.ts";
import { httpsRequest } from "./http.ts";

export interface TokenSet {
  accessToken: string | undefined;
  /** When the access token expires, if the provider said. */
  accessTokenExpiry: Date | undefined;
  refreshToken: string | undefined;
  idToken: string | undefined;
  /** The ID token's expiry, from its checked claims. */
  idTokenExpiry: Date | undefined;
}

export class TokenError extends Error {}

function tokenSet(res: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers): TokenSet {
  const expiresIn = res.expiresIn();
  const exp = res.claims()?.exp;
  return {
    accessToken: res.access_token || undefined,
    accessTokenExpiry: expiresIn === undefined ? undefined : new Date(Date.now() + expiresIn * 1000),
    refreshToken: res.refresh_token || undefined,
    idToken: res.id_token || undefined,
    idTokenExpiry: exp === undefined ? undefined : new Date(exp * 1000),
  };
}

/**
 * Redeems the code of `callback` (the parameters the provider sent the browser back with, at
 * `redirectURI`), checking state, issuer, PKCE and the ID token's nonce.
 */
export async function redeemCode(
  metadata: ProviderMetadata,
  params: { callback: URLSearchParams; redirectURI: string; state: string; nonce: string; verifier: string },
): Promise<TokenSet> {
  const url = new URL(params.redirectURI);
  for (const [k, v] of params.callback) url.searchParams.set(k, v);
  try {
    return tokenSet(
      await oidc.authorizationCodeGrant(metadata.config, url, {
        pkceCodeVerifier: params.verifier,
        expectedState: params.state,
        expectedNonce: params.nonce,
        idTokenExpected: true,
      }),
    );
  } catch (err) {
    throw new TokenError(describe(err));
  }
}

export async function refresh(metadata: ProviderMetadata, refreshToken: string): Promise<TokenSet> {
  try {
    return tokenSet(await oidc.refreshTokenGrant(metadata.config, refreshToken));
  } catch (err) {
    throw new TokenError(describe(err));
  }
}

/** RFC 8693: trades the access token for a JWT whose audience is `audience`. */
export async function exchangeForAudience(
  metadata: ProviderMetadata,
  params: { accessToken: string; audience: string },
): Promise<string> {
  let res: oidc.TokenEndpointResponse;
  try {
    res = await oidc.genericGrantRequest(metadata.config, "urn:ietf:params:oauth:grant-type:token-exchange", {
      audience: params.audience,
      subject_token: params.accessToken,
      subject_token_type: "urn:ietf:params:oauth:token-type:access_token",
      requested_token_type: "urn:ietf:params:oauth:token-type:jwt",
    });
  } catch (err) {
    throw new TokenError(describe(err));
  }
  if (res.token_type !== "n_a") throw new TokenError(`got unexpected token_type "${res.token_type}"`);
  if (res.issued_token_type !== "urn:ietf:params:oauth:token-type:jwt")
    throw new TokenError(`got unexpected issued_token_type "${String(res.issued_token_type)}"`);
  return res.access_token;
}

/**
 * The JWT an RFC 8693 exchange returned, checked against the issuer's JWKS for `audience`, as
 * upstream checks it; its expiry. (openid-client checks ID tokens, not exchanged tokens.)
 */
export async function verifyExchangedToken(
  metadata: ProviderMetadata,
  token: string,
  audience: string,
): Promise<Date> {
  const { createLocalJWKSet, jwtVerify } = await import("jose");
  const res = await httpsRequest(metadata.jwksURI, { ca: metadata.ca });
  if (res.status !== 200) throw new TokenError(`could not fetch the issuer's JWKS: HTTP ${res.status}`);
  let keys: ReturnType<typeof createLocalJWKSet>;
  try {
    keys = createLocalJWKSet(JSON.parse(res.text));
  } catch (err) {
    throw new TokenError(`the issuer's JWKS is invalid: ${(err as Error).message}`);
  }
  try {
    const { payload } = await jwtVerify(token, keys, {
      issuer: metadata.issuer,
      audience,
      requiredClaims: ["exp"],
    });
    return new Date((payload.exp ?? 0) * 1000);
  } catch (err) {
    throw new TokenError(`received invalid ID token: ${(err as Error).message}`);
  }
}
