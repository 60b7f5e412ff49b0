// The token endpoint (authorization code, refresh and RFC 8693 token exchange grants) and ID
// token verification against the issuer's JWKS. Error messages name the grant and the
// provider's error code, never a token or code.
import { createLocalJWKSet, type JWTPayload, jwtVerify } from "jose";
import type { ProviderMetadata } from "./discovery.ts";
import { httpsRequest } from "./http.ts";

export interface TokenSet {
  accessToken: string | undefined;
  /** When the access token expires, if the provider said. */
  accessTokenExpiry: Date | undefined;
  refreshToken: string | undefined;
  idToken: string | undefined;
}

export class TokenError extends Error {}

async function postToken(
  metadata: ProviderMetadata,
  ca: string[] | undefined,
  form: Record<string, string>,
): Promise<Record<string, unknown>> {
  if (!metadata.tokenEndpoint)
    throw new TokenError(`the OIDC discovery document of "${metadata.issuer}" has no token_endpoint`);
  const res = await httpsRequest(metadata.tokenEndpoint, { ca, method: "POST", form });
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(res.text) as Record<string, unknown>;
  } catch {
    throw new TokenError(`the token endpoint answered HTTP ${res.status} with a body that is not JSON`);
  }
  if (res.status !== 200) {
    const desc = typeof body.error_description === "string" ? ` "${body.error_description}"` : "";
    throw new TokenError(`oauth2: "${String(body.error ?? `HTTP ${res.status}`)}"${desc}`);
  }
  return body;
}

function tokenSet(body: Record<string, unknown>, now: Date): TokenSet {
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const expiresIn = typeof body.expires_in === "number" ? body.expires_in : undefined;
  return {
    accessToken: str(body.access_token),
    accessTokenExpiry: expiresIn === undefined ? undefined : new Date(now.getTime() + expiresIn * 1000),
    refreshToken: str(body.refresh_token),
    idToken: str(body.id_token),
  };
}

export async function redeemCode(
  metadata: ProviderMetadata,
  ca: string[] | undefined,
  params: { clientID: string; code: string; verifier: string; redirectURI: string },
): Promise<TokenSet> {
  const body = await postToken(metadata, ca, {
    grant_type: "authorization_code",
    client_id: params.clientID,
    code: params.code,
    code_verifier: params.verifier,
    redirect_uri: params.redirectURI,
  });
  return tokenSet(body, new Date());
}

export async function refresh(
  metadata: ProviderMetadata,
  ca: string[] | undefined,
  params: { clientID: string; refreshToken: string },
): Promise<TokenSet> {
  const body = await postToken(metadata, ca, {
    grant_type: "refresh_token",
    client_id: params.clientID,
    refresh_token: params.refreshToken,
  });
  return tokenSet(body, new Date());
}

/** RFC 8693: trades the access token for a JWT whose audience is `audience`. */
export async function exchangeForAudience(
  metadata: ProviderMetadata,
  ca: string[] | undefined,
  params: { clientID: string; accessToken: string; audience: string },
): Promise<string> {
  const body = await postToken(metadata, ca, {
    client_id: params.clientID,
    grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
    audience: params.audience,
    subject_token: params.accessToken,
    subject_token_type: "urn:ietf:params:oauth:token-type:access_token",
    requested_token_type: "urn:ietf:params:oauth:token-type:jwt",
  });
  if (body.token_type !== "N_A")
    throw new TokenError(`got unexpected token_type "${String(body.token_type)}"`);
  if (body.issued_token_type !== "urn:ietf:params:oauth:token-type:jwt")
    throw new TokenError(`got unexpected issued_token_type "${String(body.issued_token_type)}"`);
  if (typeof body.access_token !== "string") throw new TokenError("the response has no access_token");
  return body.access_token;
}

export interface VerifiedIDToken {
  claims: JWTPayload;
  expiry: Date;
}

/**
 * Checks the signature against the issuer's JWKS, `iss`, that `aud` contains `audience`, `exp`,
 * and `nonce` when given (fresh logins; providers may omit it on refresh).
 */
export async function verifyIDToken(
  metadata: ProviderMetadata,
  ca: string[] | undefined,
  token: string,
  expect: { audience: string; nonce?: string },
): Promise<VerifiedIDToken> {
  const res = await httpsRequest(metadata.jwksURI, { ca });
  if (res.status !== 200) throw new TokenError(`could not fetch the issuer's JWKS: HTTP ${res.status}`);
  let keys: ReturnType<typeof createLocalJWKSet>;
  try {
    keys = createLocalJWKSet(JSON.parse(res.text));
  } catch (err) {
    throw new TokenError(`the issuer's JWKS is invalid: ${(err as Error).message}`);
  }
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(token, keys, {
      issuer: metadata.issuer,
      audience: expect.audience,
      requiredClaims: ["exp"],
    }));
  } catch (err) {
    throw new TokenError(`received invalid ID token: ${(err as Error).message}`);
  }
  if (expect.nonce !== undefined && claims.nonce !== expect.nonce)
    throw new TokenError("received invalid ID token: the nonce does not match the login request");
  return { claims, expiry: new Date((claims.exp ?? 0) * 1000) };
}
