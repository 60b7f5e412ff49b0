// Bad input for the admission webhook: each request gets its exact HTTP status and message, as a
// Status (the request is not a review this webhook can answer), a denial, or a warning on an
// admitted object (what upstream's CRDs accept, whose problems the reconcilers then report).
import assert from "node:assert/strict";
import { request } from "node:https";
import { after, before, describe, it } from "node:test";
import { ServingCertHolder } from "../../certs/servingcert.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { startWebhookServer, validatePath, type WebhookServer } from "../../webhooks/server.ts";
import { testCA } from "../harness/tls.ts";

const group = "authentication.concierge.pinniped.dev";
const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
const maxBodyBytes = 16 * 1024;

const review = (req: Record<string, unknown>) =>
  JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "u-1",
      kind: { group, version: "v1alpha1", kind: "JWTAuthenticator" },
      operation: "CREATE",
      ...req,
    },
  });
const jwt = (spec: Record<string, unknown>) => ({
  apiVersion: `${group}/v1alpha1`,
  kind: "JWTAuthenticator",
  metadata: { name: "corp" },
  spec: { issuer: "https://issuer.example.com", audience: "concierge", ...spec },
});
const webhook = (spec: Record<string, unknown>) => ({
  apiVersion: `${group}/v1alpha1`,
  kind: "WebhookAuthenticator",
  metadata: { name: "hook" },
  spec: { endpoint: "https://hook.example.com/", ...spec },
});
const webhookKind = { group, version: "v1alpha1", kind: "WebhookAuthenticator" };
const only =
  "this webhook validates only JWTAuthenticator and WebhookAuthenticator in authentication.concierge.pinniped.dev/v1alpha1";
const metadataAddress = (ip: string) =>
  `host ${ip} is a link-local or cloud metadata address, which is not dialled unless outbound.allowLinkLocalAddresses in the Concierge config allows it`;

interface Send {
  method?: string;
  path?: string;
  contentType?: string;
  body?: string;
}

const statusCases: [string, Send, number, string][] = [
  ["another path", { path: "/validate", body: "{}" }, 404, 'no such path "/validate"'],
  [
    "a path with a trailing slash",
    { path: `${validatePath}/`, body: "{}" },
    404,
    `no such path "${validatePath}/"`,
  ],
  ["GET", { method: "GET" }, 405, "method GET is not allowed; use POST"],
  ["PUT", { method: "PUT", body: "{}" }, 405, "method PUT is not allowed; use POST"],
  ["no content type", { contentType: "", body: "{}" }, 415, 'content type "" is not application/json'],
  [
    "YAML",
    { contentType: "application/yaml", body: "a: b" },
    415,
    'content type "application/yaml" is not application/json',
  ],
  ["an empty body", { body: "" }, 400, "the body is not valid JSON"],
  ["a lone brace", { body: "{" }, 400, "the body is not valid JSON"],
  ["unbalanced nesting", { body: "[".repeat(4000) }, 400, "the body is not valid JSON"],
  ["null", { body: "null" }, 400, "the body is not a JSON object"],
  ["an array", { body: "[]" }, 400, "the body is not a JSON object"],
  ["4,000 nested arrays", { body: deep(4000) }, 400, "the body is not a JSON object"],
  [
    "no apiVersion or kind",
    { body: "{}" },
    400,
    "expected an AdmissionReview in admission.k8s.io/v1, got kind undefined in undefined",
  ],
  [
    "v1beta1",
    { body: '{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}' },
    400,
    'expected an AdmissionReview in admission.k8s.io/v1, got kind "AdmissionReview" in "admission.k8s.io/v1beta1"',
  ],
  [
    "a Status",
    { body: '{"apiVersion":"v1","kind":"Status"}' },
    400,
    'expected an AdmissionReview in admission.k8s.io/v1, got kind "Status" in "v1"',
  ],
  [
    "an apiVersion of nested arrays",
    { body: `{"apiVersion":${deep(3000)},"kind":"AdmissionReview"}` },
    400,
    'expected an AdmissionReview in admission.k8s.io/v1, got kind "AdmissionReview" in an array',
  ],
  [
    "a kind that is a long string",
    { body: JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "A".repeat(300) }) },
    400,
    'expected an AdmissionReview in admission.k8s.io/v1, got kind a string of 300 characters in "admission.k8s.io/v1"',
  ],
  [
    "no request",
    { body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}' },
    400,
    "request is missing",
  ],
  [
    "a request that is a list",
    { body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":[]}' },
    400,
    "request is missing",
  ],
  ["no uid", { body: review({ uid: undefined }) }, 400, "request.uid is missing"],
  ["an empty uid", { body: review({ uid: "" }) }, 400, "request.uid is missing"],
  ["a uid that is a number", { body: review({ uid: 7 }) }, 400, "request.uid is missing"],
  [
    "a body past the limit without a review in front",
    { body: " ".repeat(maxBodyBytes + 1) },
    413,
    `the object is too large to validate: the review is larger than ${maxBodyBytes} bytes`,
  ],
];

const reviewCases: [
  string,
  string,
  { allowed: boolean; code?: number; message?: string; warning?: string },
][] = [
  [
    "a ConfigMap",
    review({ kind: { group: "", version: "v1", kind: "ConfigMap" }, object: {} }),
    { allowed: false, code: 400, message: `${only}, not kind "ConfigMap" in "/v1"` },
  ],
  [
    "our kind in v1beta1",
    review({ kind: { group, version: "v1beta1", kind: "JWTAuthenticator" }, object: jwt({}) }),
    { allowed: false, code: 400, message: `${only}, not kind "JWTAuthenticator" in "${group}/v1beta1"` },
  ],
  [
    "the status subresource",
    review({ subResource: "status", object: jwt({}) }),
    {
      allowed: false,
      code: 400,
      message: `${only}, not kind "JWTAuthenticator"/status in "${group}/v1alpha1"`,
    },
  ],
  [
    "a kind whose group is nested arrays",
    review({ kind: { group: JSON.parse(deep(2000)), version: "v1", kind: "X" }, object: {} }),
    { allowed: false, code: 400, message: `${only}, not kind "X" in "?/v1"` },
  ],
  [
    "a CONNECT",
    review({ operation: "CONNECT", object: jwt({}) }),
    { allowed: false, code: 400, message: 'operation "CONNECT" is not validated by this webhook' },
  ],
  [
    "an operation of 300 characters",
    review({ operation: "O".repeat(300), object: jwt({}) }),
    {
      allowed: false,
      code: 400,
      message: "operation a string of 300 characters is not validated by this webhook",
    },
  ],
  [
    "a CREATE without an object",
    review({}),
    { allowed: false, code: 400, message: "request.object is missing" },
  ],
  [
    "a CREATE of a list",
    review({ object: [jwt({})] }),
    { allowed: false, code: 400, message: "request.object is missing" },
  ],
  [
    "a DELETE of a bad object",
    review({ operation: "DELETE", oldObject: jwt({ issuer: "http://x" }) }),
    { allowed: true },
  ],
  [
    "an http issuer",
    review({ object: jwt({ issuer: "http://issuer.example.com" }) }),
    {
      allowed: true,
      warning: `spec.issuer: Invalid value: "http://issuer.example.com": spec.issuer in body should match '^https://'`,
    },
  ],
  [
    "an issuer with a query",
    review({ object: jwt({ issuer: "https://issuer.example.com?a=b" }) }),
    {
      allowed: true,
      warning: 'spec.issuer: Invalid value: "https://issuer.example.com?a=b": cannot include query params',
    },
  ],
  [
    "an issuer with a fragment",
    review({ object: jwt({ issuer: "https://issuer.example.com#x" }) }),
    {
      allowed: true,
      warning: 'spec.issuer: Invalid value: "https://issuer.example.com#x": cannot include fragment',
    },
  ],
  [
    "an issuer with a password",
    review({ object: jwt({ issuer: "https://u:secret@issuer.example.com" }) }),
    {
      allowed: true,
      warning:
        'spec.issuer: Invalid value: "https://u:xxxxx@issuer.example.com": URL must not contain a username or password',
    },
  ],
  [
    "an issuer on the metadata address",
    review({ object: jwt({ issuer: "https://169.254.169.254" }) }),
    {
      allowed: true,
      warning: `spec.issuer: Invalid value: "https://169.254.169.254": ${metadataAddress("169.254.169.254")}`,
    },
  ],
  [
    "an issuer on an IPv6 link-local address",
    review({ object: jwt({ issuer: "https://[fe80::a]" }) }),
    {
      allowed: true,
      warning: `spec.issuer: Invalid value: "https://[fe80::a]": ${metadataAddress("fe80::a")}`,
    },
  ],
  [
    "an endpoint on the metadata address",
    review({ kind: webhookKind, object: webhook({ endpoint: "https://169.254.169.254/x" }) }),
    {
      allowed: true,
      warning: `spec.endpoint: Invalid value: "https://169.254.169.254/x": ${metadataAddress("169.254.169.254")}`,
    },
  ],
  [
    "an endpoint on the mapped metadata address",
    review({ kind: webhookKind, object: webhook({ endpoint: "https://[::ffff:169.254.169.254]/" }) }),
    {
      allowed: true,
      warning: `spec.endpoint: Invalid value: "https://[::ffff:169.254.169.254]/": ${metadataAddress("::ffff:169.254.169.254")}`,
    },
  ],
  [
    "an endpoint on Alibaba's metadata address",
    review({ kind: webhookKind, object: webhook({ endpoint: "https://100.100.100.200/" }) }),
    {
      allowed: true,
      warning: `spec.endpoint: Invalid value: "https://100.100.100.200/": ${metadataAddress("100.100.100.200")}`,
    },
  ],
  [
    "an endpoint with a password",
    review({ kind: webhookKind, object: webhook({ endpoint: "https://u:p@hook.example.com/" }) }),
    {
      allowed: true,
      warning:
        'spec.endpoint: Invalid value: "https://u:xxxxx@hook.example.com/": URL must not contain a username or password',
    },
  ],
  [
    "an endpoint without a host",
    review({ kind: webhookKind, object: webhook({ endpoint: "https:///x" }) }),
    {
      allowed: true,
      warning: 'spec.endpoint: Invalid value: "https:///x": URL must have a host',
    },
  ],
  [
    "a CA that is not base64",
    review({ object: jwt({ tls: { certificateAuthorityData: "!!" } }) }),
    {
      allowed: true,
      warning:
        'spec.tls.certificateAuthorityData: Invalid value: "<omitted>": illegal base64 data at input byte 0',
    },
  ],
  [
    "a CEL expression that does not parse",
    review({ object: jwt({ claims: { usernameExpression: "claims.(" } }) }),
    {
      allowed: true,
      warning:
        'spec.claims.usernameExpression: Invalid value: "claims.(": compilation failed: Expected IDENTIFIER, got LPAREN',
    },
  ],
  [
    "a review too large to read",
    review({ object: jwt({ tls: { certificateAuthorityData: "A".repeat(maxBodyBytes) } }) }),
    {
      allowed: false,
      code: 413,
      message: `the object is too large to validate: the review is larger than ${maxBodyBytes} bytes`,
    },
  ],
];

describe(`admission webhook bad input (${statusCases.length + reviewCases.length} cases)`, () => {
  let server: WebhookServer;
  let caPEM: string;
  const logs = memoryLogger("debug");

  before(async () => {
    const ca = await testCA("bad input webhook CA");
    caPEM = ca.caPEM;
    const certs = new ServingCertHolder();
    certs.set(await ca.issue({ cn: "webhook", ips: ["127.0.0.1"] }));
    server = await startWebhookServer({ certs, host: "127.0.0.1", port: 0, logger: logs.log, maxBodyBytes });
  });
  after(() => server?.close());

  function send(s: Send): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const body = s.body ?? "";
      const req = request(
        {
          host: "127.0.0.1",
          port: server.port,
          method: s.method ?? "POST",
          path: s.path ?? validatePath,
          ca: caPEM,
          agent: false,
          headers: {
            ...(s.contentType === "" ? {} : { "content-type": s.contentType ?? "application/json" }),
            "content-length": String(Buffer.byteLength(body)),
          },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            text += c;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  for (const [name, s, status, message] of statusCases) {
    it(`${name}: ${status}`, async () => {
      const reply = await send(s);
      assert.equal(reply.status, status, reply.body);
      const answer = JSON.parse(reply.body);
      assert.equal(answer.kind, "Status");
      assert.equal(answer.code, status);
      assert.equal(answer.message, message);
    });
  }

  for (const [name, body, want] of reviewCases) {
    it(`${name}: ${want.allowed ? (want.warning ? "allowed with a warning" : "allowed") : `denied with ${want.code}`}`, async () => {
      const reply = await send({ body });
      assert.equal(reply.status, 200, reply.body);
      const { response } = JSON.parse(reply.body);
      assert.equal(response.uid, "u-1");
      assert.equal(response.allowed, want.allowed);
      if (!want.allowed) {
        assert.equal(response.status.code, want.code);
        assert.equal(response.status.message, want.message);
      }
      // What upstream's CRDs accept is admitted, with the problem as a warning kubectl prints.
      assert.deepEqual(response.warnings, want.warning === undefined ? undefined : [want.warning]);
    });
  }

  it("logged nothing at error level", () => {
    assert.deepEqual(
      logs.lines.filter((l) => l.level === "error"),
      [],
    );
  });
});
