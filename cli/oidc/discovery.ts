// OIDC discovery through openid-client: the issuer's /.well-known/openid-configuration, which
// must name the same issuer, with https endpoints only. ID token signatures are checked against
// the issuer's JWKS (openid-client's non-repudiation checks), as upstream's go-oidc does.
import * as oidc from "openid-client";
import { fetchTrusting } from "./http.ts";

export interface ProviderMetadata {
  issuer: string;
  authorizationEndpoint: string;
  jwksURI: string;
  /** Set when the issuer is a Pinniped Supervisor that lists its identity providers. */
  pinnipedIDPsEndpoint: string | undefined;
  /** openid-client's view of the provider and this client, for the grants. */
  config: oidc.Configuration;
  ca: string[] | undefined;
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

export async function discover(
  issuer: string,
  clientID: string,
  ca: string[] | undefined,
): Promise<ProviderMetadata> {
  requireHTTPS(issuer, "issuer");
  let config: oidc.Configuration;
  try {
    config = await oidc.discovery(new URL(issuer), clientID, undefined, oidc.None(), {
      [oidc.customFetch]: fetchTrusting(ca),
      execute: [oidc.enableNonRepudiationChecks],
    });
  } catch (err) {
    throw new DiscoveryError(`could not perform OIDC discovery for "${issuer}": ${describe(err)}`);
  }
  const md = config.serverMetadata();
  if (!md.authorization_endpoint || !md.jwks_uri)
    throw new DiscoveryError(
      `could not perform OIDC discovery for "${issuer}": the discovery document lacks authorization_endpoint or jwks_uri`,
    );
  const supervisor = md["discovery.supervisor.pinniped.dev/v1alpha1"] as
    | { pinniped_identity_providers_endpoint?: unknown }
    | undefined;
  const idps = supervisor?.pinniped_identity_providers_endpoint;
  return {
    issuer,
    authorizationEndpoint: md.authorization_endpoint,
    jwksURI: md.jwks_uri,
    pinnipedIDPsEndpoint: typeof idps === "string" && idps !== "" ? idps : undefined,
    config,
    ca,
  };
}

/** openid-client's message, with the provider's OAuth error code and description when it sent one. */
export function describe(err: unknown): string {
  const e = err as { message?: string; error?: string; error_description?: string; cause?: unknown };
  if (typeof e.error === "string")
    return `oauth2: "${e.error}"${e.error_description ? ` "${e.error_description}"` : ""}`;
  const cause = e.cause instanceof Error ? `: ${e.cause.message}` : "";
  return `${e.message ?? String(err)}${cause}`;
}
