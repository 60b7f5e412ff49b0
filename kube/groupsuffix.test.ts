import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { apiGroupSuffixErrors, GroupSuffix } from "./groupsuffix.ts";
import { groupSuffixClient } from "./groupsuffix-client.ts";
import type { RequestOptions, RestClient, StreamOptions } from "./rest.ts";

describe("GroupSuffix", () => {
  const acme = new GroupSuffix("acme.example");

  it("validates suffixes as upstream does", () => {
    assert.deepEqual(apiGroupSuffixErrors("acme.example"), []);
    assert.deepEqual(apiGroupSuffixErrors("pinniped.dev"), []);
    assert.deepEqual(apiGroupSuffixErrors("acme"), ["must contain '.'"]);
    assert.match(apiGroupSuffixErrors("Acme.example")[0]!, /lowercase RFC 1123 subdomain/);
    assert.match(apiGroupSuffixErrors("acme..example")[0]!, /lowercase RFC 1123 subdomain/);
    assert.equal(apiGroupSuffixErrors("")[1], "must contain '.'");
    assert.throws(() => new GroupSuffix("nodot"), /invalid API group suffix "nodot": must contain '.'/);
  });

  it("maps the Concierge groups both ways and leaves the others alone", () => {
    assert.equal(acme.served("login.concierge.pinniped.dev"), "login.concierge.acme.example");
    assert.equal(
      acme.served("authentication.concierge.pinniped.dev"),
      "authentication.concierge.acme.example",
    );
    assert.equal(acme.served("apps"), "apps");
    assert.equal(acme.served("pinniped.dev"), "pinniped.dev");
    assert.equal(acme.internal("config.concierge.acme.example"), "config.concierge.pinniped.dev");
    assert.equal(acme.internal("config.concierge.pinniped.dev"), undefined);
    assert.equal(acme.internal("acme.example"), undefined);
    assert.equal(acme.internal("xacme.example"), undefined);
    assert.equal(
      acme.servedAPIVersion("identity.concierge.pinniped.dev/v1alpha1"),
      "identity.concierge.acme.example/v1alpha1",
    );
    assert.equal(acme.servedAPIVersion("v1"), "v1");
    assert.equal(
      acme.internalAPIVersion("identity.concierge.acme.example/v1alpha1"),
      "identity.concierge.pinniped.dev/v1alpha1",
    );
    assert.equal(acme.internalAPIVersion("apps/v1"), "apps/v1");
  });

  it("the default suffix maps nothing", () => {
    const dflt = new GroupSuffix();
    assert.equal(dflt.isDefault, true);
    assert.equal(dflt.served("login.concierge.pinniped.dev"), "login.concierge.pinniped.dev");
    const path = "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests";
    assert.deepEqual(dflt.servedPath(path), { path, mapped: false });
    const obj = { apiVersion: "config.concierge.pinniped.dev/v1alpha1" };
    assert.equal(dflt.servedObject(obj), obj);
  });

  it("a suffix that itself ends in pinniped.dev maps back exactly", () => {
    const nested = new GroupSuffix("team.pinniped.dev");
    const served = nested.served("config.concierge.pinniped.dev");
    assert.equal(served, "config.concierge.team.pinniped.dev");
    assert.equal(nested.internal(served), "config.concierge.pinniped.dev");
  });

  it("maps request paths of our groups only", () => {
    assert.deepEqual(
      acme.servedPath("/apis/config.concierge.pinniped.dev/v1alpha1/credentialissuers/x/status"),
      {
        path: "/apis/config.concierge.acme.example/v1alpha1/credentialissuers/x/status",
        mapped: true,
      },
    );
    assert.deepEqual(acme.servedPath("/apis/apps/v1/namespaces/ns/deployments"), {
      path: "/apis/apps/v1/namespaces/ns/deployments",
      mapped: false,
    });
    assert.deepEqual(acme.servedPath("/api/v1/secrets"), { path: "/api/v1/secrets", mapped: false });
  });

  it("maps objects' apiVersion, owner references and list items without touching the input", () => {
    const input = Object.freeze({
      apiVersion: "config.concierge.pinniped.dev/v1alpha1",
      kind: "CredentialIssuer",
      metadata: Object.freeze({
        name: "x",
        ownerReferences: Object.freeze([
          Object.freeze({
            apiVersion: "config.concierge.pinniped.dev/v1alpha1",
            kind: "CredentialIssuer",
            name: "x",
          }),
          Object.freeze({ apiVersion: "apps/v1", kind: "Deployment", name: "d" }),
        ]),
      }),
      spec: { a: 1 },
    });
    const served = acme.servedObject(input);
    assert.equal(served.apiVersion, "config.concierge.acme.example/v1alpha1");
    assert.deepEqual(
      served.metadata.ownerReferences.map((r) => r.apiVersion),
      ["config.concierge.acme.example/v1alpha1", "apps/v1"],
    );
    assert.equal(served.spec, input.spec);
    assert.deepEqual(acme.internalObject(served), input);
    const secret = { apiVersion: "v1", kind: "Secret" };
    assert.equal(acme.servedObject(secret), secret, "unchanged objects are not copied");

    const list = {
      apiVersion: "authentication.concierge.acme.example/v1alpha1",
      kind: "JWTAuthenticatorList",
      items: [{ apiVersion: "authentication.concierge.acme.example/v1alpha1", kind: "JWTAuthenticator" }],
    };
    assert.deepEqual(acme.internalObject(list), {
      apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
      kind: "JWTAuthenticatorList",
      items: [{ apiVersion: "authentication.concierge.pinniped.dev/v1alpha1", kind: "JWTAuthenticator" }],
    });
    assert.equal(acme.internalObject("text"), "text");
  });
});

describe("groupSuffixClient", () => {
  const acme = new GroupSuffix("acme.example");

  function recorder(reply: unknown, lines: string[] = []) {
    const sent: (RequestOptions | StreamOptions)[] = [];
    const inner: RestClient = {
      async request<T>(options: RequestOptions) {
        sent.push(options);
        return reply as T;
      },
      async stream(options: StreamOptions) {
        sent.push(options);
        for (const line of lines) options.onLine(line);
      },
    };
    return { inner, sent };
  }

  it("is the inner client for the default suffix", () => {
    const { inner } = recorder(undefined);
    assert.equal(groupSuffixClient(inner, new GroupSuffix()), inner);
  });

  it("sends to the served group and answers with the code's names", async () => {
    const { inner, sent } = recorder({
      apiVersion: "config.concierge.acme.example/v1alpha1",
      kind: "CredentialIssuer",
      metadata: { name: "ci" },
    });
    const client = groupSuffixClient(inner, acme);
    const got = await client.request({
      method: "POST",
      path: "/apis/config.concierge.pinniped.dev/v1alpha1/credentialissuers",
      body: { apiVersion: "config.concierge.pinniped.dev/v1alpha1", kind: "CredentialIssuer" },
    });
    assert.equal(sent[0]!.path, "/apis/config.concierge.acme.example/v1alpha1/credentialissuers");
    assert.deepEqual((sent[0] as RequestOptions).body, {
      apiVersion: "config.concierge.acme.example/v1alpha1",
      kind: "CredentialIssuer",
    });
    assert.deepEqual(got, {
      apiVersion: "config.concierge.pinniped.dev/v1alpha1",
      kind: "CredentialIssuer",
      metadata: { name: "ci" },
    });
  });

  it("leaves other groups' requests and string bodies as they are", async () => {
    const reply = { apiVersion: "v1", kind: "Secret" };
    const { inner, sent } = recorder(reply);
    const client = groupSuffixClient(inner, acme);
    const patch = '{"metadata":{"labels":{"a":"b"}}}';
    assert.equal(
      await client.request({ method: "PATCH", path: "/api/v1/namespaces/n/secrets/s", body: patch }),
      reply,
    );
    assert.equal(sent[0]!.path, "/api/v1/namespaces/n/secrets/s");
    assert.equal((sent[0] as RequestOptions).body, patch);
  });

  it("maps watch events of our groups back, and passes other lines through", async () => {
    const event = {
      type: "ADDED",
      object: { apiVersion: "authentication.concierge.acme.example/v1alpha1", kind: "JWTAuthenticator" },
    };
    const lines = [
      JSON.stringify(event),
      '{"type":"BOOKMARK","object":{"kind":"JWTAuthenticator"}}',
      "not json .acme.example/",
    ];
    const { inner, sent } = recorder(undefined, lines);
    const got: string[] = [];
    await groupSuffixClient(inner, acme).stream({
      path: "/apis/authentication.concierge.pinniped.dev/v1alpha1/jwtauthenticators",
      signal: new AbortController().signal,
      onLine: (line) => got.push(line),
    });
    assert.equal(sent[0]!.path, "/apis/authentication.concierge.acme.example/v1alpha1/jwtauthenticators");
    assert.deepEqual(JSON.parse(got[0]!), {
      type: "ADDED",
      object: { apiVersion: "authentication.concierge.pinniped.dev/v1alpha1", kind: "JWTAuthenticator" },
    });
    assert.deepEqual(got.slice(1), lines.slice(1));
  });
});
