import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MalformedAdmissionReview, reviewAdmission } from "./admission.ts";

const group = "authentication.concierge.pinniped.dev";
const jwt = (issuer: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: `${group}/v1alpha1`,
  kind: "JWTAuthenticator",
  metadata: { name: "corp", ...extra },
  spec: { issuer, audience: "concierge" },
});
const webhook = (endpoint: string) => ({
  apiVersion: `${group}/v1alpha1`,
  kind: "WebhookAuthenticator",
  metadata: { name: "hook" },
  spec: { endpoint },
});

function review(request: Record<string, unknown>) {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "705ab4f5-6393-11e8-b7cc-42010a800002",
      kind: { group, version: "v1alpha1", kind: "JWTAuthenticator" },
      resource: { group, version: "v1alpha1", resource: "jwtauthenticators" },
      operation: "CREATE",
      ...request,
    },
  };
}

const good = "https://issuer.example.com";
const query = "https://issuer.example.com?a=b";
const queryError = `spec.issuer: Invalid value: "${query}": cannot include query params`;

describe("reviewAdmission", () => {
  it("allows a good object and echoes the uid", () => {
    const decision = reviewAdmission(review({ object: jwt(good) }));
    assert.deepEqual(decision.review, {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "705ab4f5-6393-11e8-b7cc-42010a800002", allowed: true },
    });
    assert.equal(decision.kind, "JWTAuthenticator");
    assert.equal(decision.name, "corp");
    assert.equal(decision.operation, "CREATE");
  });

  // Upstream's CRD accepts every one of these and reports the problem in a condition; upstream's
  // integration tests create such objects and read their status.
  it("admits a bad object, with Kubernetes' field error wording as a warning", () => {
    const decision = reviewAdmission(review({ object: jwt(query) }));
    assert.deepEqual(decision.review.response, {
      uid: "705ab4f5-6393-11e8-b7cc-42010a800002",
      allowed: true,
      warnings: [queryError],
    });
    assert.equal(decision.allowed, true);
    assert.deepEqual(decision.warnedFields, ["spec.issuer"]);
  });

  it("warns once for each problem", () => {
    const object = {
      ...jwt(query),
      spec: { issuer: query, audience: "a", claims: { username: "u", usernameExpression: "claims.sub" } },
    };
    const { review: r } = reviewAdmission(review({ object }));
    assert.deepEqual(r.response.warnings, [
      queryError,
      `spec.claims.username: Invalid value: "": claim and expression can't both be set`,
    ]);
  });

  it("warns that claims.extra reaches no credential, unless a configured strategy carries extras", () => {
    const object = {
      ...jwt(good),
      spec: {
        ...jwt(good).spec,
        claims: { extra: [{ key: "example.com/team", valueExpression: "claims.t" }] },
      },
    };
    const certificatesOnly = reviewAdmission(review({ object }));
    assert.equal(certificatesOnly.allowed, true);
    assert.deepEqual(certificatesOnly.warnedFields, ["spec.claims.extra"]);
    const withJWTs = reviewAdmission(review({ object }), { extrasDeliverable: true });
    assert.equal(withJWTs.review.response.warnings, undefined);
  });

  for (const [name, tls] of [
    ["a CA that is not base64", { certificateAuthorityData: "pretend-this-is-a-certificate" }],
    [
      "a CA that is base64 but not PEM",
      { certificateAuthorityData: Buffer.from("not a cert").toString("base64") },
    ],
    [
      "a CA and a CA source together",
      {
        certificateAuthorityData: Buffer.from("x").toString("base64"),
        certificateAuthorityDataSource: { kind: "Secret", name: "ca", key: "ca.crt" },
      },
    ],
  ] as const) {
    it(`admits ${name}, as upstream's CRD does, with a warning`, () => {
      for (const [kind, object] of [
        ["JWTAuthenticator", { ...jwt(good), spec: { issuer: good, audience: "a", tls } }],
        ["WebhookAuthenticator", { ...webhook(good), spec: { endpoint: good, tls } }],
      ] as const) {
        const decision = reviewAdmission(review({ kind: { group, version: "v1alpha1", kind }, object }));
        assert.equal(decision.review.response.allowed, true, kind);
        assert.match(
          decision.review.response.warnings?.[0] ?? "",
          /^spec\.tls\.certificateAuthorityData/,
          kind,
        );
      }
    });
  }

  it("validates a WebhookAuthenticator by the review's kind", () => {
    const decision = reviewAdmission(
      review({
        kind: { group, version: "v1alpha1", kind: "WebhookAuthenticator" },
        object: webhook("https:///authenticate"),
      }),
    );
    assert.equal(decision.kind, "WebhookAuthenticator");
    assert.deepEqual(decision.review.response.warnings, [
      'spec.endpoint: Invalid value: "https:///authenticate": URL must have a host',
    ]);
  });

  it("admits an UPDATE with a problem, warning about it", () => {
    const decision = reviewAdmission(
      review({ operation: "UPDATE", object: jwt(query), oldObject: jwt(good) }),
    );
    assert.equal(decision.allowed, true);
    assert.deepEqual(decision.review.response.warnings, [queryError]);
  });

  // Our addition's one rule, which used to be a CEL rule in the CRD: still refused, in the words
  // kube-apiserver gave it.
  const withAudiences = (audienceMatchPolicy?: string) => ({
    ...jwt(good),
    spec: {
      issuer: good,
      audience: "a",
      audiences: ["cli"],
      ...(audienceMatchPolicy ? { audienceMatchPolicy } : {}),
    },
  });
  it("refuses audiences without audienceMatchPolicy", () => {
    const decision = reviewAdmission(review({ object: withAudiences() }));
    assert.deepEqual(decision.review.response, {
      uid: "705ab4f5-6393-11e8-b7cc-42010a800002",
      allowed: false,
      status: {
        status: "Failure",
        code: 422,
        reason: "Invalid",
        message:
          "spec.audienceMatchPolicy: Required value: audienceMatchPolicy must be MatchAny when audiences is set",
      },
    });
    assert.deepEqual(decision.deniedFields, ["spec.audienceMatchPolicy"]);
    assert.equal(reviewAdmission(review({ object: withAudiences("MatchAny") })).allowed, true);
  });

  it("refuses that only in an UPDATE that introduces it (ratcheting)", () => {
    const update = (oldObject: unknown) =>
      reviewAdmission(review({ operation: "UPDATE", object: withAudiences(), oldObject })).allowed;
    assert.equal(update(withAudiences("MatchAny")), false);
    assert.equal(update(withAudiences()), true);
  });

  it("allows a DELETE, even of a bad object", () => {
    const decision = reviewAdmission(review({ operation: "DELETE", oldObject: jwt(query) }));
    assert.equal(decision.allowed, true);
  });

  it("takes the name from the object when the request has none (generateName)", () => {
    const decision = reviewAdmission(review({ object: jwt(good) }));
    assert.equal(decision.name, "corp");
    assert.equal(reviewAdmission(review({ name: "given", object: jwt(good) })).name, "given");
  });

  const badRequests: [string, Record<string, unknown>, string][] = [
    [
      "another kind",
      { kind: { group: "", version: "v1", kind: "ConfigMap" }, object: { metadata: { name: "x" } } },
      'this webhook validates only JWTAuthenticator and WebhookAuthenticator in authentication.concierge.pinniped.dev/v1alpha1, not kind "ConfigMap" in "/v1"',
    ],
    [
      "our kind in another version",
      { kind: { group, version: "v1beta1", kind: "JWTAuthenticator" }, object: jwt(good) },
      'this webhook validates only JWTAuthenticator and WebhookAuthenticator in authentication.concierge.pinniped.dev/v1alpha1, not kind "JWTAuthenticator" in "authentication.concierge.pinniped.dev/v1beta1"',
    ],
    [
      "a subresource",
      { subResource: "status", object: jwt(good) },
      'this webhook validates only JWTAuthenticator and WebhookAuthenticator in authentication.concierge.pinniped.dev/v1alpha1, not kind "JWTAuthenticator"/status in "authentication.concierge.pinniped.dev/v1alpha1"',
    ],
    [
      "no kind at all",
      { kind: undefined, object: jwt(good) },
      'this webhook validates only JWTAuthenticator and WebhookAuthenticator in authentication.concierge.pinniped.dev/v1alpha1, not kind undefined in "undefined/undefined"',
    ],
    [
      "a CONNECT",
      { operation: "CONNECT", object: jwt(good) },
      'operation "CONNECT" is not validated by this webhook',
    ],
    [
      "a deeply nested kind",
      {
        kind: { group: JSON.parse(`${"[".repeat(5000)}${"]".repeat(5000)}`), version: "v1", kind: "X" },
        object: jwt(good),
      },
      'this webhook validates only JWTAuthenticator and WebhookAuthenticator in authentication.concierge.pinniped.dev/v1alpha1, not kind "X" in "?/v1"',
    ],
    ["a CREATE without an object", {}, "request.object is missing"],
    ["a CREATE whose object is not an object", { object: [jwt(good)] }, "request.object is missing"],
  ];
  for (const [name, request, message] of badRequests) {
    it(`denies ${name} with 400 BadRequest`, () => {
      const decision = reviewAdmission(review(request));
      assert.equal(decision.allowed, false);
      assert.deepEqual(decision.review.response.status, {
        status: "Failure",
        code: 400,
        reason: "BadRequest",
        message,
      });
    });
  }

  const malformed: [string, unknown, RegExp][] = [
    ["a body that is not an object", [1, 2], /not a JSON object/],
    ["null", null, /not a JSON object/],
    [
      "a deeply nested apiVersion",
      { apiVersion: JSON.parse(`${"[".repeat(5000)}${"]".repeat(5000)}`), kind: "AdmissionReview" },
      /^expected an AdmissionReview in admission.k8s.io\/v1, got kind "AdmissionReview" in an array$/,
    ],
    [
      "a long kind",
      { apiVersion: "admission.k8s.io/v1", kind: "K".repeat(100_000) },
      /^expected an AdmissionReview in admission.k8s.io\/v1, got kind a string of 100000 characters in "admission.k8s.io\/v1"$/,
    ],
    [
      "another API version",
      { apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview", request: { uid: "u" } },
      /expected an AdmissionReview in admission.k8s.io\/v1, got kind "AdmissionReview" in "admission.k8s.io\/v1beta1"/,
    ],
    ["another kind", { apiVersion: "admission.k8s.io/v1", kind: "Status" }, /got kind "Status"/],
    ["no request", { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }, /request is missing/],
    [
      "no uid",
      { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: { operation: "CREATE" } },
      /request.uid is missing/,
    ],
  ];
  for (const [name, body, message] of malformed) {
    it(`throws MalformedAdmissionReview for ${name}`, () => {
      assert.throws(
        () => reviewAdmission(body),
        (err: unknown) => err instanceof MalformedAdmissionReview && message.test(err.message),
      );
    });
  }
});
