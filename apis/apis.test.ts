import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { crdDir, renderAll, repoRoot } from "../hack/gen-apis.ts";
import { authenticatorPhases } from "./authentication/v1alpha1/status.ts";
import { certificateAuthorityDataSourceKinds } from "./authentication/v1alpha1/tls.ts";
import {
  AuthenticatorPhase,
  CertificateAuthorityDataSourceKind,
  ConditionStatus,
  credentialIssuer,
  FrontendType,
  ImpersonationProxyMode,
  ImpersonationProxyServiceType,
  jwtAuthenticator,
  kinds,
  StrategyReason,
  StrategyStatus,
  StrategyType,
  tokenCredentialRequest,
  webhookAuthenticator,
  whoAmIRequest,
} from "./index.ts";
import { conditionStatuses } from "./meta/v1/meta.ts";
import type { JSONSchemaProps } from "./schema.ts";
import { compileValidator } from "./validation.ts";

describe("generated files", () => {
  const files = renderAll();

  for (const [path, content] of files) {
    it(`${path} is up to date`, () => {
      const onDisk = readFileSync(join(repoRoot, path), "utf8");
      assert.ok(onDisk === content, `${path} is stale, run npm run generate`);
    });
  }

  it("crds/ holds only generated manifests", () => {
    const extra = readdirSync(join(repoRoot, crdDir)).filter((name) => !files.has(`${crdDir}/${name}`));
    assert.deepEqual(extra, [], `unexpected files in crds/, run npm run generate: ${extra.join(", ")}`);
  });
});

// Walks a schema, calling visit with each node and its path ("a.b", "a[]", "a{}").
function walk(s: JSONSchemaProps, path: string, visit: (s: JSONSchemaProps, path: string) => void): void {
  visit(s, path);
  for (const [name, sub] of Object.entries(s.properties ?? {}))
    walk(sub, path ? `${path}.${name}` : name, visit);
  if (s.items) walk(s.items, `${path}[]`, visit);
  if (s.additionalProperties) walk(s.additionalProperties, `${path}{}`, visit);
}

function nodeAt(s: JSONSchemaProps, path: string): JSONSchemaProps | undefined {
  let found: JSONSchemaProps | undefined;
  walk(s, "", (node, p) => {
    if (p === path) found = node;
  });
  return found;
}

describe("schemas", () => {
  for (const k of kinds) {
    it(`${k.kind} is a structural schema`, () => {
      walk(k.schema, "", (s, path) => {
        const at = `${k.kind} ${path || "(root)"}`;
        assert.ok(s.type, `${at}: every node needs a type`);
        assert.equal(s.properties !== undefined, s.type === "object" && s.properties !== undefined, at);
        assert.equal(s.items !== undefined, s.type === "array", `${at}: items exactly on arrays`);
        assert.ok(!(s.properties && s.additionalProperties), `${at}: properties and additionalProperties`);
        for (const r of s.required ?? [])
          assert.ok(s.properties?.[r], `${at}: required ${r} is not a property`);
        for (const v of s.enum ?? []) assert.equal(typeof v, "string", `${at}: enum of a non-string`);
        if (s.default !== undefined) {
          const { default: value, ...withoutDefault } = s;
          const { errors } = compileValidator(withoutDefault)(value);
          assert.deepEqual(errors, [], `${at}: the default does not validate`);
          if (s.enum) assert.ok(s.enum.includes(s.default as string), `${at}: default outside the enum`);
        }
        const mapKeys = s["x-kubernetes-list-map-keys"];
        if (mapKeys) {
          assert.equal(s["x-kubernetes-list-type"], "map", `${at}: map keys need list-type map`);
          for (const key of mapKeys) {
            const keySchema = s.items?.properties?.[key];
            assert.ok(
              keySchema && keySchema.type !== "object" && keySchema.type !== "array",
              `${at}: key ${key}`,
            );
            assert.ok(
              s.items?.required?.includes(key) || keySchema.default !== undefined,
              `${at}: key ${key}`,
            );
          }
        }
        for (const rule of s["x-kubernetes-validations"] ?? []) {
          assert.ok(
            (rule.message === undefined) !== (rule.messageExpression === undefined),
            `${at}: ${rule.rule}`,
          );
        }
      });
    });

    it(`${k.kind} describes every field`, () => {
      walk(k.schema, "", (s, path) => {
        for (const [name, sub] of Object.entries(s.properties ?? {})) {
          if (path === "" && name === "metadata") continue;
          assert.ok(sub.description, `${k.kind} ${path ? `${path}.` : ""}${name} has no description`);
        }
      });
    });

    it(`${k.kind} names only types that exist`, () => {
      for (const [path, name] of Object.entries(k.typeNames)) {
        assert.ok(
          nodeAt(k.schema, path),
          `${k.kind}: typeNames has ${name} at ${path}, which is not in the schema`,
        );
      }
    });

    it(`${k.kind} printer columns point at schema fields`, () => {
      for (const c of k.printerColumns) {
        if (c.jsonPath.startsWith(".metadata.")) continue;
        const path = c.jsonPath.slice(1).replace(/\[\?\(@\.[^)]*\)\]/, "[]");
        assert.ok(nodeAt(k.schema, path), `${k.kind}: column ${c.name} reads ${c.jsonPath}`);
      }
    });
  }

  it("the constants match the schema enums", () => {
    const pairs: [Record<string, string>, readonly string[]][] = [
      [ImpersonationProxyMode, credentialIssuer.impersonationProxyModes],
      [ImpersonationProxyServiceType, credentialIssuer.impersonationProxyServiceTypes],
      [StrategyType, credentialIssuer.strategyTypes],
      [StrategyStatus, credentialIssuer.strategyStatuses],
      [StrategyReason, credentialIssuer.strategyReasons],
      [FrontendType, credentialIssuer.frontendTypes],
      [AuthenticatorPhase, authenticatorPhases],
      [CertificateAuthorityDataSourceKind, certificateAuthorityDataSourceKinds],
      [ConditionStatus, conditionStatuses],
    ];
    for (const [constants, values] of pairs) assert.deepEqual(Object.values(constants), [...values]);
  });

  it("lists every kind once, with upstream's names", () => {
    assert.deepEqual(
      kinds.map((k) => `${k.plural}.${k.group} ${k.servedBy}`),
      [
        "credentialissuers.config.concierge.pinniped.dev crd",
        "jwtauthenticators.authentication.concierge.pinniped.dev crd",
        "webhookauthenticators.authentication.concierge.pinniped.dev crd",
        "tokencredentialrequests.login.concierge.pinniped.dev aggregated",
        "whoamirequests.identity.concierge.pinniped.dev aggregated",
      ],
    );
    for (const k of kinds) {
      assert.equal(k.scope, "Cluster");
      assert.equal(k.version, "v1alpha1");
      assert.ok(k.categories.includes("pinniped"));
      assert.deepEqual(k.shortNames, []);
    }
  });
});

const meta = { name: "sample" };

// kube-apiserver drops status on create and update, and validates it only on writes to the status
// subresource, against the status schema alone; do the same.
function validateAsServer(schema: JSONSchemaProps): (object: unknown) => string[] {
  const validateObject = compileValidator(schema);
  const validateStatus = compileValidator(schema.properties?.status ?? {}, "status");
  return (object) => {
    const { status, ...rest } = object as { status?: unknown };
    return [...(status === undefined ? validateObject(rest) : validateStatus(status)).errors].sort();
  };
}

describe("validation of CredentialIssuer", () => {
  const validate = compileValidator(credentialIssuer.schema);
  const ci = (impersonationProxy: unknown, status?: unknown) => ({
    apiVersion: "config.concierge.pinniped.dev/v1alpha1",
    kind: "CredentialIssuer",
    metadata: meta,
    spec: { impersonationProxy },
    ...(status === undefined ? {} : { status }),
  });
  const strategy = {
    type: "ImpersonationProxy",
    status: "Success",
    reason: "Listening",
    message: "impersonation proxy is ready to accept client connections",
    lastUpdateTime: "2026-01-02T03:04:05Z",
    frontend: {
      type: "ImpersonationProxy",
      impersonationProxyInfo: { endpoint: "https://proxy.example.com", certificateAuthorityData: "Zm9v" },
    },
  };

  it("defaults service to a LoadBalancer", () => {
    const { object, errors } = validate(ci({ mode: "auto" }));
    assert.deepEqual(errors, []);
    assert.deepEqual((object as { spec: unknown }).spec, {
      impersonationProxy: { mode: "auto", service: { type: "LoadBalancer" } },
    });
  });

  it("defaults service.type when service is given", () => {
    const { object, errors } = validate(ci({ mode: "enabled", service: { loadBalancerIP: "10.0.0.1" } }));
    assert.deepEqual(errors, []);
    assert.deepEqual((object as { spec: unknown }).spec, {
      impersonationProxy: { mode: "enabled", service: { loadBalancerIP: "10.0.0.1", type: "LoadBalancer" } },
    });
  });

  it("accepts a full object with status", () => {
    const full = ci(
      {
        mode: "enabled",
        service: { type: "ClusterIP", annotations: { "a.example.com/b": "c" } },
        externalEndpoint: "proxy.example.com:8443",
        tls: { secretName: "proxy-tls", certificateAuthorityData: "Zm9v" },
      },
      {
        strategies: [
          strategy,
          {
            type: "KubeClusterSigningCertificate",
            status: "Error",
            reason: "CouldNotFetchKey",
            message: "could not find a healthy kube-controller-manager pod (0 candidates)",
            lastUpdateTime: "2026-01-02T03:04:05.123+01:00",
          },
        ],
      },
    );
    assert.deepEqual(validate(full).errors, []);
  });

  it("accepts an object without a spec", () => {
    assert.deepEqual(validate({ metadata: meta }).errors, []);
  });

  const invalid: [string, unknown, string[]][] = [
    ["no impersonationProxy", { metadata: meta, spec: {} }, ["spec.impersonationProxy: Required value"]],
    ["no mode", ci({}), ["spec.impersonationProxy.mode: Required value"]],
    [
      "a bad mode",
      ci({ mode: "sometimes" }),
      [
        'spec.impersonationProxy.mode: Unsupported value: "sometimes": supported values: "auto", "enabled", "disabled"',
      ],
    ],
    [
      "a bad service type",
      ci({ mode: "auto", service: { type: "NodePort" } }),
      [
        'spec.impersonationProxy.service.type: Unsupported value: "NodePort": supported values: "LoadBalancer", "ClusterIP", "None"',
      ],
    ],
    [
      "an empty loadBalancerIP",
      ci({ mode: "auto", service: { loadBalancerIP: "" } }),
      [
        'spec.impersonationProxy.service.loadBalancerIP: Invalid value: "": spec.impersonationProxy.service.loadBalancerIP in body should be at least 1 chars long',
      ],
    ],
    [
      "a long loadBalancerIP",
      ci({ mode: "auto", service: { loadBalancerIP: "1".repeat(256) } }),
      ["spec.impersonationProxy.service.loadBalancerIP: Too long: may not be more than 255 bytes"],
    ],
    [
      "an empty tls.secretName",
      ci({ mode: "auto", tls: { secretName: "" } }),
      [
        'spec.impersonationProxy.tls.secretName: Invalid value: "": spec.impersonationProxy.tls.secretName in body should be at least 1 chars long',
      ],
    ],
    [
      "an annotation that is not a string",
      ci({ mode: "auto", service: { annotations: { "a.example.com/b": 1 } } }),
      [
        'spec.impersonationProxy.service.annotations.a.example.com/b: Invalid value: "integer": spec.impersonationProxy.service.annotations.a.example.com/b in body must be of type string: "integer"',
      ],
    ],
    ["a status without strategies", ci({ mode: "auto" }, {}), ["status.strategies: Required value"]],
    [
      "a strategy with an http proxy endpoint and a bad time",
      ci(
        { mode: "auto" },
        {
          strategies: [
            {
              ...strategy,
              lastUpdateTime: "yesterday",
              frontend: {
                type: "ImpersonationProxy",
                impersonationProxyInfo: {
                  endpoint: "http://proxy.example.com",
                  certificateAuthorityData: "",
                },
              },
            },
          ],
        },
      ),
      [
        'status.strategies[0].frontend.impersonationProxyInfo.certificateAuthorityData: Invalid value: "": strategies[0].frontend.impersonationProxyInfo.certificateAuthorityData in body should be at least 1 chars long',
        "status.strategies[0].frontend.impersonationProxyInfo.endpoint: Invalid value: \"http://proxy.example.com\": strategies[0].frontend.impersonationProxyInfo.endpoint in body should match '^https://'",
        'status.strategies[0].lastUpdateTime: Invalid value: "yesterday": strategies[0].lastUpdateTime in body must be of type date-time: "yesterday"',
      ],
    ],
    [
      "a strategy with unknown enums",
      ci(
        { mode: "auto" },
        { strategies: [{ ...strategy, type: "Magic", status: "Maybe", reason: "Because" }] },
      ),
      [
        'status.strategies[0].reason: Unsupported value: "Because": supported values: "Listening", "Pending", "Disabled", "ErrorDuringSetup", "CouldNotFetchKey", "CouldNotGetClusterInfo", "FetchedKey", "ProbeSucceeded", "ProbeFailed"',
        'status.strategies[0].status: Unsupported value: "Maybe": supported values: "Success", "Error"',
        'status.strategies[0].type: Unsupported value: "Magic": supported values: "KubeClusterSigningCertificate", "ImpersonationProxy", "SecretSigningCertificate", "CertificateSigningRequestAPI", "JWTCredential"',
      ],
    ],
    [
      "a tokenCredentialRequestInfo with a bad server",
      ci(
        { mode: "auto" },
        {
          strategies: [
            {
              ...strategy,
              frontend: {
                type: "TokenCredentialRequestAPI",
                tokenCredentialRequestInfo: { server: "ftp://example.com", certificateAuthorityData: "Zm9v" },
              },
            },
          ],
        },
      ),
      [
        "status.strategies[0].frontend.tokenCredentialRequestInfo.server: Invalid value: \"ftp://example.com\": strategies[0].frontend.tokenCredentialRequestInfo.server in body should match '^https://|^http://'",
      ],
    ],
  ];
  const validateWrite = validateAsServer(credentialIssuer.schema);
  for (const [name, object, want] of invalid) {
    it(`rejects ${name}`, () => assert.deepEqual(validateWrite(object), want));
  }
});

describe("validation of the authenticators", () => {
  const validateJWT = compileValidator(jwtAuthenticator.schema);
  const validateWebhook = compileValidator(webhookAuthenticator.schema);
  const jwt = (spec: Record<string, unknown>, status?: unknown) => ({
    apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
    kind: "JWTAuthenticator",
    metadata: meta,
    spec: { issuer: "https://issuer.example.com", audience: "concierge", ...spec },
    ...(status === undefined ? {} : { status }),
  });
  const webhook = (spec: Record<string, unknown>, status?: unknown) => ({
    metadata: meta,
    spec: { endpoint: "https://webhook.example.com/authenticate", ...spec },
    ...(status === undefined ? {} : { status }),
  });
  const condition = {
    type: "Ready",
    status: "True",
    reason: "Success",
    message: "the JWTAuthenticator is ready",
    lastTransitionTime: "2026-01-02T03:04:05Z",
    observedGeneration: 1,
  };

  // Upstream's integration tests accept all of these.
  const valid: [string, Record<string, unknown>][] = [
    ["the minimum", {}],
    ["an empty claims block", { claims: {} }],
    ["empty claim names", { claims: { username: "", groups: "" } }],
    ["an empty tls block", { tls: {} }],
    ["an empty certificateAuthorityData", { tls: { certificateAuthorityData: "" } }],
    [
      "a certificateAuthorityData that is not base64",
      { tls: { certificateAuthorityData: "pretend-this-is-a-cert" } },
    ],
    [
      "a CA from a ConfigMap",
      { tls: { certificateAuthorityDataSource: { kind: "ConfigMap", name: "ca", key: "ca.crt" } } },
    ],
  ];
  for (const [name, spec] of valid) {
    it(`JWTAuthenticator accepts ${name}`, () => assert.deepEqual(validateJWT(jwt(spec)).errors, []));
    if (!("claims" in spec)) {
      it(`WebhookAuthenticator accepts ${name}`, () =>
        assert.deepEqual(validateWebhook(webhook(spec)).errors, []));
    }
  }

  it("JWTAuthenticator accepts the CEL claim fields", () => {
    const spec = {
      claims: {
        usernameExpression: '"oidc:" + claims.sub',
        groupsExpression: "claims.groups",
        extra: [{ key: "example.com/tenant", valueExpression: "claims.tenant" }],
      },
      claimValidationRules: [
        { claim: "hd", requiredValue: "example.com" },
        { expression: "claims.?email_verified.orValue(true) == true", message: "email must be verified" },
      ],
      userValidationRules: [
        { expression: "!user.username.startsWith('system:')", message: "no system users" },
      ],
    };
    assert.deepEqual(validateJWT(jwt(spec)).errors, []);
  });

  it("defaults the phase only when status is written", () => {
    const { object } = validateJWT(jwt({}));
    assert.equal((object as { status?: unknown }).status, undefined);
    const written = validateJWT(jwt({}, { conditions: [condition] }));
    assert.deepEqual(written.errors, []);
    assert.equal((written.object as { status: { phase: string } }).status.phase, "Pending");
  });

  const invalidJWT: [string, unknown, string[]][] = [
    [
      "an empty issuer",
      jwt({ issuer: "" }),
      ['spec.issuer: Invalid value: "": spec.issuer in body should be at least 1 chars long'],
    ],
    [
      "an empty audience",
      jwt({ audience: "" }),
      ['spec.audience: Invalid value: "": spec.audience in body should be at least 1 chars long'],
    ],
    [
      "an http issuer",
      jwt({ issuer: "http://www.example.com" }),
      [
        "spec.issuer: Invalid value: \"http://www.example.com\": spec.issuer in body should match '^https://'",
      ],
    ],
    ["no spec", { metadata: meta }, ["spec: Required value"]],
    [
      "no issuer nor audience",
      { metadata: meta, spec: {} },
      ["spec.audience: Required value", "spec.issuer: Required value"],
    ],
    [
      "an extra mapping without a value",
      jwt({ claims: { extra: [{ key: "example.com/a" }] } }),
      ["spec.claims.extra[0].valueExpression: Required value"],
    ],
    [
      "a user validation rule without an expression",
      jwt({ userValidationRules: [{}] }),
      ["spec.userValidationRules[0].expression: Required value"],
    ],
    [
      "a CA source of an unknown kind and empty names",
      jwt({ tls: { certificateAuthorityDataSource: { kind: "Vault", name: "", key: "" } } }),
      [
        'spec.tls.certificateAuthorityDataSource.key: Invalid value: "": spec.tls.certificateAuthorityDataSource.key in body should be at least 1 chars long',
        'spec.tls.certificateAuthorityDataSource.kind: Unsupported value: "Vault": supported values: "Secret", "ConfigMap"',
        'spec.tls.certificateAuthorityDataSource.name: Invalid value: "": spec.tls.certificateAuthorityDataSource.name in body should be at least 1 chars long',
      ],
    ],
    [
      "a bad phase",
      jwt({}, { phase: "Great" }),
      ['status.phase: Unsupported value: "Great": supported values: "Pending", "Ready", "Error"'],
    ],
    [
      "conditions that break metav1.Condition's rules",
      jwt({}, { conditions: [{ ...condition, status: "Yes", reason: "not camel", observedGeneration: -1 }] }),
      [
        "status.conditions[0].observedGeneration: Invalid value: -1: conditions[0].observedGeneration in body should be greater than or equal to 0",
        "status.conditions[0].reason: Invalid value: \"not camel\": conditions[0].reason in body should match '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$'",
        'status.conditions[0].status: Unsupported value: "Yes": supported values: "True", "False", "Unknown"',
      ],
    ],
    [
      "two conditions of one type",
      jwt({}, { conditions: [condition, { ...condition, status: "False" }] }),
      ['status.conditions[1]: Duplicate value: {"type":"Ready"}'],
    ],
  ];
  const validateJWTWrite = validateAsServer(jwtAuthenticator.schema);
  for (const [name, object, want] of invalidJWT) {
    it(`JWTAuthenticator rejects ${name}`, () => assert.deepEqual(validateJWTWrite(object), want));
  }

  const invalidWebhook: [string, unknown, string[]][] = [
    [
      "an empty endpoint",
      webhook({ endpoint: "" }),
      ['spec.endpoint: Invalid value: "": spec.endpoint in body should be at least 1 chars long'],
    ],
    [
      "an http endpoint",
      webhook({ endpoint: "http://www.example.com" }),
      [
        "spec.endpoint: Invalid value: \"http://www.example.com\": spec.endpoint in body should match '^https://'",
      ],
    ],
    ["no endpoint", { metadata: meta, spec: {} }, ["spec.endpoint: Required value"]],
  ];
  const validateWebhookWrite = validateAsServer(webhookAuthenticator.schema);
  for (const [name, object, want] of invalidWebhook) {
    it(`WebhookAuthenticator rejects ${name}`, () => assert.deepEqual(validateWebhookWrite(object), want));
  }
});

describe("validation of the aggregated kinds", () => {
  it("TokenCredentialRequest", () => {
    const validate = compileValidator(tokenCredentialRequest.schema);
    const request = {
      apiVersion: "login.concierge.pinniped.dev/v1alpha1",
      kind: "TokenCredentialRequest",
      spec: {
        token: "secret",
        authenticator: {
          apiGroup: "authentication.concierge.pinniped.dev",
          kind: "WebhookAuthenticator",
          name: "a",
        },
      },
    };
    assert.deepEqual(validate(request).errors, []);
    const response = {
      ...request,
      status: {
        credential: {
          expirationTimestamp: "2026-01-02T03:09:05Z",
          clientCertificateData: "-----BEGIN CERTIFICATE-----",
          clientKeyData: "-----BEGIN PRIVATE KEY-----",
        },
      },
    };
    assert.deepEqual(validate(response).errors, []);
    assert.deepEqual(validate({ ...request, status: { message: "authentication failed" } }).errors, []);
    assert.deepEqual(validate({ spec: { authenticator: { kind: "JWTAuthenticator" } } }).errors, [
      "spec.authenticator.name: Required value",
    ]);
  });

  it("WhoAmIRequest", () => {
    const validate = compileValidator(whoAmIRequest.schema);
    const response = {
      apiVersion: "identity.concierge.pinniped.dev/v1alpha1",
      kind: "WhoAmIRequest",
      spec: {},
      status: {
        kubernetesUserInfo: {
          user: {
            username: "kubernetes-admin",
            groups: ["system:masters", "system:authenticated"],
            extra: { "authentication.kubernetes.io/credential-id": ["X509SHA256=abc"] },
          },
        },
      },
    };
    assert.deepEqual(validate(response).errors, []);
    assert.deepEqual(validate({ status: { kubernetesUserInfo: { user: {} } } }).errors, [
      "status.kubernetesUserInfo.user.username: Required value",
    ]);
  });
});
