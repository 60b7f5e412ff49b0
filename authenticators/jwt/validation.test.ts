import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JWTAuthenticatorSpec } from "../../apis/index.ts";
import { aggregateMessage } from "../../kube/fielderror.ts";
import { compileClaims } from "../cel/claims.ts";
import { specErrors } from "./validation.ts";

const base: JWTAuthenticatorSpec = { issuer: "https://issuer.example.com", audience: "aud" };

function message(extra: Partial<JWTAuthenticatorSpec>): string {
  const spec = { ...base, ...extra };
  const errors = specErrors(spec, compileClaims(spec).errors);
  return errors.length === 0 ? "" : aggregateMessage(errors);
}

describe("specErrors", () => {
  it("accepts upstream's spec with many optional values", () => {
    assert.equal(
      message({
        claims: {
          username: "my-custom-username-claim",
          groups: "my-custom-groups-claim",
          extra: [{ key: "example.com/key-name", valueExpression: '"extra-value"' }],
        },
        claimValidationRules: [{ claim: "iss", requiredValue: base.issuer }],
        userValidationRules: [{ expression: "true", message: "user-msg1" }],
      }),
      "",
    );
  });

  // The messages upstream's integration tests assert (concierge_jwtauthenticator_status_test.go).
  const upstream: [string, Partial<JWTAuthenticatorSpec>, string][] = [
    [
      "username and usernameExpression",
      { claims: { username: "foo", usernameExpression: "bar" } },
      `claims.username: Invalid value: "": claim and expression can't both be set`,
    ],
    [
      "groups and groupsExpression",
      { claims: { groups: "foo", groupsExpression: "bar" } },
      `claims.groups: Invalid value: "": claim and expression can't both be set`,
    ],
    [
      "an extra key with an equals sign and no domain",
      { claims: { extra: [{ key: "a=b", valueExpression: '"value"' }] } },
      `[claims.extra[0].key: Invalid value: "a=b": must be a domain-prefixed path (such as "acme.io/foo"), ` +
        `claims.extra[0].key: Invalid value: "a=b": Pinniped does not allow extra key names to contain equals sign]`,
    ],
    [
      "a claim validation rule with claim and expression",
      { claimValidationRules: [{ claim: "foo", requiredValue: "bar", expression: "baz", message: "bat" }] },
      `claimValidationRules[0]: Invalid value: "foo": claim and expression can't both be set`,
    ],
  ];
  for (const [name, spec, want] of upstream) {
    it(name, () => assert.equal(message(spec), want));
  }

  it("names the field and the expression of a CEL error", () => {
    const bad = "this is not a valid CEL expression";
    const cases: [Partial<JWTAuthenticatorSpec>, string][] = [
      [{ claims: { usernameExpression: bad } }, "claims.usernameExpression"],
      [{ claims: { groupsExpression: bad } }, "claims.groupsExpression"],
      [{ claimValidationRules: [{ expression: bad }] }, "claimValidationRules[0].expression"],
      [{ userValidationRules: [{ expression: bad }] }, "userValidationRules[0].expression"],
      [
        { claims: { extra: [{ key: "example.com/x", valueExpression: bad }] } },
        "claims.extra[0].valueExpression",
      ],
    ];
    for (const [spec, field] of cases) {
      const prefix = `${field}: Invalid value: "${bad}": compilation failed: `;
      assert.equal(message(spec).slice(0, prefix.length), prefix);
    }
  });

  it("refuses claims.email in the username without claims.email_verified", () => {
    assert.match(
      message({ claims: { usernameExpression: "claims.email" } }),
      /^claims\.usernameExpression: Invalid value: "claims\.email": claims\.email_verified must be used in /,
    );
    assert.equal(
      message({
        claims: { usernameExpression: "claims.email" },
        claimValidationRules: [{ expression: "claims.?email_verified.orValue(true) == true" }],
      }),
      "",
    );
  });

  it("checks the rest of Kubernetes' structured authentication rules", () => {
    const cases: [Partial<JWTAuthenticatorSpec>, string][] = [
      [
        { claimValidationRules: [{}] },
        "claimValidationRules[0]: Required value: claim or expression is required",
      ],
      [
        { claimValidationRules: [{ claim: "a", message: "m" }] },
        `claimValidationRules[0].message: Invalid value: "m": may not be specified when claim is set`,
      ],
      [
        { claimValidationRules: [{ claim: "a" }, { claim: "a" }] },
        `claimValidationRules[1].claim: Duplicate value: "a"`,
      ],
      [
        { claimValidationRules: [{ expression: "true", requiredValue: "x" }] },
        `claimValidationRules[0].requiredValue: Invalid value: "x": may not be specified when expression is set`,
      ],
      [
        { claimValidationRules: [{ expression: "true" }, { expression: "true" }] },
        `claimValidationRules[1].expression: Duplicate value: "true"`,
      ],
      [
        { claims: { extra: [{ key: "example.com/A", valueExpression: '"v"' }] } },
        `claims.extra[0].key: Invalid value: "example.com/A": must be lowercase`,
      ],
      [
        {
          claims: {
            extra: [
              { key: "example.com/a", valueExpression: '"v"' },
              { key: "example.com/a", valueExpression: '"w"' },
            ],
          },
        },
        `claims.extra[1].key: Duplicate value: "example.com/a"`,
      ],
      [
        { claims: { extra: [{ key: "example.com/a", valueExpression: "" }] } },
        "claims.extra[0].valueExpression: Required value",
      ],
      [{ claims: { extra: [{ key: "", valueExpression: '"v"' }] } }, "claims.extra[0].key: Required value"],
      [
        { claims: { extra: [{ key: "Example_.com/a", valueExpression: '"v"' }] } },
        `[claims.extra[0].key: Invalid value: "Example_.com": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), claims.extra[0].key: Invalid value: "Example_.com/a": must be lowercase]`,
      ],
      [
        { claims: { extra: [{ key: "example.com/a b", valueExpression: '"v"' }] } },
        `claims.extra[0].key: Invalid value: "a b": Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')`,
      ],
      [{ userValidationRules: [{ expression: "" }] }, "userValidationRules[0].expression: Required value"],
      [
        { claims: { extra: [{ key: "sub.k8s.io/a", valueExpression: '"v"' }] } },
        `claims.extra[0].key: Invalid value: "sub.k8s.io/a": k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use`,
      ],
      [
        { userValidationRules: [{ expression: "true" }, { expression: "true" }] },
        `userValidationRules[1].expression: Duplicate value: "true"`,
      ],
    ];
    for (const [spec, want] of cases) assert.equal(message(spec), want, JSON.stringify(spec));
  });
});
