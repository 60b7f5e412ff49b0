import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { JWTCredentialIssuer } from "../controllers/jwtcredential/issuer.ts";
import { generateStoredKey, loadKeys } from "../controllers/jwtcredential/keys.ts";
import type { IncomingRequest, OutgoingResponse } from "./aggregated.ts";
import { jwtIssuerRoutes } from "./jwtissuer.ts";

/** Calls a route with a stand-in request and response; returns what it answered. */
function call(route: ((req: IncomingRequest, res: OutgoingResponse) => void) | undefined, method = "GET") {
  assert.ok(route, "no such route");
  const answer: { code?: number; headers?: Record<string, string>; body?: string } = {};
  const res = {
    writeHead(code: number, headers: Record<string, string>) {
      answer.code = code;
      answer.headers = headers;
      return res;
    },
    end(body: string) {
      answer.body = body;
    },
  };
  route({ method } as IncomingRequest, res as unknown as ServerResponse);
  return answer;
}

describe("the JWT issuer's discovery and JWKS routes", () => {
  it("serve discovery at the issuer URL's path, and the published public keys at its jwks_uri", () => {
    const issuer = new JWTCredentialIssuer({
      issuer: "https://concierge.example.com:8443/jwt/",
      audience: "a",
    });
    const routes = jwtIssuerRoutes(issuer);
    assert.deepEqual([...routes.keys()], ["/jwt/.well-known/openid-configuration", "/jwt/jwks.json"]);
    const discovery = call(routes.get("/jwt/.well-known/openid-configuration"));
    assert.equal(discovery.code, 200);
    const doc = JSON.parse(discovery.body!);
    assert.equal(doc.issuer, "https://concierge.example.com:8443/jwt/");
    assert.equal(doc.jwks_uri, "https://concierge.example.com:8443/jwt/jwks.json");
    assert.deepEqual(doc.id_token_signing_alg_values_supported, ["ES256"]);

    // No key yet: nothing a client could cache as "no keys".
    assert.equal(call(routes.get("/jwt/jwks.json")).code, 503);
    const a = generateStoredKey(0);
    const b = generateStoredKey(1);
    issuer.keys.set(loadKeys([a, b], a.kid));
    const jwks = call(routes.get("/jwt/jwks.json"));
    assert.equal(jwks.code, 200);
    const keys = JSON.parse(jwks.body!).keys as Record<string, string>[];
    assert.deepEqual(
      keys.map((k) => k.kid),
      [a.kid, b.kid],
    );
    assert.ok(
      keys.every((k) => k.d === undefined),
      "never a private member",
    );
    assert.equal(call(routes.get("/jwt/jwks.json"), "POST").code, 405);
  });

  it("serves at the root for an issuer URL without a path", () => {
    const routes = jwtIssuerRoutes(
      new JWTCredentialIssuer({ issuer: "https://127.0.0.1:1234", audience: "a" }),
    );
    assert.deepEqual([...routes.keys()], ["/.well-known/openid-configuration", "/jwks.json"]);
  });
});
