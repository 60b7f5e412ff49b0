import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { formatFieldError } from "../kube/fielderror.ts";
import { validateJWTAuthenticator, validateWebhookAuthenticator } from "./validation.ts";

const caPEM = readFileSync(new URL("../authenticators/tls/testdata/ca.pem", import.meta.url), "utf8");
const b64 = (s: string) => Buffer.from(s).toString("base64");

const jwt = (spec: Record<string, unknown>) => ({
  apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
  kind: "JWTAuthenticator",
  metadata: { name: "jwt" },
  spec: { issuer: "https://issuer.example.com", audience: "concierge", ...spec },
});
const webhook = (spec: Record<string, unknown>) => ({
  apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
  kind: "WebhookAuthenticator",
  metadata: { name: "webhook" },
  spec: { endpoint: "https://webhook.example.com/authenticate", ...spec },
});

const jwtErrors = (spec: Record<string, unknown>) =>
  validateJWTAuthenticator(jwt(spec)).map(formatFieldError);
const webhookErrors = (spec: Record<string, unknown>) =>
  validateWebhookAuthenticator(webhook(spec)).map(formatFieldError);

const pemMessage = (n: number) =>
  `no base64-encoded PEM certificates found in ${n} bytes of data (PEM certificates must begin with "-----BEGIN CERTIFICATE-----")`;
const fromSecret = { kind: "Secret", name: "ca", key: "ca.crt" };

// Shared by both kinds: they embed the same TLSSpec.
const validTLS: [string, Record<string, unknown>][] = [
  ["no tls", {}],
  ["an empty tls block", { tls: {} }],
  ["an empty certificateAuthorityData", { tls: { certificateAuthorityData: "" } }],
  ["a CA bundle", { tls: { certificateAuthorityData: b64(caPEM) } }],
  [
    "a CA bundle with text around the certificate",
    { tls: { certificateAuthorityData: b64(`# ours\n${caPEM}\n`) } },
  ],
  [
    "a CA bundle wrapped over lines, as Go's decoder allows",
    { tls: { certificateAuthorityData: `${b64(caPEM).slice(0, 40)}\n${b64(caPEM).slice(40)}` } },
  ],
  ["a CA from a Secret", { tls: { certificateAuthorityDataSource: fromSecret } }],
  [
    "a CA from a Secret next to empty data",
    { tls: { certificateAuthorityData: "", certificateAuthorityDataSource: fromSecret } },
  ],
];
const invalidTLS: [string, Record<string, unknown>, string[]][] = [
  [
    "a CA that is not base64",
    { tls: { certificateAuthorityData: "pretend-this-is-a-certificate" } },
    ['spec.tls.certificateAuthorityData: Invalid value: "<omitted>": illegal base64 data at input byte 7'],
  ],
  [
    "a CA that is base64 but not PEM",
    { tls: { certificateAuthorityData: b64("hello world") } },
    [`spec.tls.certificateAuthorityData: Invalid value: "<omitted>": ${pemMessage(16)}`],
  ],
  [
    "a CA whose only certificate does not parse",
    {
      tls: {
        certificateAuthorityData: b64("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
      },
    },
    [`spec.tls.certificateAuthorityData: Invalid value: "<omitted>": ${pemMessage(80)}`],
  ],
  [
    "both CA data and a CA source",
    { tls: { certificateAuthorityData: b64(caPEM), certificateAuthorityDataSource: fromSecret } },
    [
      "spec.tls.certificateAuthorityDataSource: Forbidden: may not be specified together with spec.tls.certificateAuthorityData",
    ],
  ],
];

describe("validateJWTAuthenticator", () => {
  const valid: [string, Record<string, unknown>][] = [
    ["the minimum", {}],
    ["an issuer with a path and a port", { issuer: "https://issuer.example.com:8443/oauth2/default" }],
    ["an issuer on an IPv6 address", { issuer: "https://[::1]:8443" }],
    ["an issuer with an empty query, which upstream allows", { issuer: "https://issuer.example.com/?" }],
    ["an issuer with an empty fragment, which upstream allows", { issuer: "https://issuer.example.com/#" }],
    ["empty claim names", { claims: { username: "", groups: "" } }],
    ["claim names", { claims: { username: "email", groups: "roles" } }],
    [
      "expressions next to empty claim names",
      {
        claims: {
          username: "",
          usernameExpression: "claims.sub",
          groups: "",
          groupsExpression: "claims.groups",
        },
      },
    ],
    [
      "every CEL field",
      {
        claims: {
          usernameExpression: '"oidc:" + claims.sub',
          groupsExpression: "claims.groups",
          extra: [
            { key: "example.com/tenant", valueExpression: "claims.tenant" },
            { key: "acme.io/a-b_c.d~e:f", valueExpression: "['x', 'y']" },
          ],
        },
        claimValidationRules: [
          { claim: "hd", requiredValue: "example.com" },
          { claim: "iss" },
          { expression: "claims.?email_verified.orValue(true) == true", message: "email must be verified" },
        ],
        userValidationRules: [
          { expression: "!user.username.startsWith('system:')", message: "no system users" },
          { expression: "user.groups.all(g, !g.startsWith('system:'))" },
        ],
      },
    ],
    [
      "an email username that checks email_verified",
      {
        claims: { usernameExpression: "claims.email" },
        claimValidationRules: [{ expression: "claims.email_verified == true" }],
      },
    ],
    [
      "more audiences, and the other optional additions",
      { audiences: ["cli", "web"], audienceMatchPolicy: "MatchAny", systemPrefixPolicy: "Allow" },
    ],
    ...validTLS,
  ];
  for (const [name, spec] of valid) {
    it(`accepts ${name}`, () => assert.deepEqual(jwtErrors(spec), []));
  }

  const invalid: [string, Record<string, unknown>, string[]][] = [
    // spec.audiences: the schema's rules, and no repeat of spec.audience.
    [
      "an audience repeated in audiences",
      { audiences: ["cli", "concierge"], audienceMatchPolicy: "MatchAny" },
      ['spec.audiences[1]: Duplicate value: "concierge"'],
    ],
    [
      "an empty entry in audiences (the schema says so)",
      { audiences: ["cli", ""], audienceMatchPolicy: "MatchAny" },
      ['spec.audiences[1]: Invalid value: "": spec.audiences[1] in body should be at least 1 chars long'],
    ],
    [
      "the same entry twice in audiences (the schema says so)",
      { audiences: ["cli", "cli"], audienceMatchPolicy: "MatchAny" },
      ['spec.audiences[1]: Duplicate value: "cli"'],
    ],
    // spec.issuer, with upstream's IssuerURLValid reasons as details.
    [
      "an http issuer (the schema says so first)",
      { issuer: "http://issuer.example.com" },
      [
        `spec.issuer: Invalid value: "http://issuer.example.com": spec.issuer in body should match '^https://'`,
      ],
    ],
    [
      "an issuer without a host",
      { issuer: "https:///path" },
      ['spec.issuer: Invalid value: "https:///path": URL must have a host'],
    ],
    [
      "an issuer with a query",
      { issuer: "https://issuer.example.com/?tenant=a" },
      ['spec.issuer: Invalid value: "https://issuer.example.com/?tenant=a": cannot include query params'],
    ],
    [
      "an issuer with a fragment",
      { issuer: "https://issuer.example.com/#top" },
      ['spec.issuer: Invalid value: "https://issuer.example.com/#top": cannot include fragment'],
    ],
    [
      "an issuer with a query and a fragment",
      { issuer: "https://issuer.example.com?a=b#c" },
      [
        'spec.issuer: Invalid value: "https://issuer.example.com?a=b#c": cannot include query params',
        'spec.issuer: Invalid value: "https://issuer.example.com?a=b#c": cannot include fragment',
      ],
    ],
    [
      "an issuer that is the discovery document",
      { issuer: "https://issuer.example.com/a/.well-known/openid-configuration" },
      [
        `spec.issuer: Invalid value: "https://issuer.example.com/a/.well-known/openid-configuration": cannot include path '/.well-known/openid-configuration'`,
      ],
    ],
    [
      "an issuer with credentials, whose password stays out of the message",
      { issuer: "https://user:s3cr@t@issuer.example.com" },
      [
        'spec.issuer: Invalid value: "https://user:xxxxx@issuer.example.com": URL must not contain a username or password',
      ],
    ],
    [
      "an issuer on the cloud metadata address",
      { issuer: "https://169.254.169.254" },
      [
        'spec.issuer: Invalid value: "https://169.254.169.254": host 169.254.169.254 is a link-local or cloud metadata address, which is not dialled unless outbound.allowLinkLocalAddresses in the Concierge config allows it',
      ],
    ],
    [
      "an issuer with a space in the host",
      { issuer: "https://issuer example.com" },
      [
        'spec.issuer: Invalid value: "https://issuer example.com": URL is invalid: invalid character " " in host name',
      ],
    ],
    [
      "an issuer with a port that is not a number",
      { issuer: "https://issuer.example.com:https" },
      [
        'spec.issuer: Invalid value: "https://issuer.example.com:https": URL is invalid: invalid port ":https" after host',
      ],
    ],
    [
      "an issuer with a port out of range",
      { issuer: "https://issuer.example.com:65536" },
      [
        'spec.issuer: Invalid value: "https://issuer.example.com:65536": URL is invalid: invalid port ":65536" after host: must be between 1 and 65535',
      ],
    ],
    [
      "an issuer with an unclosed IPv6 address",
      { issuer: "https://[::1" },
      [`spec.issuer: Invalid value: "https://[::1": URL is invalid: missing ']' in host`],
    ],
    [
      "an issuer with a control character",
      { issuer: "https://issuer.example.com/\tx" },
      [
        'spec.issuer: Invalid value: "https://issuer.example.com/\\tx": URL is invalid: net/url: invalid control character in URL',
      ],
    ],
    // claims.username / usernameExpression and groups / groupsExpression.
    [
      "a username claim and a username expression",
      { claims: { username: "email", usernameExpression: "claims.sub" } },
      [`spec.claims.username: Invalid value: "": claim and expression can't both be set`],
    ],
    [
      "a groups claim and a groups expression",
      { claims: { groups: "roles", groupsExpression: "claims.roles" } },
      [`spec.claims.groups: Invalid value: "": claim and expression can't both be set`],
    ],
    // CEL: parse, type-check, result type; each error names its field.
    [
      "a username expression that does not parse",
      { claims: { usernameExpression: "claims.sub +" } },
      [
        'spec.claims.usernameExpression: Invalid value: "claims.sub +": compilation failed: Unexpected token: EOF',
      ],
    ],
    [
      "a username expression of the wrong type",
      { claims: { usernameExpression: "claims.sub == 'x'" } },
      [
        `spec.claims.usernameExpression: Invalid value: "claims.sub == 'x'": must evaluate to string, but evaluates to bool`,
      ],
    ],
    [
      "a groups expression of the wrong type",
      { claims: { groupsExpression: "size(claims.groups)" } },
      [
        'spec.claims.groupsExpression: Invalid value: "size(claims.groups)": must evaluate to string or list of strings, but evaluates to int',
      ],
    ],
    [
      "an email username without email_verified anywhere",
      { claims: { usernameExpression: "claims.email" } },
      [
        'spec.claims.usernameExpression: Invalid value: "claims.email": claims.email_verified must be used in claims.usernameExpression or claims.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in claims.usernameExpression',
      ],
    ],
    [
      "an extra value of the wrong type",
      { claims: { extra: [{ key: "example.com/a", valueExpression: "1" }] } },
      [
        'spec.claims.extra[0].valueExpression: Invalid value: "1": must evaluate to string or list of strings, but evaluates to int',
      ],
    ],
    [
      "a claim validation expression that is not a bool",
      { claimValidationRules: [{ expression: "'yes'" }] },
      [
        `spec.claimValidationRules[0].expression: Invalid value: "'yes'": must evaluate to bool, but evaluates to string`,
      ],
    ],
    [
      "a user validation expression on a field UserInfo does not have",
      { userValidationRules: [{ expression: "user.usrname == 'x'" }] },
      [
        `spec.userValidationRules[0].expression: Invalid value: "user.usrname == 'x'": compilation failed: No such key: usrname`,
      ],
    ],
    // claims.extra keys: Kubernetes' rules, plus no "=".
    [
      "an empty extra key",
      { claims: { extra: [{ key: "", valueExpression: "'x'" }] } },
      ["spec.claims.extra[0].key: Required value"],
    ],
    [
      "an extra key without a domain",
      { claims: { extra: [{ key: "tenant", valueExpression: "'x'" }] } },
      [
        'spec.claims.extra[0].key: Invalid value: "tenant": must be a domain-prefixed path (such as "acme.io/foo")',
      ],
    ],
    [
      "an extra key without a path",
      { claims: { extra: [{ key: "example.com/", valueExpression: "'x'" }] } },
      [
        'spec.claims.extra[0].key: Invalid value: "example.com/": must be a domain-prefixed path (such as "acme.io/foo")',
      ],
    ],
    [
      "an extra key whose domain is not a DNS subdomain",
      { claims: { extra: [{ key: "-example.com/a", valueExpression: "'x'" }] } },
      [
        `spec.claims.extra[0].key: Invalid value: "-example.com": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
      ],
    ],
    [
      "an extra key with a character not allowed in a path",
      { claims: { extra: [{ key: "example.com/a b", valueExpression: "'x'" }] } },
      [
        `spec.claims.extra[0].key: Invalid value: "a b": Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')`,
      ],
    ],
    [
      "an upper-case extra key",
      { claims: { extra: [{ key: "example.com/Tenant", valueExpression: "'x'" }] } },
      ['spec.claims.extra[0].key: Invalid value: "example.com/Tenant": must be lowercase'],
    ],
    [
      "an extra key with an equals sign",
      { claims: { extra: [{ key: "example.com/a=b", valueExpression: "'x'" }] } },
      [
        'spec.claims.extra[0].key: Invalid value: "example.com/a=b": Pinniped does not allow extra key names to contain equals sign',
      ],
    ],
    [
      "an extra key in a domain reserved for Kubernetes",
      {
        claims: {
          extra: [
            { key: "kubernetes.io/a", valueExpression: "'x'" },
            { key: "authentication.k8s.io/b", valueExpression: "'x'" },
          ],
        },
      },
      [
        'spec.claims.extra[0].key: Invalid value: "kubernetes.io/a": k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use',
        'spec.claims.extra[1].key: Invalid value: "authentication.k8s.io/b": k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use',
      ],
    ],
    [
      "the same extra key twice",
      {
        claims: {
          extra: [
            { key: "example.com/a", valueExpression: "'x'" },
            { key: "example.com/a", valueExpression: "1" },
          ],
        },
      },
      ['spec.claims.extra[1].key: Duplicate value: "example.com/a"'],
    ],
    [
      "an empty extra value expression",
      { claims: { extra: [{ key: "example.com/a", valueExpression: "" }] } },
      ["spec.claims.extra[0].valueExpression: Required value"],
    ],
    // claimValidationRules: exactly one of claim[/requiredValue] or expression[/message].
    [
      "a claim rule with both a claim and an expression",
      { claimValidationRules: [{ claim: "hd", expression: "true" }] },
      [`spec.claimValidationRules[0]: Invalid value: "hd": claim and expression can't both be set`],
    ],
    [
      "an empty claim rule",
      { claimValidationRules: [{}] },
      ["spec.claimValidationRules[0]: Required value: claim or expression is required"],
    ],
    [
      "a claim rule with a message",
      { claimValidationRules: [{ claim: "hd", message: "wrong domain" }] },
      [
        'spec.claimValidationRules[0].message: Invalid value: "wrong domain": may not be specified when claim is set',
      ],
    ],
    [
      "an expression rule with a required value",
      { claimValidationRules: [{ expression: "true", requiredValue: "x" }] },
      [
        'spec.claimValidationRules[0].requiredValue: Invalid value: "x": may not be specified when expression is set',
      ],
    ],
    [
      "the same claim twice",
      { claimValidationRules: [{ claim: "hd" }, { claim: "hd", requiredValue: "x" }] },
      ['spec.claimValidationRules[1].claim: Duplicate value: "hd"'],
    ],
    [
      "the same claim expression twice",
      { claimValidationRules: [{ expression: "true" }, { expression: "true" }] },
      ['spec.claimValidationRules[1].expression: Duplicate value: "true"'],
    ],
    // userValidationRules.
    [
      "an empty user rule expression",
      { userValidationRules: [{ expression: "" }] },
      ["spec.userValidationRules[0].expression: Required value"],
    ],
    [
      "the same user rule twice",
      { userValidationRules: [{ expression: "true" }, { expression: "true", message: "again" }] },
      ['spec.userValidationRules[1].expression: Duplicate value: "true"'],
    ],
    ...invalidTLS,
    [
      "several problems at once, each with its field",
      {
        issuer: "https://issuer.example.com?x=1",
        claims: { username: "email", usernameExpression: "claims.sub" },
        tls: { certificateAuthorityData: b64("nope") },
      },
      [
        'spec.issuer: Invalid value: "https://issuer.example.com?x=1": cannot include query params',
        `spec.claims.username: Invalid value: "": claim and expression can't both be set`,
        `spec.tls.certificateAuthorityData: Invalid value: "<omitted>": ${pemMessage(8)}`,
      ],
    ],
  ];
  for (const [name, spec, want] of invalid) {
    it(`rejects ${name}`, () => assert.deepEqual(jwtErrors(spec), want));
  }

  it("reports a value that is not an object instead of throwing", () => {
    for (const value of [null, "x", 3, [jwt({})]]) {
      assert.equal(validateJWTAuthenticator(value).length, 1);
    }
    assert.deepEqual(validateJWTAuthenticator(null).map(formatFieldError), [
      '<root>: Invalid value: "null": must be a JSON object',
    ]);
  });

  it("reports a missing spec like the CRD schema", () => {
    assert.deepEqual(validateJWTAuthenticator({ metadata: { name: "x" } }).map(formatFieldError), [
      "spec: Required value",
    ]);
  });
});

describe("validateWebhookAuthenticator", () => {
  const valid: [string, Record<string, unknown>][] = [
    ["the minimum", {}],
    ["an endpoint with a port, a query and a fragment", { endpoint: "https://10.0.0.1:8443/auth?x=1#y" }],
    ...validTLS,
  ];
  for (const [name, spec] of valid) {
    it(`accepts ${name}`, () => assert.deepEqual(webhookErrors(spec), []));
  }

  const invalid: [string, Record<string, unknown>, string[]][] = [
    [
      "an http endpoint (the schema says so first)",
      { endpoint: "http://webhook.example.com" },
      [
        `spec.endpoint: Invalid value: "http://webhook.example.com": spec.endpoint in body should match '^https://'`,
      ],
    ],
    [
      "an endpoint without a host",
      { endpoint: "https://:443/authenticate" },
      ['spec.endpoint: Invalid value: "https://:443/authenticate": URL must have a host'],
    ],
    [
      "an endpoint that does not parse",
      { endpoint: "https://web hook/" },
      [
        'spec.endpoint: Invalid value: "https://web hook/": URL is invalid: invalid character " " in host name',
      ],
    ],
    [
      "an endpoint with credentials and a bad host, without the password",
      { endpoint: "https://u:secret@web hook/" },
      [
        'spec.endpoint: Invalid value: "https://u:xxxxx@web hook/": URL is invalid: invalid character " " in host name',
      ],
    ],
    [
      "an endpoint with credentials, which upstream allows, without the password",
      { endpoint: "https://u:p@webhook.example.com/" },
      [
        'spec.endpoint: Invalid value: "https://u:xxxxx@webhook.example.com/": URL must not contain a username or password',
      ],
    ],
    [
      "an endpoint on the cloud metadata address",
      { endpoint: "https://169.254.169.254/latest" },
      [
        'spec.endpoint: Invalid value: "https://169.254.169.254/latest": host 169.254.169.254 is a link-local or cloud metadata address, which is not dialled unless outbound.allowLinkLocalAddresses in the Concierge config allows it',
      ],
    ],
    [
      "an endpoint on the metadata address as IPv4-mapped IPv6",
      { endpoint: "https://[::ffff:169.254.169.254]/" },
      [
        'spec.endpoint: Invalid value: "https://[::ffff:169.254.169.254]/": host ::ffff:169.254.169.254 is a link-local or cloud metadata address, which is not dialled unless outbound.allowLinkLocalAddresses in the Concierge config allows it',
      ],
    ],
    [
      "an endpoint on the metadata address written as one number",
      { endpoint: "https://2852039166:443/" },
      [
        'spec.endpoint: Invalid value: "https://2852039166:443/": host 169.254.169.254 is a link-local or cloud metadata address, which is not dialled unless outbound.allowLinkLocalAddresses in the Concierge config allows it',
      ],
    ],
    [
      "an endpoint on an IPv6 link-local address",
      { endpoint: "https://[fe80::1]:8443/" },
      [
        'spec.endpoint: Invalid value: "https://[fe80::1]:8443/": host fe80::1 is a link-local or cloud metadata address, which is not dialled unless outbound.allowLinkLocalAddresses in the Concierge config allows it',
      ],
    ],
    ...invalidTLS,
  ];
  for (const [name, spec, want] of invalid) {
    it(`rejects ${name}`, () => assert.deepEqual(webhookErrors(spec), want));
  }
});
