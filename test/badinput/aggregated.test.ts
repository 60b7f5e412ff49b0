// Bad input for the aggregated API (TokenCredentialRequest and WhoAmIRequest), each case with the
// exact status and message it must get, over HTTP/1.1 and HTTP/2 alike. None may answer 500, echo
// the body back, or log at error level.
import assert from "node:assert/strict";
import { connect } from "node:http2";
import { request } from "node:https";
import { after, before, describe, it } from "node:test";
import { AuthenticatorCache, authenticationGroup } from "../../authenticators/cache.ts";
import { ServingCertHolder } from "../../certs/servingcert.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { type AggregatedAPIServer, startAggregatedAPIServer } from "../../server/aggregated.ts";
import { FrontProxyConfigHolder } from "../../server/frontproxy.ts";
import { type TestPKI, testPKI } from "../harness/frontproxy-pki.ts";

const login = "/apis/login.concierge.pinniped.dev/v1alpha1";
const identity = "/apis/identity.concierge.pinniped.dev/v1alpha1";
const tcrs = `${login}/tokencredentialrequests`;
const whos = `${identity}/whoamirequests`;
const maxBodyBytes = 8192;

interface Case {
  name: string;
  method?: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  /** No front-proxy client certificate. */
  anonymous?: boolean;
  status: number;
  /** The Status message, or for 201 the status.message of the answer. */
  message: string;
}

const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;
const tcrBody = (spec: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    apiVersion: "login.concierge.pinniped.dev/v1alpha1",
    kind: "TokenCredentialRequest",
    spec,
    ...extra,
  });
const ref = { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" };
const cannot = (why: string) =>
  `TokenCredentialRequest in version "v1alpha1" cannot be handled as a TokenCredentialRequest: ${why}`;
const notJSON = "the body of the request is not valid JSON";
const failed = "authentication failed";

const shapes: [string, string, string][] = [
  ["null", "null", "the body is null, not a JSON object"],
  ["true", "true", "the body is a boolean, not a JSON object"],
  ["a number", "12", "the body is a number, not a JSON object"],
  ["a huge number", "1e999", "the body is a number, not a JSON object"],
  ["a string", '"x"', "the body is a string, not a JSON object"],
  ["an empty array", "[]", "the body is an array, not a JSON object"],
  ["an array of objects", '[{"kind":"x"}]', "the body is an array, not a JSON object"],
  ["5,000 nested arrays", deep(2000), "the body is an array, not a JSON object"],
];

function kindCases(path: string, kind: string, apiVersion: string): Case[] {
  const not = (why: string) => `not a ${kind}: ${why}`;
  return [
    ...shapes.map(
      ([name, body, why]): Case => ({ name: `${kind}: ${name}`, path, body, status: 400, message: not(why) }),
    ),
    {
      name: `${kind}: apiVersion v1`,
      path,
      body: '{"apiVersion":"v1"}',
      status: 400,
      message: not(`apiVersion must be "${apiVersion}"`),
    },
    {
      name: `${kind}: apiVersion as a number`,
      path,
      body: '{"apiVersion":1}',
      status: 400,
      message: not(`apiVersion must be "${apiVersion}"`),
    },
    {
      name: `${kind}: apiVersion null`,
      path,
      body: '{"apiVersion":null}',
      status: 400,
      message: not(`apiVersion must be "${apiVersion}"`),
    },
    {
      name: `${kind}: apiVersion deeply nested`,
      path,
      body: `{"apiVersion":${deep(1500)}}`,
      status: 400,
      message: not(`apiVersion must be "${apiVersion}"`),
    },
    {
      name: `${kind}: apiVersion with another case`,
      path,
      body: JSON.stringify({ apiVersion: apiVersion.toUpperCase() }),
      status: 400,
      message: not(`apiVersion must be "${apiVersion}"`),
    },
    {
      name: `${kind}: apiVersion with a trailing space`,
      path,
      body: JSON.stringify({ apiVersion: `${apiVersion} ` }),
      status: 400,
      message: not(`apiVersion must be "${apiVersion}"`),
    },
    {
      name: `${kind}: apiVersion of a long string`,
      path,
      body: JSON.stringify({ apiVersion: "v".repeat(6000) }),
      status: 400,
      message: not(`apiVersion must be "${apiVersion}"`),
    },
    {
      name: `${kind}: another kind`,
      path,
      body: JSON.stringify({ apiVersion, kind: "Secret" }),
      status: 400,
      message: not(`kind must be "${kind}"`),
    },
    {
      name: `${kind}: kind as an object`,
      path,
      body: JSON.stringify({ apiVersion, kind: {} }),
      status: 400,
      message: not(`kind must be "${kind}"`),
    },
    {
      name: `${kind}: kind deeply nested objects`,
      path,
      body: `{"kind":${deepObject(1000)}}`,
      status: 400,
      message: not(`kind must be "${kind}"`),
    },
    {
      name: `${kind}: kind in lower case`,
      path,
      body: JSON.stringify({ kind: kind.toLowerCase() }),
      status: 400,
      message: not(`kind must be "${kind}"`),
    },
    { name: `${kind}: empty body`, path, body: "", status: 400, message: notJSON },
    { name: `${kind}: a lone brace`, path, body: "{", status: 400, message: notJSON },
    { name: `${kind}: single quotes`, path, body: "{'kind':'x'}", status: 400, message: notJSON },
    { name: `${kind}: trailing garbage`, path, body: "{}}", status: 400, message: notJSON },
    { name: `${kind}: a trailing comma`, path, body: '{"a":1,}', status: 400, message: notJSON },
    { name: `${kind}: a comment`, path, body: "{/* x */}", status: 400, message: notJSON },
    { name: `${kind}: NaN`, path, body: '{"a":NaN}', status: 400, message: notJSON },
    { name: `${kind}: a raw control character`, path, body: '{"a":"\u0001"}', status: 400, message: notJSON },
    { name: `${kind}: unbalanced nesting`, path, body: "[".repeat(3000), status: 400, message: notJSON },
    { name: `${kind}: a byte-order mark`, path, body: "\ufeff{}", status: 400, message: notJSON },
    {
      name: `${kind}: invalid UTF-8 inside a string`,
      path,
      body:
        kind === "WhoAmIRequest"
          ? '{"a":"\xff"}'
          : `{"spec":{"token":"\xff","authenticator":${JSON.stringify(ref)}}}`,
      headers: { "x-latin1": "1" },
      status: 201,
      message: kind === "WhoAmIRequest" ? "" : failed,
    },
    {
      name: `${kind}: YAML`,
      path,
      body: "kind: x",
      headers: { "content-type": "application/yaml" },
      status: 415,
      message:
        "the body of the request was in an unknown format - accepted media types include: application/json",
    },
    {
      name: `${kind}: protobuf`,
      path,
      body: "\x6b\x38\x73\x00",
      headers: { "content-type": "application/vnd.kubernetes.protobuf" },
      status: 415,
      message:
        "the body of the request was in an unknown format - accepted media types include: application/json",
    },
    {
      name: `${kind}: text/plain`,
      path,
      body: "{}",
      headers: { "content-type": "text/plain" },
      status: 415,
      message:
        "the body of the request was in an unknown format - accepted media types include: application/json",
    },
    {
      name: `${kind}: a form`,
      path,
      body: "a=b",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      status: 415,
      message:
        "the body of the request was in an unknown format - accepted media types include: application/json",
    },
    {
      name: `${kind}: accept protobuf only`,
      path,
      body: "{}",
      headers: { accept: "application/vnd.kubernetes.protobuf" },
      status: 406,
      message: "only the following media types are accepted: application/json",
    },
    {
      name: `${kind}: accept YAML only`,
      path,
      body: "{}",
      headers: { accept: "application/yaml" },
      status: 406,
      message: "only the following media types are accepted: application/json",
    },
    {
      name: `${kind}: accept a Table on create`,
      path,
      body: "{}",
      headers: { accept: "application/json;as=Table;g=meta.k8s.io;v=v1" },
      status: 406,
      message: "only the following media types are accepted: application/json",
    },
    {
      name: `${kind}: a body over the limit`,
      path,
      body: JSON.stringify({ pad: "x".repeat(maxBodyBytes) }),
      status: 413,
      message: `the request body is larger than ${maxBodyBytes} bytes`,
    },
    {
      name: `${kind}: a namespace in the path`,
      path: path.replace(/\/(\w+)$/, "/namespaces/default/$1"),
      body: kind === "WhoAmIRequest" ? "{}" : tcrBody({ token: "t", authenticator: ref }),
      status: 400,
      message: `namespace is not allowed on ${kind}: default`,
    },
    {
      name: `${kind}: dryRun=All`,
      path: `${path}?dryRun=All`,
      body: kind === "WhoAmIRequest" ? "{}" : tcrBody({ token: "t", authenticator: ref }),
      status: 422,
      message: `.${apiVersion.split("/")[0]} "" is invalid: dryRun: Unsupported value: []string{"All"}`,
    },
    {
      name: `${kind}: dryRun=Bogus`,
      path: `${path}?dryRun=Bogus`,
      body: kind === "WhoAmIRequest" ? "{}" : tcrBody({ token: "t", authenticator: ref }),
      status: 422,
      message: `CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Bogus"}: supported values: "All"`,
    },
    {
      name: `${kind}: dryRun twice`,
      path: `${path}?dryRun=All&dryRun=x`,
      body: kind === "WhoAmIRequest" ? "{}" : tcrBody({ token: "t", authenticator: ref }),
      status: 422,
      message: `CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"All", "x"}: supported values: "All"`,
    },
    {
      name: `${kind}: PUT`,
      method: "PUT",
      path,
      body: "{}",
      status: 405,
      message: "the server does not allow this method on the requested resource",
    },
    {
      name: `${kind}: DELETE`,
      method: "DELETE",
      path,
      status: 405,
      message: "the server does not allow this method on the requested resource",
    },
    {
      name: `${kind}: PATCH`,
      method: "PATCH",
      path,
      body: "{}",
      status: 405,
      message: "the server does not allow this method on the requested resource",
    },
    {
      name: `${kind}: GET of a name`,
      path: `${path}/x`,
      status: 404,
      message: "the server could not find the requested resource",
    },
    {
      name: `${kind}: a subresource`,
      method: "POST",
      path: `${path}/x/status`,
      body: "{}",
      status: 404,
      message: "the server could not find the requested resource",
    },
    {
      name: `${kind}: without a front-proxy certificate`,
      path,
      body: "{}",
      anonymous: true,
      status: 401,
      message: "Unauthorized",
    },
  ];
}

const tcrCases: Case[] = [
  {
    name: "metadata as a string",
    path: tcrs,
    body: tcrBody({}, { metadata: "x" }),
    status: 400,
    message: cannot("metadata must be an object"),
  },
  {
    name: "metadata as an array",
    path: tcrs,
    body: tcrBody({}, { metadata: [] }),
    status: 400,
    message: cannot("metadata must be an object"),
  },
  {
    name: "metadata.name as a number",
    path: tcrs,
    body: tcrBody({}, { metadata: { name: 1 } }),
    status: 400,
    message: cannot("metadata.name must be a string"),
  },
  {
    name: "metadata.name deeply nested",
    path: tcrs,
    body: `{"metadata":{"name":${deep(1500)}}}`,
    status: 400,
    message: cannot("metadata.name must be a string"),
  },
  {
    name: "spec as a string",
    path: tcrs,
    body: tcrBody("token"),
    status: 400,
    message: cannot("spec must be an object"),
  },
  {
    name: "spec as an array",
    path: tcrs,
    body: tcrBody([{ token: "t" }]),
    status: 400,
    message: cannot("spec must be an object"),
  },
  {
    name: "spec as a number",
    path: tcrs,
    body: tcrBody(0),
    status: 400,
    message: cannot("spec must be an object"),
  },
  {
    name: "spec.token as a number",
    path: tcrs,
    body: tcrBody({ token: 5 }),
    status: 400,
    message: cannot("spec.token must be a string"),
  },
  {
    name: "spec.token as an array",
    path: tcrs,
    body: tcrBody({ token: ["a"] }),
    status: 400,
    message: cannot("spec.token must be a string"),
  },
  {
    name: "spec.token as an object",
    path: tcrs,
    body: tcrBody({ token: { value: "a" } }),
    status: 400,
    message: cannot("spec.token must be a string"),
  },
  {
    name: "spec.token as true",
    path: tcrs,
    body: tcrBody({ token: true }),
    status: 400,
    message: cannot("spec.token must be a string"),
  },
  {
    name: "spec.token deeply nested",
    path: tcrs,
    body: `{"spec":{"token":${deep(1500)}}}`,
    status: 400,
    message: cannot("spec.token must be a string"),
  },
  {
    name: "spec.authenticator as a string",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: "corp" }),
    status: 400,
    message: cannot("spec.authenticator must be an object"),
  },
  {
    name: "spec.authenticator as an array",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: [ref] }),
    status: 400,
    message: cannot("spec.authenticator must be an object"),
  },
  {
    name: "spec.authenticator.apiGroup as a number",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: { ...ref, apiGroup: 1 } }),
    status: 400,
    message: cannot("spec.authenticator.apiGroup must be a string"),
  },
  {
    name: "spec.authenticator.kind as an object",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: { ...ref, kind: {} } }),
    status: 400,
    message: cannot("spec.authenticator.kind must be a string"),
  },
  {
    name: "spec.authenticator.kind as null",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: { ...ref, kind: null } }),
    status: 201,
    message: failed,
  },
  {
    name: "spec.authenticator.name as an array",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: { ...ref, name: ["corp"] } }),
    status: 400,
    message: cannot("spec.authenticator.name must be a string"),
  },
  {
    name: "no token",
    path: tcrs,
    body: tcrBody({ authenticator: ref }),
    status: 422,
    message:
      '.login.concierge.pinniped.dev "" is invalid: spec.token.value: Required value: token must be supplied',
  },
  {
    name: "an empty token",
    path: tcrs,
    body: tcrBody({ token: "", authenticator: ref }),
    status: 422,
    message:
      '.login.concierge.pinniped.dev "" is invalid: spec.token.value: Required value: token must be supplied',
  },
  {
    name: "an empty token with a name",
    path: tcrs,
    body: tcrBody({ token: "" }, { metadata: { name: "me" } }),
    status: 422,
    message:
      '.login.concierge.pinniped.dev "me" is invalid: spec.token.value: Required value: token must be supplied',
  },
  {
    name: "null token",
    path: tcrs,
    body: tcrBody({ token: null, authenticator: ref }),
    status: 422,
    message:
      '.login.concierge.pinniped.dev "" is invalid: spec.token.value: Required value: token must be supplied',
  },
  {
    name: "no spec at all",
    path: tcrs,
    body: "{}",
    status: 422,
    message:
      '.login.concierge.pinniped.dev "" is invalid: spec.token.value: Required value: token must be supplied',
  },
  {
    name: "an unknown authenticator",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: { ...ref, name: "nope" } }),
    status: 201,
    message: failed,
  },
  {
    name: "an authenticator of another kind",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: { ...ref, kind: "WebhookAuthenticator" } }),
    status: 201,
    message: failed,
  },
  {
    name: "an authenticator without its group",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: { kind: "JWTAuthenticator", name: "corp" } }),
    status: 201,
    message: failed,
  },
  {
    name: "an authenticator of another group",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: { ...ref, apiGroup: "example.com" } }),
    status: 201,
    message: failed,
  },
  {
    name: "an authenticator whose name is __proto__",
    path: tcrs,
    body: tcrBody({ token: "t", authenticator: { ...ref, name: "__proto__" } }),
    status: 201,
    message: failed,
  },
  {
    name: "a token the authenticator rejects",
    path: tcrs,
    body: tcrBody({ token: "wrong", authenticator: ref }),
    status: 201,
    message: failed,
  },
  {
    name: "a token that makes the authenticator throw",
    path: tcrs,
    body: tcrBody({ token: "throw", authenticator: ref }),
    status: 201,
    message: failed,
  },
  {
    name: "a token of control characters",
    path: tcrs,
    body: tcrBody({ token: "\u0000\u0001\n", authenticator: ref }),
    status: 201,
    message: failed,
  },
  {
    name: "a token of 6 KB",
    path: tcrs,
    body: tcrBody({ token: "t".repeat(6000), authenticator: ref }),
    status: 201,
    message: failed,
  },
  {
    name: "a __proto__ key in the body",
    path: tcrs,
    body: '{"__proto__":{"spec":{"token":"x"}}}',
    status: 422,
    message:
      '.login.concierge.pinniped.dev "" is invalid: spec.token.value: Required value: token must be supplied',
  },
  {
    name: "a duplicated spec key, the last one counting",
    path: tcrs,
    body: '{"spec":{"token":"good"},"spec":{"token":""}}',
    status: 422,
    message:
      '.login.concierge.pinniped.dev "" is invalid: spec.token.value: Required value: token must be supplied',
  },
];

const otherCases: Case[] = [
  {
    name: "an unknown group",
    path: "/apis/example.com/v1/things",
    body: "{}",
    status: 404,
    message: "the server could not find the requested resource",
  },
  {
    name: "the core API",
    path: "/api/v1/namespaces",
    status: 404,
    message: "the server could not find the requested resource",
  },
  {
    name: "a POST to discovery",
    method: "POST",
    path: "/apis",
    body: "{}",
    status: 405,
    message: "the server does not allow this method on the requested resource",
  },
  {
    name: "an unknown OpenAPI path",
    path: "/openapi/v4",
    status: 404,
    message: "the server could not find the requested resource",
  },
  {
    name: "an OpenAPI document of an unknown group",
    path: "/openapi/v3/apis/example.com/v1",
    status: 404,
    message: "the server could not find the requested resource",
  },
  {
    name: "a list of a namespaced path",
    path: `${login}/namespaces/default/tokencredentialrequests`,
    status: 404,
    message: "the server could not find the requested resource",
  },
  {
    name: "a path of dot segments",
    path: `${login}/../../api/v1`,
    status: 404,
    message: "the server could not find the requested resource",
  },
  {
    name: "a percent-encoded resource",
    path: `${login}/tokencredential%72equests/x`,
    status: 404,
    message: "the server could not find the requested resource",
  },
  {
    name: "a list asking for protobuf only",
    path: tcrs,
    headers: { accept: "application/vnd.kubernetes.protobuf" },
    status: 406,
    message: "only the following media types are accepted: application/json",
  },
];

const cases: Case[] = [
  ...kindCases(tcrs, "TokenCredentialRequest", "login.concierge.pinniped.dev/v1alpha1"),
  ...tcrCases,
  ...kindCases(whos, "WhoAmIRequest", "identity.concierge.pinniped.dev/v1alpha1"),
  ...otherCases,
];

interface Reply {
  status: number;
  body: string;
}

describe(`aggregated API bad input (${cases.length} cases, each over HTTP/1.1 and HTTP/2)`, () => {
  let pki: TestPKI;
  let server: AggregatedAPIServer;
  const logs = memoryLogger("debug");

  before(async () => {
    pki = await testPKI();
    const certs = new ServingCertHolder();
    certs.set(pki.serving);
    const frontProxy = new FrontProxyConfigHolder();
    frontProxy.set(pki.config);
    const authenticators = new AuthenticatorCache();
    authenticators.store(ref, {
      fingerprint: "f",
      authenticator: {
        authenticateToken: async (token) => {
          if (token === "throw") throw new Error("the identity provider is down");
          return { authenticated: false, reason: "unknown token" };
        },
        close: () => {},
      },
    });
    server = await startAggregatedAPIServer({
      certs,
      frontProxy,
      host: "127.0.0.1",
      port: 0,
      authenticators,
      issuer: {
        issue: async () => {
          throw new Error("no token here is good");
        },
      },
      log: logs.log,
      maxBodyBytes,
    });
  });

  after(() => server?.close());

  const headersOf = (c: Case): Record<string, string> => {
    const { "x-latin1": _, ...rest } = c.headers ?? {};
    return {
      "x-remote-user": "someone",
      "x-remote-group": "system:authenticated",
      "content-type": "application/json",
      ...rest,
    };
  };
  const bodyOf = (c: Case) =>
    c.body === undefined ? undefined : Buffer.from(c.body, c.headers?.["x-latin1"] ? "latin1" : "utf8");
  const methodOf = (c: Case) => c.method ?? (c.body === undefined ? "GET" : "POST");

  function h1(c: Case): Promise<Reply> {
    const body = bodyOf(c);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: server.port,
          method: methodOf(c),
          path: c.path,
          ca: pki.servingCAPEM,
          ...(c.anonymous ? {} : { cert: pki.proxyClient.certPEM, key: pki.proxyClient.keyPEM }),
          agent: false,
          headers: { ...headersOf(c), ...(body ? { "content-length": String(body.length) } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
          );
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  function h2(c: Case): Promise<Reply> {
    const body = bodyOf(c);
    const session = connect(`https://127.0.0.1:${server.port}`, {
      ca: pki.servingCAPEM,
      ...(c.anonymous ? {} : { cert: pki.proxyClient.certPEM, key: pki.proxyClient.keyPEM }),
    });
    return new Promise<Reply>((resolve, reject) => {
      session.on("error", reject);
      const stream = session.request(
        { ":method": methodOf(c), ":path": c.path, ...headersOf(c) },
        { endStream: body === undefined },
      );
      if (body !== undefined) stream.end(body);
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        status = Number(h[":status"]);
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", reject);
      stream.on("end", () => resolve({ status, body: Buffer.concat(chunks).toString() }));
    }).finally(() => session.close());
  }

  for (const [protocol, send] of [
    ["HTTP/1.1", h1],
    ["HTTP/2", h2],
  ] as const) {
    describe(protocol, () => {
      for (const c of cases) {
        it(`${c.name}: ${c.status}`, async () => {
          const reply = await send(c);
          assert.equal(reply.status, c.status, reply.body.slice(0, 300));
          const answer = JSON.parse(reply.body) as { message?: string; status?: { message?: string } };
          const message = c.status === 201 ? (answer.status?.message ?? "") : answer.message;
          assert.equal(message, c.message);
          if (c.body && c.body.length > 40) {
            assert.ok(!reply.body.includes(c.body.slice(0, 40)), "the answer quotes the body");
          }
        });
      }
    });
  }

  it("logged nothing at error level for any of them", () => {
    assert.deepEqual(
      logs.lines.filter((l) => l.level === "error"),
      [],
    );
  });
});
