// OIDC discovery: the issuer's /.well-known/openid-configuration, checked the way upstream's
// go-oidc does (the document must name the same issuer) and requiring https endpoints.
import { httpsRequest } from "./http.ts";

export interface ProviderMetadata {
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string | undefined;
  jwksURI: string;
  /** Set when the issuer is a Pinniped Supervisor that lists its identity providers. */
  pinnipedIDPsEndpoint: string | undefined;
}

export class DiscoveryError extends Error {}

export function requireHTTPS(uri: string, what: string): void {
  let parsed: URL;
  try {
    parsed = new URL(uri);
  } catch {
    throw new DiscoveryError(`${what} is not a valid URL: "${uri}"`);
  }
  if (parsed.protocol !== "https:")
    throw new DiscoveryError(
      `${what} must be an https URL, but had scheme "${parsed.protocol.slice(0, -1)}" instead`,
    );
}

export async function discover(issuer: string, ca: string[] | undefined): Promise<ProviderMetadata> {
  requireHTTPS(issuer, "issuer");
  const fail = (why: string) =>
    new DiscoveryError(`could not perform OIDC discovery for "${issuer}": ${why}`);
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  let doc: Record<string, unknown>;
  try {
    const res = await httpsRequest(url, { ca });
    if (res.status !== 200) throw new Error(`HTTP ${res.status} from ${url}`);
    doc = JSON.parse(res.text) as Record<string, unknown>;
  } catch (err) {
    throw fail((err as Error).message);
  }
  if (doc.issuer !== issuer)
    throw fail(
      `oidc: issuer did not match the issuer returned by provider, expected "${issuer}" got "${String(doc.issuer)}"`,
    );
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const authorizationEndpoint = str(doc.authorization_endpoint);
  const jwksURI = str(doc.jwks_uri);
  if (!authorizationEndpoint || !jwksURI)
    throw fail("the discovery document lacks authorization_endpoint or jwks_uri");
  const tokenEndpoint = str(doc.token_endpoint);
  requireHTTPS(authorizationEndpoint, "discovered authorize URL from issuer");
  if (tokenEndpoint) requireHTTPS(tokenEndpoint, "discovered token URL from issuer");
  const supervisor = doc["discovery.supervisor.pinniped.dev/v1alpha1"] as
    | { pinniped_identity_providers_endpoint?: unknown }
    | undefined;
  return {
    issuer,
    authorizationEndpoint,
    tokenEndpoint,
    jwksURI,
    pinnipedIDPsEndpoint: str(supervisor?.pinniped_identity_providers_endpoint),
  };
}
