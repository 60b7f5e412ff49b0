// A local OIDC issuer for tests and benchmarks: an HTTPS server with its own throwaway CA that
// serves a discovery document and a JWKS the test controls, and keys to sign tokens with.
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { startHTTPSServer } from "../../test/harness/tls.ts";

export interface SigningKey {
  alg: "RS256" | "ES256";
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The public key as the JWKS publishes it. */
  jwk: JWK;
}

export async function newSigningKey(alg: "RS256" | "ES256", kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, privateKey, publicKey, jwk };
}

/** Signs `claims` with `key`; `header` adds to or overrides the protected header (kid: undefined drops it). */
export function signToken(
  key: SigningKey,
  claims: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const protectedHeader = { alg: key.alg, kid: key.kid, typ: "JWT", ...header };
  return new SignJWT(claims).setProtectedHeader(protectedHeader).sign(key.privateKey);
}

export interface TestIssuer {
  /** The issuer URL, also the `iss` of its tokens. */
  url: string;
  jwksURL: string;
  /** The PEM of the CA that signed the server's certificate. */
  caPEM: string;
  /** JWKS requests served so far. */
  readonly jwksRequests: number;
  /** What the JWKS endpoint serves from now on. */
  setKeys(keys: readonly SigningKey[]): void;
  /** Make the JWKS endpoint answer this status and body instead (undefined restores the keys). */
  setFailure(failure: { status: number; body: string } | undefined): void;
  close(): Promise<void>;
}

export async function startTestIssuer(): Promise<TestIssuer> {
  let keys: JWK[] = [];
  let failure: { status: number; body: string } | undefined;
  let jwksRequests = 0;
  let url = "";
  const server = await startHTTPSServer((req, res) => {
    res.setHeader("content-type", "application/json");
    if (req.url === "/.well-known/openid-configuration") {
      res.end(JSON.stringify({ issuer: url, jwks_uri: `${url}/jwks` }));
    } else if (req.url === "/jwks") {
      jwksRequests++;
      res.statusCode = failure?.status ?? 200;
      res.end(failure?.body ?? JSON.stringify({ keys }));
    } else {
      res.statusCode = 404;
      res.end("{}");
    }
  });
  url = server.base;
  return {
    url,
    jwksURL: `${url}/jwks`,
    caPEM: server.caPEM,
    get jwksRequests() {
      return jwksRequests;
    },
    setKeys(signingKeys) {
      keys = signingKeys.map((k) => k.jwk);
    },
    setFailure(f) {
      failure = f;
    },
    close: server.close,
  };
}
