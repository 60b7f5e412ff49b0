import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { scopesForClaimMappings } from "./claim-scopes.ts";

describe("scopesForClaimMappings", () => {
  it("needs nothing beyond the defaults for upstream's default claims", () => {
    assert.deepEqual(scopesForClaimMappings("a", {}), []);
    assert.deepEqual(scopesForClaimMappings("a", { claims: { username: "sub" } }), []);
  });

  it("maps standard claims to their scopes, once each, naming the first field that reads them", () => {
    assert.deepEqual(
      scopesForClaimMappings("corp", {
        claims: {
          usernameExpression: 'claims["preferred_username"] + "@corp"',
          groups: "groups",
          extra: [{ key: "corp.example.com/phone", valueExpression: "claims.phone_number" }],
        },
        claimValidationRules: [{ claim: "email_verified" }, { expression: "claims.email.endsWith('@corp')" }],
      }),
      [
        {
          scope: "profile",
          because:
            "JWTAuthenticator corp reads the preferred_username claim (spec.claims.usernameExpression)",
        },
        { scope: "groups", because: "JWTAuthenticator corp reads the groups claim (spec.claims.groups)" },
        {
          scope: "phone",
          because:
            "JWTAuthenticator corp reads the phone_number claim (spec.claims.extra corp.example.com/phone)",
        },
        {
          scope: "email",
          because: "JWTAuthenticator corp reads the email_verified claim (spec.claimValidationRules)",
        },
      ],
    );
  });

  it("ignores claims no scope releases and names that only look like claims", () => {
    assert.deepEqual(
      scopesForClaimMappings("a", { claims: { usernameExpression: "myclaims.email + claims.sub" } }),
      [],
    );
  });
});
