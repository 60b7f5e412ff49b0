// The JWTCredential strategy's OIDC discovery document and JWKS, served on the aggregated API's
// HTTPS listener at the path of the configured issuer URL, without authentication: kube-apiserver
// (or whatever fronts this listener at the issuer URL) fetches them anonymously. Both read the
// issuer's key holder only.
import type { ServerResponse } from "node:http";
import type { JWTCredentialIssuer } from "../controllers/jwtcredential/issuer.ts";
import type { IncomingRequest, OutgoingResponse } from "./aggregated.ts";

export const discoverySuffix = "/.well-known/openid-configuration";
export const jwksSuffix = "/jwks.json";

/** The issuer URL's path without a trailing slash, as OIDC discovery appends to it. */
function basePath(issuer: string): string {
  return new URL(issuer).pathname.replace(/\/+$/, "");
}

export function discoveryDocument(issuer: string): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `${issuer.replace(/\/+$/, "")}${jwksSuffix}`,
    response_types_supported: ["id_token"],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: ["ES256"],
    claims_supported: ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "username", "groups", "uid", "extra"],
  };
}

/** Routes for the aggregated API listener's `extraRoutes`: path → handler. */
export function jwtIssuerRoutes(
  issuer: Pick<JWTCredentialIssuer, "issuer" | "keys">,
): Map<string, (req: IncomingRequest, res: OutgoingResponse) => void> {
  const base = basePath(issuer.issuer);
  const discovery = JSON.stringify(discoveryDocument(issuer.issuer));
  const json = (req: IncomingRequest, response: OutgoingResponse, body: () => string | undefined) => {
    // Only what HTTP/1.1 and HTTP/2 compatibility responses share is used.
    const res = response as ServerResponse;
    const headers = { "content-type": "application/json", "cache-control": "public, max-age=60" };
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" });
      res.end("method not allowed\n");
      return;
    }
    const text = body();
    if (text === undefined) {
      // No key yet: a client must not cache an empty key set.
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      res.end("no signing key is loaded yet\n");
      return;
    }
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? "" : text);
  };
  return new Map([
    [`${base}${discoverySuffix}`, (req, res) => json(req, res, () => discovery)],
    [
      `${base}${jwksSuffix}`,
      (req, res) =>
        json(req, res, () => {
          const keys = issuer.keys.get();
          return keys ? JSON.stringify({ keys: keys.jwks }) : undefined;
        }),
    ],
  ]);
}
