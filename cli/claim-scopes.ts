// Which OIDC scopes a JWTAuthenticator's claim mappings need: an issuer releases a standard claim
// only for its scope (OpenID Connect Core 5.4), so an authenticator whose username claim is
// `email` fails every login made with upstream's default scopes, which do not include `email`.

/** The claims a JWTAuthenticator reads, as `get kubeconfig` sees it. */
export interface ClaimMappingsLike {
  claims?: {
    username?: string;
    usernameExpression?: string;
    groups?: string;
    groupsExpression?: string;
    extra?: { key?: string; valueExpression?: string }[];
  };
  claimValidationRules?: { claim?: string; expression?: string }[];
}

/** A scope to request, and why, for the message that says it was added. */
export interface ScopeNeed {
  scope: string;
  because: string;
}

// OpenID Connect Core 5.4, plus `groups`, which is not standard but is how issuers that have it
// (Pinniped's Supervisor, Dex, Okta) release it.
const scopeOfClaim: Partial<Record<string, string>> = {
  email: "email",
  email_verified: "email",
  name: "profile",
  family_name: "profile",
  given_name: "profile",
  middle_name: "profile",
  nickname: "profile",
  preferred_username: "profile",
  profile: "profile",
  picture: "profile",
  website: "profile",
  gender: "profile",
  birthdate: "profile",
  zoneinfo: "profile",
  locale: "profile",
  updated_at: "profile",
  address: "address",
  phone_number: "phone",
  phone_number_verified: "phone",
  groups: "groups",
};

/** `claims.NAME` and `claims["NAME"]` in a CEL expression. */
function claimsInExpression(expression: string): string[] {
  const found: string[] = [];
  for (const m of expression.matchAll(/\bclaims(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']+)["']\s*\])/g)) {
    const claim = m[1] ?? m[2];
    if (claim) found.push(claim);
  }
  return found;
}

/** One need per scope, the first field that needs it named in `because`, in the spec's order. */
export function scopesForClaimMappings(authenticatorName: string, spec: ClaimMappingsLike): ScopeNeed[] {
  const uses: { claim: string; field: string }[] = [];
  const claims = spec.claims ?? {};
  if (claims.username) uses.push({ claim: claims.username, field: "spec.claims.username" });
  if (claims.usernameExpression) {
    for (const claim of claimsInExpression(claims.usernameExpression))
      uses.push({ claim, field: "spec.claims.usernameExpression" });
  }
  if (claims.groups) uses.push({ claim: claims.groups, field: "spec.claims.groups" });
  if (claims.groupsExpression) {
    for (const claim of claimsInExpression(claims.groupsExpression))
      uses.push({ claim, field: "spec.claims.groupsExpression" });
  }
  for (const extra of claims.extra ?? []) {
    for (const claim of claimsInExpression(extra.valueExpression ?? ""))
      uses.push({ claim, field: `spec.claims.extra ${extra.key ?? ""}` });
  }
  for (const rule of spec.claimValidationRules ?? []) {
    if (rule.claim) uses.push({ claim: rule.claim, field: "spec.claimValidationRules" });
    for (const claim of claimsInExpression(rule.expression ?? ""))
      uses.push({ claim, field: "spec.claimValidationRules" });
  }
  const needs: ScopeNeed[] = [];
  for (const { claim, field } of uses) {
    const scope = scopeOfClaim[claim];
    if (!scope || needs.some((n) => n.scope === scope)) continue;
    needs.push({
      scope,
      because: `JWTAuthenticator ${authenticatorName} reads the ${claim} claim (${field})`,
    });
  }
  return needs;
}
