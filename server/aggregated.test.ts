import assert from "node:assert/strict";
import { type ClientHttp2Session, connect } from "node:http2";
import { request as h1request } from "node:https";
import { after, before, describe, it } from "node:test";
import { AuthenticatorCache, authenticationGroup } from "../authenticators/cache.ts";
import { ServingCertHolder } from "../certs/servingcert.ts";
import { memoryLogger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { type PEMPair, type TestPKI, testPKI } from "../test/harness/frontproxy-pki.ts";
import { type AggregatedAPIServer, startAggregatedAPIServer } from "./aggregated.ts";
import { FrontProxyConfigHolder } from "./frontproxy.ts";

interface Reply {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  json: () => Record<string, unknown>;
}

const login = "/apis/login.concierge.pinniped.dev/v1alpha1";
const identity = "/apis/identity.concierge.pinniped.dev/v1alpha1";
const adminHeaders: [string, string][] = [
  ["x-remote-user", "kubernetes-admin"],
  ["x-remote-group", "system:masters"],
  ["x-remote-group", "system:authenticated"],
  ["x-remote-extra-example.com%2ftenant", "acme"],
];

interface Call {
  method?: string;
  path: string;
  headers?: [string, string][];
  body?: string;
  client?: PEMPair;
}

describe("aggregated API server", () => {
  let pki: TestPKI;
  let server: AggregatedAPIServer;
  let certs: ServingCertHolder;
  const metrics = new Metrics();
  const logs = memoryLogger("debug");
  const sessions: ClientHttp2Session[] = [];

  before(async () => {
    pki = await testPKI();
    certs = new ServingCertHolder();
    certs.set(pki.serving);
    const frontProxy = new FrontProxyConfigHolder();
    frontProxy.set(pki.config);
    const authenticators = new AuthenticatorCache();
    authenticators.store(
      { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" },
      {
        fingerprint: "f",
        authenticator: {
          authenticateToken: async (token) =>
            token === "good"
              ? { authenticated: true, user: { username: "alice", groups: ["devs"] } }
              : { authenticated: false, reason: "bad token" },
          close: () => {},
        },
      },
    );
    server = await startAggregatedAPIServer({
      certs,
      frontProxy,
      host: "127.0.0.1",
      port: 0,
      authenticators,
      issuer: {
        issue: async ({ user, ttlSeconds }) => ({
          ok: true,
          credential: {
            type: "certificate",
            certificatePEM: `cert for ${user.username} in ${user.groups.join(",")}`,
            keyPEM: "key",
            notAfter: new Date(Date.now() + ttlSeconds * 1000),
          },
        }),
      },
      log: logs.log,
      metrics,
      maxBodyBytes: 4096,
    });
  });

  after(async () => {
    for (const s of sessions) s.destroy();
    await server?.close();
  });

  // HTTP/2, as kube-apiserver's aggregator speaks it.
  function h2(call: Call): Promise<Reply> {
    const client = call.client === undefined ? pki.proxyClient : call.client;
    const session = connect(`https://127.0.0.1:${server.port}`, {
      ca: pki.servingCAPEM,
      ...(client.certPEM ? { cert: client.certPEM, key: client.keyPEM } : {}),
    });
    sessions.push(session);
    return new Promise((resolve, reject) => {
      session.on("error", reject);
      // Raw pairs, so that repeated headers go out as separate fields, as Go sends them.
      const raw: string[] = [":method", call.method ?? "GET", ":path", call.path];
      for (const [k, v] of call.headers ?? adminHeaders) raw.push(k, v);
      const stream = session.request(raw as unknown as Record<string, string>, {
        endStream: call.body === undefined,
      });
      if (call.body !== undefined) stream.end(call.body);
      let body = "";
      let headers: Record<string, unknown> = {};
      stream.setEncoding("utf8");
      stream.on("response", (h) => {
        headers = h;
      });
      stream.on("data", (c: string) => {
        body += c;
      });
      stream.on("error", reject);
      stream.on("end", () => {
        session.close();
        const status = Number(headers[":status"]);
        resolve({ status, headers, body, json: () => JSON.parse(body) });
      });
    });
  }

  // HTTP/1.1, for clients without ALPN.
  function h1(call: Call): Promise<Reply> {
    const client = call.client === undefined ? pki.proxyClient : call.client;
    // Arrays go out as repeated header lines.
    const headers: Record<string, string[]> = {};
    for (const [k, v] of call.headers ?? adminHeaders) headers[k] = [...(headers[k] ?? []), v];
    return new Promise((resolve, reject) => {
      const req = h1request(
        {
          host: "127.0.0.1",
          port: server.port,
          path: call.path,
          method: call.method ?? "GET",
          ca: pki.servingCAPEM,
          ...(client.certPEM ? { cert: client.certPEM, key: client.keyPEM } : {}),
          headers,
          agent: false,
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            body += c;
          });
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body,
              json: () => JSON.parse(body),
            }),
          );
        },
      );
      req.on("error", reject);
      req.end(call.body);
    });
  }

  const none: PEMPair = { certPEM: "", keyPEM: "" };
  const json: [string, string][] = [...adminHeaders, ["content-type", "application/json"]];
  const tcr = (token: string) =>
    JSON.stringify({
      apiVersion: "login.concierge.pinniped.dev/v1alpha1",
      kind: "TokenCredentialRequest",
      spec: {
        token,
        authenticator: { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" },
      },
    });

  for (const [protocol, send] of [
    ["HTTP/2", (c: Call) => h2(c)],
    ["HTTP/1.1", (c: Call) => h1(c)],
  ] as const) {
    describe(protocol, () => {
      it("answers health checks without authentication", async () => {
        for (const path of ["/healthz", "/readyz", "/livez"]) {
          const res = await send({ path, client: none, headers: [] });
          assert.equal(res.status, 200);
          assert.equal(res.body, "ok");
        }
      });

      it("refuses anything else without a trusted front-proxy certificate", async () => {
        for (const client of [none, pki.foreignClient, pki.disallowedClient]) {
          const res = await send({ path: "/apis", client });
          assert.equal(res.status, 401);
          assert.deepEqual(res.json(), {
            kind: "Status",
            apiVersion: "v1",
            metadata: {},
            status: "Failure",
            message: "Unauthorized",
            reason: "Unauthorized",
            code: 401,
          });
        }
        const noUser = await send({ path: "/apis", headers: [["x-remote-group", "system:masters"]] });
        assert.equal(noUser.status, 401);
      });

      it("serves discovery and OpenAPI", async () => {
        const groups = (await send({ path: "/apis" })).json();
        assert.equal(groups.kind, "APIGroupList");
        const group = await send({ path: "/apis/login.concierge.pinniped.dev" });
        assert.equal(group.json().kind, "APIGroup");
        const resources = await send({ path: identity });
        assert.equal(resources.status, 200);
        assert.equal(resources.headers["content-type"], "application/json");
        assert.equal((resources.json().resources as { name: string }[])[0]?.name, "whoamirequests");
        assert.equal((await send({ path: "/openapi/v2" })).json().swagger, "2.0");
        const index = (await send({ path: "/openapi/v3" })).json() as {
          paths: Record<string, { serverRelativeURL: string }>;
        };
        const url = index.paths["apis/login.concierge.pinniped.dev/v1alpha1"]!.serverRelativeURL;
        assert.equal((await send({ path: url })).json().openapi, "3.0.0");
        assert.equal((await send({ path: "/apis/apps/v1" })).status, 404);
        assert.equal((await send({ path: "/openapi/v3/apis/apps/v1" })).status, 404);
        assert.equal((await send({ path: "/apis", method: "POST", body: "{}" })).status, 405);
      });

      it("echoes the forwarded user in a WhoAmIRequest, repeated groups and extras included", async () => {
        const res = await send({
          method: "POST",
          path: `${identity}/whoamirequests`,
          headers: json,
          body: JSON.stringify({
            apiVersion: "identity.concierge.pinniped.dev/v1alpha1",
            kind: "WhoAmIRequest",
          }),
        });
        assert.equal(res.status, 201);
        assert.deepEqual((res.json().status as { kubernetesUserInfo: unknown }).kubernetesUserInfo, {
          user: {
            username: "kubernetes-admin",
            groups: ["system:masters", "system:authenticated"],
            extra: { "example.com/tenant": ["acme"] },
          },
        });
      });

      it("exchanges a token, and answers a bad one with authentication failed", async () => {
        const good = await send({
          method: "POST",
          path: `${login}/tokencredentialrequests`,
          headers: json,
          body: tcr("good"),
        });
        assert.equal(good.status, 201);
        const credential = (good.json().status as { credential: Record<string, string> }).credential;
        assert.equal(credential.clientCertificateData, "cert for alice in devs");
        const bad = await send({
          method: "POST",
          path: `${login}/tokencredentialrequests`,
          headers: json,
          body: tcr("bad"),
        });
        assert.equal(bad.status, 201);
        assert.deepEqual(bad.json().status, { message: "authentication failed" });
      });

      it("passes dryRun and the namespace of the path to the handler", async () => {
        const dry = await send({
          method: "POST",
          path: `${login}/tokencredentialrequests?dryRun=All`,
          headers: json,
          body: tcr("good"),
        });
        assert.equal(dry.status, 422);
        const ns = await send({
          method: "POST",
          path: `${login}/namespaces/default/tokencredentialrequests`,
          headers: json,
          body: tcr("good"),
        });
        assert.equal(ns.status, 400);
        assert.equal(ns.json().message, "namespace is not allowed on TokenCredentialRequest: default");
      });

      it("validates fields as the generic apiserver does: Strict refuses, Warn (the default) warns, Ignore drops", async () => {
        const unknown = tcr("good").replace('"spec":{', '"spec":{"foo":1,"token":"dup",');
        const post = (query: string, body = unknown, resource = "tokencredentialrequests") =>
          send({
            method: "POST",
            path: `${resource === "whoamirequests" ? identity : login}/${resource}${query}`,
            headers: json,
            body,
          });
        const strict = await post("?fieldValidation=Strict");
        assert.equal(strict.status, 400);
        assert.equal(
          strict.json().message,
          'TokenCredentialRequest in version "v1alpha1" cannot be handled as a TokenCredentialRequest: strict decoding error: unknown field "spec.foo", duplicate field "spec.token"',
        );
        assert.equal(strict.headers.warning, undefined);
        const warned = await post("");
        assert.equal(warned.status, 201);
        assert.equal(
          warned.headers.warning,
          '299 - "unknown field \\"spec.foo\\"", 299 - "duplicate field \\"spec.token\\""',
        );
        // The last of duplicate values wins, as in Go's decoder: the good token after "dup".
        assert.ok((warned.json().status as { credential?: unknown }).credential);
        // Header values carry the UTF-8 bytes of a key outside ASCII, as Go writes them.
        const accented = await post("", tcr("good").replace('"spec":{', '"spec":{"café":1,'));
        assert.equal(accented.status, 201);
        assert.equal(
          Buffer.from(String(accented.headers.warning), "latin1").toString("utf8"),
          '299 - "unknown field \\"spec.café\\""',
        );
        const ignored = await post("?fieldValidation=Ignore");
        assert.equal(ignored.status, 201);
        assert.equal(ignored.headers.warning, undefined);
        const known = tcr("good").replace('"spec":{', '"spec":{"certificateSigningRequest":"x",');
        // Our own field passes Strict (and then fails its own validation).
        assert.equal((await post("?fieldValidation=Strict", known)).status, 422);
        const who = await post(
          "?fieldValidation=Strict",
          '{"kind":"WhoAmIRequest","spec":{"foo":{}}}',
          "whoamirequests",
        );
        assert.equal(who.status, 400);
        assert.equal(
          who.json().message,
          'WhoAmIRequest in version "v1alpha1" cannot be handled as a WhoAmIRequest: strict decoding error: unknown field "spec.foo"',
        );
        const bogus = await post("?fieldValidation=strict");
        assert.equal(bogus.status, 422);
        assert.match(bogus.json().message as string, /fieldValidation: Unsupported value: "strict"/);
        // A type error is the decoder's answer, whatever the strict errors.
        const typeError = await post("?fieldValidation=Strict", '{"spec":{"foo":1,"token":5}}');
        assert.equal(typeError.status, 400);
        assert.doesNotMatch(typeError.json().message as string, /strict decoding error/);
      });

      it("lists nothing, as a list or as a Table", async () => {
        const list = await send({ path: `${login}/tokencredentialrequests` });
        assert.deepEqual(list.json(), {
          kind: "TokenCredentialRequestList",
          apiVersion: "login.concierge.pinniped.dev/v1alpha1",
          metadata: { resourceVersion: "0" },
          items: [],
        });
        const table = await send({
          path: `${identity}/whoamirequests`,
          headers: [
            ...adminHeaders,
            [
              "accept",
              "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            ],
          ],
        });
        assert.equal(table.json().kind, "Table");
        assert.deepEqual(table.json().rows, []);
      });

      it("refuses other media types, methods, paths and oversized bodies", async () => {
        const yaml = await send({
          method: "POST",
          path: `${login}/tokencredentialrequests`,
          headers: [...adminHeaders, ["content-type", "application/yaml"]],
          body: "spec: {}",
        });
        assert.equal(yaml.status, 415);
        assert.equal(yaml.json().reason, "UnsupportedMediaType");
        const proto = await send({
          path: `${login}/tokencredentialrequests`,
          headers: [...adminHeaders, ["accept", "application/vnd.kubernetes.protobuf"]],
        });
        assert.equal(proto.status, 406);
        const notJSON = await send({
          method: "POST",
          path: `${login}/tokencredentialrequests`,
          headers: json,
          body: "{",
        });
        assert.equal(notJSON.status, 400);
        assert.equal(notJSON.json().message, "the body of the request is not valid JSON");
        const secretish = await send({
          method: "POST",
          path: `${login}/tokencredentialrequests`,
          headers: json,
          body: '{"spec": secret-looking-data}',
        });
        assert.equal(secretish.json().message, "the body of the request is not valid JSON");
        const errorsBefore = logs.lines.filter((l) => l.level === "error").length;
        for (const path of [`${login}/tokencredentialrequests`, `${identity}/whoamirequests`]) {
          const nested = await send({
            method: "POST",
            path,
            headers: json,
            body: `${"[".repeat(1500)}${"]".repeat(1500)}`,
          });
          assert.equal(nested.status, 400, path);
          assert.match(
            nested.json().message as string,
            /^not a \w+: the body is an array, not a JSON object$/,
          );
        }
        assert.equal(logs.lines.filter((l) => l.level === "error").length, errorsBefore);
        const huge = await send({
          method: "POST",
          path: `${login}/tokencredentialrequests`,
          headers: json,
          body: tcr("x".repeat(5000)),
        });
        assert.equal(huge.status, 413);
        assert.equal(
          (await send({ method: "DELETE", path: `${login}/tokencredentialrequests` })).status,
          405,
        );
        assert.equal((await send({ path: `${login}/tokencredentialrequests/name` })).status, 404);
        assert.equal((await send({ path: "/api/v1" })).status, 404);
        assert.equal((await send({ path: "//apis" })).json().kind, "APIGroupList");
      });
    });
  }

  it("counts requests by resource, verb and code", async () => {
    const text = await metrics.text();
    assert.match(
      text,
      /aggregated_api_requests_total\{resource="tokencredentialrequests",verb="create",code="201"\} [1-9]/,
    );
    assert.match(text, /aggregated_api_requests_total\{resource="other",verb="other",code="401"\} [1-9]/);
    assert.match(
      text,
      /aggregated_api_request_duration_seconds_bucket\{le="0.001",resource="discovery",verb="get"\}/,
    );
    assert.match(text, /token_credential_requests_total\{outcome="rejected"\} [1-9]/);
  });

  it("never logs a token", () => {
    assert.ok(!JSON.stringify(logs.lines).includes('"good"'));
  });

  it("serves a new certificate to new connections", async () => {
    const other = await testPKI();
    certs.set(other.serving);
    await assert.rejects(h2({ path: "/healthz", client: none }));
    pki = { ...pki, servingCAPEM: other.servingCAPEM };
    assert.equal((await h2({ path: "/healthz", client: none })).status, 200);
  });
});
