import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { tokenCredentialRequest, whoAmIRequest } from "../apis/index.ts";
import { kindShape, type StrictDecoding, strictDecodingError, strictErrors } from "./strictdecode.ts";

const tcr = kindShape(tokenCredentialRequest.schema);
const who = kindShape(whoAmIRequest.schema);
const errorsOf = (text: string, shape = tcr) => {
  JSON.parse(text); // the handler only ever scans what JSON.parse took
  return strictErrors(text, shape);
};

describe("strictErrors", () => {
  it("finds nothing in what the CLIs send", () => {
    const body = {
      apiVersion: "login.concierge.pinniped.dev/v1alpha1",
      kind: "TokenCredentialRequest",
      metadata: { name: "", creationTimestamp: null, labels: { a: "b" } },
      spec: {
        token: 'a "quoted\\" token',
        authenticator: {
          apiGroup: "authentication.concierge.pinniped.dev",
          kind: "JWTAuthenticator",
          name: "x",
        },
        certificateSigningRequest: "-----BEGIN CERTIFICATE REQUEST-----\n",
      },
      status: { credential: { token: "t" }, message: "m" },
    };
    assert.deepEqual(errorsOf(JSON.stringify(body)), []);
    assert.deepEqual(errorsOf(JSON.stringify(body, null, 2)), []);
    assert.deepEqual(errorsOf("{}"), []);
  });

  it("names unknown fields by their path, as sigs.k8s.io/json does, without looking into them", () => {
    assert.deepEqual(
      errorsOf(
        '{"foo":{"bar":1},"spec":{"token":"t","foo":[{"x":1}],"authenticator":{"kind":"k","Name":"n"}},' +
          '"metadata":{"clusterName":"c","ownerReferences":[{"name":"a"},{"name":"b","extra":true}],' +
          '"managedFields":[{"fieldsV1":{"f:spec":{}}}]}}',
      ),
      [
        'unknown field "foo"',
        'unknown field "spec.foo"',
        'unknown field "spec.authenticator.Name"',
        'unknown field "metadata.clusterName"',
        'unknown field "metadata.ownerReferences[1].extra"',
      ],
    );
  });

  it("finds duplicate fields and map keys, each error once", () => {
    assert.deepEqual(
      errorsOf(
        '{"spec":{"token":"a","token":"b","token":"c"},"metadata":{"labels":{"x":"1","x":"2"}},"kind":"TokenCredentialRequest","zz":1,"zz":2}',
      ),
      ['duplicate field "spec.token"', 'duplicate field "metadata.labels.x"', 'unknown field "zz"'],
    );
  });

  it("decodes escaped keys and quotes them as Go's %q", () => {
    assert.deepEqual(errorsOf('{"spec":{"t\\u006fken":"a","\\u0001\\"x":1}}'), [
      'unknown field "spec.\\x01\\"x"',
    ]);
  });

  it("takes every spec field of a WhoAmIRequest as unknown: its spec is an empty struct", () => {
    assert.deepEqual(
      errorsOf('{"spec":{"foo":1},"status":{"kubernetesUserInfo":{"user":{"extra":{"a":["b"]}}}}}', who),
      ['unknown field "spec.foo"'],
    );
  });

  it("skips deep nesting without recursion, and stops at 100 errors", () => {
    const deep = `{"spec":{"foo":${"[".repeat(100_000)}${"]".repeat(100_000)}},"spec2":1}`;
    assert.deepEqual(errorsOf(deep), ['unknown field "spec.foo"', 'unknown field "spec2"']);
    const many = `{${Array.from({ length: 150 }, (_, i) => `"f${i}":${i}`).join(",")}}`;
    const errors = errorsOf(many);
    assert.equal(errors.length, 100);
    assert.equal(errors[99], 'unknown field "f99"');
  });

  it("leaves values of the wrong type to the handler's decoding", () => {
    assert.deepEqual(errorsOf('{"spec":"x","metadata":[1],"status":null}'), []);
  });
});

describe("strictDecodingError", () => {
  const strict = (directive: StrictDecoding["directive"]): StrictDecoding => ({
    directive,
    errors: ['unknown field "spec.foo"', 'duplicate field "spec.token"'],
    warnings: [],
  });

  it("refuses under Strict, warns under Warn, says nothing under Ignore", () => {
    const s = strict("Strict");
    assert.equal(
      strictDecodingError(s),
      'strict decoding error: unknown field "spec.foo", duplicate field "spec.token"',
    );
    assert.deepEqual(s.warnings, []);
    const w = strict("Warn");
    assert.equal(strictDecodingError(w), undefined);
    assert.deepEqual(w.warnings, w.errors);
    const i = strict("Ignore");
    assert.equal(strictDecodingError(i), undefined);
    assert.deepEqual(i.warnings, []);
    assert.equal(strictDecodingError(undefined), undefined);
  });
});
