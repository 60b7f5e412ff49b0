import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { celUser, celValueFromJSON, compileClaims } from "./claims.ts";

describe("compileClaims", () => {
  it("compiles the mappings and rules of Kubernetes' structured authentication documentation", () => {
    const { compiled, errors } = compileClaims({
      claims: {
        usernameExpression: 'claims.username + ":external-user"',
        groupsExpression: 'claims.roles.split(",")',
        extra: [{ key: "example.com/tenant", valueExpression: "claims.tenant" }],
      },
      claimValidationRules: [
        { expression: 'claims.hd == "example.com"', message: "the hd claim must be set to example.com" },
        {
          expression: "claims.exp - claims.nbf <= 86400",
          message: "total token lifetime must not exceed 24 hours",
        },
      ],
      userValidationRules: [
        {
          expression: "!user.username.startsWith('system:')",
          message: "username cannot used reserved system: prefix",
        },
        {
          expression: "user.groups.all(group, !group.startsWith('system:'))",
          message: "groups cannot used reserved system: prefix",
        },
      ],
    });
    assert.deepEqual(errors, []);
    const claims = celValueFromJSON({
      username: "jane",
      roles: "admin,dev",
      tenant: "t1",
      hd: "example.com",
      exp: 2000,
      nbf: 1000,
    });
    assert.equal(compiled.username?.evaluate({ claims }), "jane:external-user");
    assert.deepEqual(compiled.groups?.evaluate({ claims }), ["admin", "dev"]);
    assert.equal(compiled.extra[0]?.value.evaluate({ claims }), "t1");
    assert.deepEqual(
      compiled.claimRules.map((r) => r.rule.evaluate({ claims })),
      [true, true],
    );
    const user = celUser({ username: "jane:external-user", groups: ["admin", "system:masters"] });
    assert.deepEqual(
      compiled.userRules.map((r) => r.rule.evaluate({ user })),
      [true, false],
    );
  });

  it("reports syntax errors, type errors and wrong result types by field", () => {
    const { errors } = compileClaims({
      claims: { usernameExpression: "claims.sub +", groupsExpression: "1 + 2" },
      claimValidationRules: [{ expression: '"not a bool"' }],
      userValidationRules: [{ expression: "user.username + 1 == 2" }],
    });
    assert.deepEqual(
      errors.map((e) => e.field),
      [
        "spec.claims.usernameExpression",
        "spec.claims.groupsExpression",
        "spec.claimValidationRules[0].expression",
        "spec.userValidationRules[0].expression",
      ],
    );
    assert.match(errors[0]!.message, /^compilation failed: /);
    assert.equal(errors[1]!.message, "must evaluate to string or list of strings, but evaluates to int");
    assert.equal(errors[2]!.message, "must evaluate to bool, but evaluates to string");
  });

  it("requires claims.email_verified somewhere when the username expression reads claims.email", () => {
    assert.equal(compileClaims({ claims: { usernameExpression: "claims.email" } }).errors.length, 1);
    assert.deepEqual(
      compileClaims({
        claims: { usernameExpression: "claims.email" },
        claimValidationRules: [{ expression: "claims.?email_verified.orValue(true) == true" }],
      }).errors,
      [],
    );
  });

  it("reports a syntax error in a username expression that reads claims.email with only its own message", () => {
    const { errors } = compileClaims({ claims: { usernameExpression: "claims.email +" } });
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]?.field, "spec.claims.usernameExpression");
    assert.match(errors[0]?.message ?? "", /^compilation failed: /);
    assert.doesNotMatch(errors[0]?.message ?? "", /email_verified/);
  });

  it("accepts [] and null for groups and extra, as Kubernetes does", () => {
    const { errors } = compileClaims({
      claims: { groupsExpression: "[]", extra: [{ key: "example.com/x", valueExpression: "null" }] },
    });
    assert.deepEqual(errors, []);
  });

  it("throws at evaluation, not compilation, when a claim is missing", () => {
    const { compiled } = compileClaims({ claims: { usernameExpression: "claims.sub" } });
    assert.throws(() => compiled.username?.evaluate({ claims: {} }), /No such key: sub/);
  });
});
