import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { types } from "node:util";
import { type ClaimsSpecInput, compileClaims } from "../cel/claims.ts";
import { credentialIDKey, type IdentityConfig, userFromClaims } from "./identity.ts";

function config(
  spec: ClaimsSpecInput & Partial<Omit<IdentityConfig, "compiled" | "claimValidationRules">> = {},
): IdentityConfig {
  const { compiled, errors } = compileClaims(spec);
  assert.deepEqual(errors, []);
  return {
    usernameClaim: spec.usernameClaim ?? "username",
    groupsClaim: spec.groupsClaim ?? "groups",
    compiled,
    claimValidationRules: (spec.claimValidationRules ?? []).filter((r) => r.claim !== undefined),
    systemPrefixPolicy: spec.systemPrefixPolicy ?? "Reject",
  };
}

function accepted(claims: Record<string, unknown>, c: IdentityConfig) {
  const result = userFromClaims(claims, c);
  assert.ok(result.ok, result.ok ? "" : result.reason);
  return result.value;
}

function rejected(claims: Record<string, unknown>, c: IdentityConfig, kind: string, reason: RegExp): void {
  const result = userFromClaims(claims, c);
  assert.ok(!result.ok, "expected a rejection");
  assert.equal(result.kind, kind);
  assert.match(result.reason, reason);
}

describe("userFromClaims with claim names", () => {
  it("reads the username and groups claims, with no prefixes", () => {
    assert.deepEqual(accepted({ username: "jane", groups: ["a", "b"] }, config()), {
      username: "jane",
      groups: ["a", "b"],
    });
    assert.deepEqual(
      accepted({ sub: "u1", roles: "admin" }, config({ usernameClaim: "sub", groupsClaim: "roles" })),
      { username: "u1", groups: ["admin"] },
    );
  });

  it("takes groups as a string, an array, or nothing (missing or null)", () => {
    assert.deepEqual(accepted({ username: "j", groups: "solo" }, config()).groups, ["solo"]);
    assert.deepEqual(accepted({ username: "j" }, config()).groups, []);
    assert.deepEqual(accepted({ username: "j", groups: null }, config()).groups, []);
    assert.deepEqual(accepted({ username: "j", groups: ["a", "", "b"] }, config()).groups, ["a", "b"]);
    assert.deepEqual(accepted({ username: "j", groups: "" }, config()).groups, []);
  });

  it("rejects groups of any other type", () => {
    for (const groups of [1, true, { a: 1 }, ["a", 1], [null]]) {
      rejected(
        { username: "j", groups },
        config(),
        "claims",
        /groups claim "groups" is not a string or an array/,
      );
    }
  });

  it("requires a non-empty string username", () => {
    rejected({ sub: "x" }, config(), "claims", /^username claim "username" is missing$/);
    rejected({ username: 42 }, config(), "claims", /username claim "username" is not a string/);
    rejected({ username: ["a"] }, config(), "claims", /is not a string/);
    rejected({ username: "" }, config(), "claims", /is empty/);
    rejected({ toString: "x" }, config({ usernameClaim: "constructor" }), "claims", /is missing/);
  });

  it("requires email_verified to be true when present and the username claim is email", () => {
    const c = config({ usernameClaim: "email" });
    assert.equal(accepted({ email: "j@example.com" }, c).username, "j@example.com");
    assert.equal(accepted({ email: "j@example.com", email_verified: true }, c).username, "j@example.com");
    rejected({ email: "j@example.com", email_verified: false }, c, "claims", /^email not verified$/);
    rejected(
      { email: "j@example.com", email_verified: "true" },
      c,
      "claims",
      /email_verified" is not a boolean/,
    );
    rejected({ email: "j@example.com", email_verified: null }, c, "claims", /not a boolean/);
    // Only for the email claim, as in Kubernetes.
    assert.equal(accepted({ username: "j", email_verified: false }, config()).username, "j");
  });

  it("adds Kubernetes' credential-id extra from a string jti", () => {
    assert.deepEqual(accepted({ username: "j", jti: "abc" }, config()).extra, {
      [credentialIDKey]: ["JTI=abc"],
    });
    assert.equal(accepted({ username: "j", jti: 7 }, config()).extra, undefined);
    assert.equal(accepted({ username: "j", jti: "" }, config()).extra, undefined);
  });

  it("checks claim/requiredValue rules: present, a string, equal", () => {
    const c = config({
      claimValidationRules: [{ claim: "hd", requiredValue: "example.com" }, { claim: "tenant" }],
    });
    accepted({ username: "j", hd: "example.com", tenant: "" }, c);
    rejected({ username: "j", tenant: "" }, c, "claim_validation", /^required claim "hd" is missing$/);
    rejected({ username: "j", hd: 1, tenant: "" }, c, "claim_validation", /"hd" is not a string/);
    rejected(
      { username: "j", hd: "evil.com", tenant: "" },
      c,
      "claim_validation",
      /"hd" does not have the required/,
    );
    rejected(
      { username: "j", hd: "example.com", tenant: "t" },
      c,
      "claim_validation",
      /"tenant" does not have/,
    );
  });
});

describe("userFromClaims with CEL", () => {
  it("maps username, groups and extra with expressions", () => {
    const c = config({
      claims: {
        usernameExpression: '"oidc:" + claims.sub',
        groupsExpression: 'claims.roles.split(",")',
        extra: [
          { key: "example.com/tenant", valueExpression: "claims.tenant" },
          { key: "example.com/list", valueExpression: '["a", "", "b"]' },
          { key: "example.com/empty", valueExpression: '""' },
          { key: "example.com/none", valueExpression: "claims.?none.orValue([])" },
          { key: "example.com/null", valueExpression: "has(claims.none) ? claims.none : null" },
        ],
      },
    });
    assert.deepEqual(accepted({ sub: "u1", roles: "admin,,dev", tenant: "t1", jti: "x" }, c), {
      username: "oidc:u1",
      groups: ["admin", "dev"],
      extra: { [credentialIDKey]: ["JTI=x"], "example.com/tenant": ["t1"], "example.com/list": ["a", "b"] },
    });
  });

  it("ignores the claim names when expressions are set", () => {
    const c = config({
      usernameClaim: "username",
      claims: { usernameExpression: "claims.sub", groupsExpression: "claims.teams" },
    });
    assert.deepEqual(accepted({ sub: "u1", username: "ignored", groups: ["ignored"], teams: ["t"] }, c), {
      username: "u1",
      groups: ["t"],
    });
  });

  it("treats groups of '', [] and null as no groups", () => {
    // Through claims: cel-js types a bare [] or null literal too narrowly for compileClaims.
    for (const expression of ['""', "claims.?g.orValue([])", "has(claims.g) ? claims.g : null", "claims.n"]) {
      const c = config({ claims: { usernameExpression: "claims.sub", groupsExpression: expression } });
      assert.deepEqual(accepted({ sub: "u", n: null }, c).groups, [], expression);
    }
  });

  it("fails the login on a non-string, empty or failing username expression", () => {
    rejected(
      { sub: 5 },
      config({ claims: { usernameExpression: "claims.sub" } }),
      "claims",
      /^username expression must return a string$/,
    );
    rejected(
      { sub: "" },
      config({ claims: { usernameExpression: "claims.sub" } }),
      "claims",
      /username expression returned an empty string/,
    );
    rejected(
      {},
      config({ claims: { usernameExpression: "claims.sub" } }),
      "claims",
      /^username expression: evaluation failed: No such key: sub$/,
    );
  });

  it("fails the login on groups or extra of the wrong type, or that fail to evaluate", () => {
    const groups = config({ claims: { usernameExpression: "claims.sub", groupsExpression: "claims.g" } });
    rejected(
      { sub: "u", g: 1 },
      groups,
      "claims",
      /groups expression must return a string or a list of strings/,
    );
    rejected({ sub: "u", g: ["a", 1] }, groups, "claims", /must return a string or a list of strings/);
    rejected({ sub: "u", g: { a: "b" } }, groups, "claims", /must return a string or a list of strings/);
    rejected({ sub: "u" }, groups, "claims", /groups expression: evaluation failed: No such key: g/);
    const extra = config({
      claims: {
        usernameExpression: "claims.sub",
        extra: [{ key: "example.com/x", valueExpression: "claims.x" }],
      },
    });
    rejected({ sub: "u", x: true }, extra, "claims", /extra "example.com\/x" must return a string or a list/);
    rejected(
      { sub: 1 },
      config({ claims: { usernameExpression: 'claims.sub + "x"' } }),
      "claims",
      /^username expression: evaluation failed: /,
    );
  });

  it("sees integral JSON numbers as CEL ints", () => {
    const c = config({
      claimValidationRules: [{ expression: "claims.exp - claims.nbf <= 86400", message: "too long" }],
    });
    accepted({ username: "u", exp: 2000, nbf: 1000 }, c);
    rejected(
      { username: "u", exp: 100000, nbf: 1000 },
      c,
      "claim_validation",
      /^claimValidationRules\[0\]: too long$/,
    );
  });

  it("checks CEL claim validation rules after the claim/requiredValue ones, reporting the rule", () => {
    const c = config({
      claimValidationRules: [
        { claim: "hd", requiredValue: "example.com" },
        { expression: "claims.?email_verified.orValue(true) == true", message: "email must be verified" },
        { expression: "claims.tier == 'gold'" },
      ],
    });
    accepted({ username: "u", hd: "example.com", tier: "gold" }, c);
    rejected({ username: "u", tier: "gold" }, c, "claim_validation", /required claim "hd" is missing/);
    rejected(
      { username: "u", hd: "example.com", email_verified: false, tier: "gold" },
      c,
      "claim_validation",
      /^claimValidationRules\[1\]: email must be verified$/,
    );
    rejected(
      { username: "u", hd: "example.com", tier: "silver" },
      c,
      "claim_validation",
      /^claimValidationRules\[2\]: validation expression 'claims.tier == 'gold'' failed$/,
    );
    rejected(
      { username: "u", hd: "example.com" },
      c,
      "claim_validation",
      /^claimValidationRules\[2\]: evaluation failed: No such key: tier$/,
    );
  });

  it("checks user validation rules against the mapped user, extra and all", () => {
    const c = config({
      claims: { extra: [{ key: "example.com/tenant", valueExpression: 'claims.?tenant.orValue("")' }] },
      userValidationRules: [
        { expression: "!user.username.startsWith('admin')", message: "no admins" },
        { expression: "user.groups.all(g, g != 'banned')", message: "banned" },
        { expression: "user.uid == '' && user.extra['example.com/tenant'] == ['t1']" },
      ],
      systemPrefixPolicy: "Allow",
    });
    accepted({ username: "jane", groups: ["devs"], tenant: "t1" }, c);
    rejected(
      { username: "admin-jo", tenant: "t1" },
      c,
      "user_validation",
      /^userValidationRules\[0\]: no admins$/,
    );
    rejected(
      { username: "jo", groups: ["banned"], tenant: "t1" },
      c,
      "user_validation",
      /^userValidationRules\[1\]: banned$/,
    );
    rejected(
      { username: "jo", tenant: "t2" },
      c,
      "user_validation",
      /^userValidationRules\[2\]: validation expression/,
    );
    // A missing extra key is an evaluation error, which fails the login too.
    rejected({ username: "jo" }, c, "user_validation", /^userValidationRules\[2\]: evaluation failed/);
  });

  it("gives user validation rules empty groups, uid and extra when there are none", () => {
    const c = config({
      userValidationRules: [
        { expression: "size(user.groups) == 0 && user.uid == '' && size(user.extra) == 0" },
      ],
    });
    accepted({ username: "jane" }, c);
  });
});

describe("systemPrefixPolicy", () => {
  it("rejects system: usernames and groups by default", () => {
    rejected(
      { username: "system:admin" },
      config(),
      "system_prefix",
      /^username "system:admin" has the reserved/,
    );
    rejected(
      { username: "jane", groups: ["devs", "system:masters"] },
      config(),
      "system_prefix",
      /^group "system:masters" has the reserved "system:" prefix$/,
    );
    rejected(
      { sub: "u" },
      config({ claims: { usernameExpression: '"system:" + claims.sub' } }),
      "system_prefix",
      /username "system:u"/,
    );
    // Only the prefix matters: "system" alone or elsewhere in the name is fine.
    accepted({ username: "systemd", groups: ["my-system:group"] }, config());
  });

  it("accepts them with Allow", () => {
    assert.deepEqual(
      accepted(
        { username: "system:admin", groups: ["system:masters"] },
        config({ systemPrefixPolicy: "Allow" }),
      ),
      { username: "system:admin", groups: ["system:masters"] },
    );
  });
});

describe("the CEL cost budget", () => {
  const groups = Array.from({ length: 6000 }, (_, i) => `group-${i}`);
  const quadratic = config({
    claimValidationRules: [{ expression: "claims.groups.all(g, claims.groups.exists(h, h == g))" }],
  });

  it("fails a quadratic rule over thousands of groups instead of running it for seconds", () => {
    rejected(
      { username: "j", groups },
      quadratic,
      "claim_validation",
      /^claimValidationRules\[0\]: evaluation failed: the expressions exceeded their cost budget of 20000 value reads for one token$/,
    );
  });

  it("lets the same rule pass over a token with a few groups, and linear work over thousands", () => {
    assert.deepEqual(accepted({ username: "j", groups: ["a", "b", "c"] }, quadratic).groups, ["a", "b", "c"]);
    const linear = config({
      claims: {
        usernameExpression: "claims.username",
        groupsExpression: "claims.groups.map(g, 'oidc:' + g)",
      },
      userValidationRules: [{ expression: "user.groups.all(g, g.startsWith('oidc:'))" }],
    });
    const user = accepted({ username: "j", groups }, linear);
    assert.equal(user.groups.length, 6000);
    assert.equal(user.groups[5999], "oidc:group-5999");
    assert.ok(!types.isProxy(user.groups), "results are plain values");
    assert.deepEqual(structuredClone(user), user);
  });

  it("is shared by all of a token's expressions", () => {
    const each = config({
      claims: { usernameExpression: "claims.username", groupsExpression: "claims.groups" },
      claimValidationRules: [{ expression: "claims.groups.size() > 0" }],
    });
    const claims = { username: "j", groups: ["a"] };
    // Each expression alone fits in 5 reads; the three together do not.
    assert.equal(accepted(claims, { ...each, evaluationBudget: 8 }).username, "j");
    rejected(claims, { ...each, evaluationBudget: 5 }, "claim_validation", /cost budget of 5 value reads/);
  });
});
