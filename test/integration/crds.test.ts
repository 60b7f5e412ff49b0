// The CRDs generated from apis/ behave like upstream's on a real kube-apiserver: accepted and
// rejected objects (with upstream's messages), defaults, printer columns, categories, and our CEL rules.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import {
  crdKinds,
  credentialIssuer,
  jwtAuthenticator,
  type KindModule,
  webhookAuthenticator,
} from "../../apis/index.ts";
import { crdOf } from "../../hack/gen-apis.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";

type Result = { ok: true; object: Record<string, unknown> } | { ok: false; code: number; message: string };

interface Status {
  message: string;
}

describe("CRDs", () => {
  let c: TestCluster;
  let api: CustomObjectsApi;
  const created: { kind: KindModule; name: string }[] = [];

  before(async () => {
    c = await testCluster();
    api = c.kubeConfig().makeApiClient(CustomObjectsApi);
    const res = await c.kubectl(["version", "-o", "json"]);
    assert.equal(res.code, 0, res.stderr);
    const { minor } = (JSON.parse(res.stdout) as { serverVersion: { minor: string } }).serverVersion;
    objectValue = Number.parseInt(minor, 10) < 35 ? '"object": ' : "";
  });

  after(async () => {
    for (const k of crdKinds) {
      const names = created.filter((o) => o.kind === k).map((o) => o.name);
      if (names.length === 0) continue;
      const res = await c.kubectl(["delete", k.plural, "--ignore-not-found", "--wait=false", ...names]);
      assert.equal(res.code, 0, res.stderr);
    }
  });

  const apiError = (err: unknown): { ok: false; code: number; message: string } => {
    const { code, body } = err as { code?: number; body?: unknown };
    if (typeof code !== "number") throw err;
    const status = (typeof body === "string" ? JSON.parse(body) : body) as Status;
    return { ok: false, code, message: status.message };
  };

  async function create(k: KindModule, name: string, spec: unknown): Promise<Result> {
    created.push({ kind: k, name });
    const body = {
      apiVersion: `${k.group}/${k.version}`,
      kind: k.kind,
      metadata: { name },
      ...(spec === undefined ? {} : { spec }),
    };
    try {
      const object = await api.createClusterCustomObject({
        group: k.group,
        version: k.version,
        plural: k.plural,
        body,
      });
      return { ok: true, object };
    } catch (err) {
      return apiError(err);
    }
  }

  async function writeStatus(k: KindModule, name: string, status: unknown): Promise<Result> {
    try {
      const object = await api.patchClusterCustomObjectStatus(
        { group: k.group, version: k.version, plural: k.plural, name, body: { status } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      return { ok: true, object };
    } catch (err) {
      return apiError(err);
    }
  }

  async function accepted(k: KindModule, prefix: string, spec: unknown): Promise<Record<string, unknown>> {
    const name = c.uniqueName(prefix);
    const res = await create(k, name, spec);
    assert.ok(res.ok, `expected ${k.kind} to be accepted, got: ${res.ok ? "" : res.message}`);
    return res.object;
  }

  // Asserts the exact Status message, e.g. `JWTAuthenticator.authentication.concierge.pinniped.dev "x" is invalid: ...`.
  async function rejected(k: KindModule, prefix: string, spec: unknown, ...details: string[]): Promise<void> {
    const name = c.uniqueName(prefix);
    const res = await create(k, name, spec);
    assert.ok(!res.ok, `expected ${k.kind} ${JSON.stringify(spec)} to be rejected`);
    assert.equal(res.code, 422);
    const list = details.length === 1 ? details[0] : `[${details.join(", ")}]`;
    assert.equal(res.message, `${k.kind}.${k.group} "${name}" is invalid: ${list}`);
  }

  // A missing field, a value outside an enum, a value too long or of the wrong type stops a kind's CEL
  // rules from running, and kube-apiserver says so in one more error. Upstream's CRDs have no CEL rules
  // and so no such error; ours have for CredentialIssuer only (JWTAuthenticator's one rule is the
  // admission webhook's, so that upstream's messages come out unchanged).
  const celSkipped =
    "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

  // A failed CEL rule on an object names the value "object" up to 1.34; from 1.35 kube-apiserver
  // leaves an object's or array's value out of the message (field.OmitValueType).
  let objectValue = "";

  // Splits `kubectl get` output into rows of whitespace-separated cells.
  async function table(args: string[]): Promise<string[][]> {
    const res = await c.kubectl(["get", ...args]);
    assert.equal(res.code, 0, res.stderr);
    return res.stdout
      .trim()
      .split("\n")
      .map((line) => line.trim().split(/\s+/));
  }

  describe("installation", () => {
    for (const k of crdKinds) {
      it(`${k.plural}.${k.group} is Established and served as generated`, async () => {
        const res = await c.kubectl(["get", "crd", `${k.plural}.${k.group}`, "-o", "json"]);
        assert.equal(res.code, 0, res.stderr);
        const crd = JSON.parse(res.stdout) as {
          spec: { names: unknown; scope: string; versions: unknown[] };
          status: { conditions: { type: string; status: string }[] };
        };
        const established = crd.status.conditions.find((cond) => cond.type === "Established");
        assert.equal(established?.status, "True");
        const want = JSON.parse(JSON.stringify(crdOf(k))) as typeof crd;
        assert.deepEqual(crd.spec.versions, want.spec.versions);
        assert.deepEqual(crd.spec.names, want.spec.names);
        assert.equal(crd.spec.scope, "Cluster");
      });
    }

    it("discovery shows upstream's names, scope, verbs and categories", async () => {
      for (const k of crdKinds) {
        const res = await c.kubectl(["get", "--raw", `/apis/${k.group}/${k.version}`]);
        assert.equal(res.code, 0, res.stderr);
        const list = JSON.parse(res.stdout) as {
          resources: {
            name: string;
            singularName: string;
            namespaced: boolean;
            kind: string;
            categories?: string[];
            shortNames?: string[];
            verbs: string[];
          }[];
        };
        const resource = list.resources.find((r) => r.name === k.plural);
        assert.ok(resource, `${k.plural} is not in discovery`);
        assert.equal(resource.singularName, k.singular);
        assert.equal(resource.namespaced, false);
        assert.equal(resource.kind, k.kind);
        assert.deepEqual(resource.categories, [...k.categories]);
        assert.equal(resource.shortNames, undefined);
        assert.deepEqual([...resource.verbs].sort(), [...k.verbs].sort());
        assert.ok(list.resources.some((r) => r.name === `${k.plural}/status`));
      }
    });

    it("kubectl explain shows the upstream descriptions", async () => {
      // The aggregated OpenAPI lags behind Established, by seconds for a CRD with CEL rules.
      const deadline = Date.now() + 30_000;
      let res = await c.kubectl(["explain", "jwtauthenticator.spec.claims.usernameExpression"]);
      while (res.code !== 0 && /couldn't find resource/.test(res.stderr) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        res = await c.kubectl(["explain", "jwtauthenticator.spec.claims.usernameExpression"]);
      }
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /usernameExpression represents an expression which will be evaluated by CEL/);
    });
  });

  describe("JWTAuthenticator", () => {
    const k = jwtAuthenticator;
    const base = { issuer: "https://www.example.com", audience: "foo" };

    // Upstream's TestConciergeJWTAuthenticatorCRDValidations_Parallel, plus the CEL claim fields.
    const valid: [string, unknown][] = [
      ["the minimum", base],
      ["an empty claims block", { ...base, claims: {} }],
      ["empty group and username claims", { ...base, claims: { groups: "", username: "" } }],
      ["an empty tls block", { ...base, claims: { groups: "", username: "" }, tls: {} }],
      ["an empty certificateAuthorityData", { ...base, tls: { certificateAuthorityData: "" } }],
      [
        "a certificateAuthorityData that is not base64",
        { ...base, tls: { certificateAuthorityData: "pretend-this-is-a-certificate" } },
      ],
      [
        "a CA from a Secret",
        { ...base, tls: { certificateAuthorityDataSource: { kind: "Secret", name: "ca", key: "ca.crt" } } },
      ],
      [
        "the CEL claim fields",
        {
          ...base,
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
        },
      ],
    ];
    for (const [name, spec] of valid) {
      it(`accepts ${name}`, async () => {
        const object = await accepted(k, "jwt", spec);
        assert.deepEqual(object.spec, spec);
      });
    }

    it("accepts audiences with audienceMatchPolicy, and systemPrefixPolicy (our additions)", async () => {
      const spec = {
        ...base,
        audiences: ["cli", "web"],
        audienceMatchPolicy: "MatchAny",
        systemPrefixPolicy: "Allow",
      };
      assert.deepEqual((await accepted(k, "jwt", spec)).spec, spec);
    });
    // test/integration/admission-webhook.test.ts: the webhook refuses it.
    it("leaves audiences without audienceMatchPolicy to the admission webhook", async () => {
      const spec = { ...base, audiences: ["cli"] };
      assert.deepEqual((await accepted(k, "jwt", spec)).spec, spec);
    });
    it("rejects more than 10 audiences, and a repeated one", async () => {
      const audienceMatchPolicy = "MatchAny";
      const eleven = Array.from({ length: 11 }, (_, i) => `a${i}`);
      await rejected(
        k,
        "jwt",
        { ...base, audiences: eleven, audienceMatchPolicy },
        "spec.audiences: Too many: 11: must have at most 10 items",
      );
      await rejected(
        k,
        "jwt",
        { ...base, audiences: ["cli", "cli"], audienceMatchPolicy },
        'spec.audiences[1]: Duplicate value: "cli"',
      );
    });

    it("rejects an empty issuer", () =>
      rejected(
        k,
        "jwt",
        { issuer: "", audience: "fake-audience" },
        'spec.issuer: Invalid value: "": spec.issuer in body should be at least 1 chars long',
      ));
    it("rejects an empty audience", () =>
      rejected(
        k,
        "jwt",
        { issuer: "https://example.com", audience: "" },
        'spec.audience: Invalid value: "": spec.audience in body should be at least 1 chars long',
      ));
    it("rejects an http issuer", () =>
      rejected(
        k,
        "jwt",
        { issuer: "http://www.example.com", audience: "foo" },
        "spec.issuer: Invalid value: \"http://www.example.com\": spec.issuer in body should match '^https://'",
      ));
    // Upstream's exact messages: nothing added after blocking errors.
    it("rejects a missing spec", () => rejected(k, "jwt", undefined, "spec: Required value"));
    it("rejects a missing issuer and audience", () =>
      rejected(k, "jwt", {}, "spec.audience: Required value", "spec.issuer: Required value"));
    it("rejects an unknown CA source kind", () =>
      rejected(
        k,
        "jwt",
        { ...base, tls: { certificateAuthorityDataSource: { kind: "Vault", name: "ca", key: "ca.crt" } } },
        'spec.tls.certificateAuthorityDataSource.kind: Unsupported value: "Vault": supported values: "Secret", "ConfigMap"',
      ));

    it("defaults the phase to Pending when status is written, and shows upstream's columns", async () => {
      const name = c.uniqueName("jwt");
      assert.ok((await create(k, name, base)).ok);
      const res = await writeStatus(k, name, {
        conditions: [
          {
            type: "Ready",
            status: "False",
            reason: "NotReady",
            message: "not yet",
            lastTransitionTime: "2026-01-02T03:04:05Z",
          },
        ],
      });
      assert.ok(res.ok, res.ok ? "" : res.message);
      assert.equal((res.object.status as { phase: string }).phase, "Pending");
      const rows = await table(["jwtauthenticator", name]);
      assert.deepEqual(rows[0], ["NAME", "ISSUER", "AUDIENCE", "STATUS", "AGE"]);
      assert.deepEqual(rows[1]?.slice(0, 4), [name, base.issuer, base.audience, "Pending"]);
    });

    it("rejects two conditions of one type in a status write", async () => {
      const name = c.uniqueName("jwt");
      assert.ok((await create(k, name, base)).ok);
      const condition = {
        type: "Ready",
        status: "True",
        reason: "Success",
        message: "m",
        lastTransitionTime: "2026-01-02T03:04:05Z",
      };
      const res = await writeStatus(k, name, { conditions: [condition, condition] });
      assert.ok(!res.ok);
      assert.equal(
        res.message,
        `${k.kind}.${k.group} "${name}" is invalid: status.conditions[1]: Duplicate value: {"type":"Ready"}`,
      );
    });
  });

  describe("WebhookAuthenticator", () => {
    const k = webhookAuthenticator;
    const endpoint = "https://webhook.example.com/authenticate";

    const valid: [string, unknown][] = [
      ["the minimum", { endpoint }],
      ["an empty tls block", { endpoint, tls: {} }],
      ["an empty certificateAuthorityData", { endpoint, tls: { certificateAuthorityData: "" } }],
      [
        "a syntactically invalid base64 CA",
        { endpoint, tls: { certificateAuthorityData: "this is not base64!" } },
      ],
      [
        "a CA from a ConfigMap",
        {
          endpoint,
          tls: { certificateAuthorityDataSource: { kind: "ConfigMap", name: "ca", key: "ca.crt" } },
        },
      ],
    ];
    for (const [name, spec] of valid) {
      it(`accepts ${name}`, async () => {
        const object = await accepted(k, "webhook", spec);
        assert.deepEqual(object.spec, spec);
      });
    }

    // Upstream's TestConciergeWebhookAuthenticatorCRDValidations_Parallel.
    it("rejects an empty endpoint", () =>
      rejected(
        k,
        "webhook",
        { endpoint: "" },
        'spec.endpoint: Invalid value: "": spec.endpoint in body should be at least 1 chars long',
      ));
    it("rejects an http endpoint", () =>
      rejected(
        k,
        "webhook",
        { endpoint: "http://www.example.com" },
        "spec.endpoint: Invalid value: \"http://www.example.com\": spec.endpoint in body should match '^https://'",
      ));
    it("rejects a CA source without a name", () =>
      rejected(
        k,
        "webhook",
        { endpoint, tls: { certificateAuthorityDataSource: { kind: "Secret", key: "ca.crt" } } },
        "spec.tls.certificateAuthorityDataSource.name: Required value",
      ));

    it("defaults the phase to Pending when status is written, and shows upstream's columns", async () => {
      const name = c.uniqueName("webhook");
      assert.ok((await create(k, name, { endpoint })).ok);
      const res = await writeStatus(k, name, { conditions: [] });
      assert.ok(res.ok, res.ok ? "" : res.message);
      assert.equal((res.object.status as { phase: string }).phase, "Pending");
      const rows = await table(["webhookauthenticator", name]);
      assert.deepEqual(rows[0], ["NAME", "ENDPOINT", "STATUS", "AGE"]);
      assert.deepEqual(rows[1]?.slice(0, 3), [name, endpoint, "Pending"]);
    });
  });

  describe("CredentialIssuer", () => {
    const k = credentialIssuer;

    it("defaults service to a LoadBalancer", async () => {
      const object = await accepted(k, "ci", { impersonationProxy: { mode: "auto" } });
      assert.deepEqual(object.spec, {
        impersonationProxy: { mode: "auto", service: { type: "LoadBalancer" } },
      });
    });

    const valid: [string, unknown][] = [
      [
        "service type None with an external endpoint",
        { mode: "enabled", service: { type: "None" }, externalEndpoint: "proxy.example.com" },
      ],
      [
        "an IPv4 loadBalancerIP",
        { mode: "auto", service: { type: "LoadBalancer", loadBalancerIP: "10.1.2.3" } },
      ],
      [
        "an IPv6 loadBalancerIP",
        { mode: "auto", service: { type: "LoadBalancer", loadBalancerIP: "fd00::1" } },
      ],
      [
        "an external TLS secret",
        { mode: "enabled", service: { type: "ClusterIP" }, tls: { secretName: "proxy-tls" } },
      ],
      [
        "anything the controller ignores when disabled",
        { mode: "disabled", service: { type: "None", loadBalancerIP: "not-an-ip" }, tls: {} },
      ],
    ];
    for (const [name, impersonationProxy] of valid) {
      it(`accepts ${name}`, async () => {
        const object = await accepted(k, "ci", { impersonationProxy });
        assert.deepEqual(object.spec, { impersonationProxy });
      });
    }

    it("rejects a bad mode", () =>
      rejected(
        k,
        "ci",
        { impersonationProxy: { mode: "sometimes" } },
        'spec.impersonationProxy.mode: Unsupported value: "sometimes": supported values: "auto", "enabled", "disabled"',
        celSkipped,
      ));
    it("rejects a bad service type", () =>
      rejected(
        k,
        "ci",
        { impersonationProxy: { mode: "auto", service: { type: "NodePort" } } },
        'spec.impersonationProxy.service.type: Unsupported value: "NodePort": supported values: "LoadBalancer", "ClusterIP", "None"',
        celSkipped,
      ));
    it("rejects a missing mode", () =>
      rejected(
        k,
        "ci",
        { impersonationProxy: {} },
        "spec.impersonationProxy.mode: Required value",
        celSkipped,
      ));
    it("rejects an empty tls.secretName", () =>
      rejected(
        k,
        "ci",
        { impersonationProxy: { mode: "auto", tls: { secretName: "" } } },
        'spec.impersonationProxy.tls.secretName: Invalid value: "": spec.impersonationProxy.tls.secretName in body should be at least 1 chars long',
      ));

    // Our CEL rules, with the messages of upstream's impersonator-config controller.
    it("rejects service type None without an external endpoint", () =>
      rejected(
        k,
        "ci",
        { impersonationProxy: { mode: "auto", service: { type: "None" } } },
        "spec.impersonationProxy.externalEndpoint: Required value: externalEndpoint must be set when service.type is None",
      ));
    it("rejects service type None with an empty external endpoint", () =>
      rejected(
        k,
        "ci",
        { impersonationProxy: { mode: "enabled", service: { type: "None" }, externalEndpoint: "" } },
        "spec.impersonationProxy.externalEndpoint: Required value: externalEndpoint must be set when service.type is None",
      ));
    it("rejects a loadBalancerIP that is not an IP", () =>
      rejected(
        k,
        "ci",
        { impersonationProxy: { mode: "auto", service: { loadBalancerIP: "1.2.3" } } },
        `spec.impersonationProxy.service.loadBalancerIP: Invalid value: ${objectValue}invalid LoadBalancerIP "1.2.3"`,
      ));
    it("rejects an IPv4 loadBalancerIP with a leading zero, as isIP does", () =>
      rejected(
        k,
        "ci",
        { impersonationProxy: { mode: "auto", service: { loadBalancerIP: "10.0.0.01" } } },
        `spec.impersonationProxy.service.loadBalancerIP: Invalid value: ${objectValue}invalid LoadBalancerIP "10.0.0.01"`,
      ));
    it("accepts IPv4 and IPv6 loadBalancerIPs", async () => {
      for (const ip of ["10.0.0.1", "255.255.255.255", "fd00::1", "::ffff:10.0.0.1"])
        await accepted(k, "ci", { impersonationProxy: { mode: "auto", service: { loadBalancerIP: ip } } });
    });
    it("rejects a tls block without a secretName", () =>
      rejected(
        k,
        "ci",
        { impersonationProxy: { mode: "enabled", tls: { certificateAuthorityData: "Zm9v" } } },
        "spec.impersonationProxy.tls.secretName: Required value: must provide impersonationSpec.TLS.secretName if impersonationSpec.TLS is provided",
      ));

    it("rejects an update that breaks a CEL rule", async () => {
      const name = c.uniqueName("ci");
      assert.ok((await create(k, name, { impersonationProxy: { mode: "auto" } })).ok);
      const res = await c.kubectl([
        "patch",
        "credentialissuer",
        name,
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { impersonationProxy: { service: { type: "None" } } } }),
      ]);
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /externalEndpoint must be set when service\.type is None/);
    });

    it("shows upstream's columns, with the successful strategy as the default", async () => {
      const name = c.uniqueName("ci");
      assert.ok((await create(k, name, { impersonationProxy: { mode: "auto" } })).ok);
      const strategy = (type: string, status: string, reason: string) => ({
        type,
        status,
        reason,
        message: "a message",
        lastUpdateTime: "2026-01-02T03:04:05Z",
      });
      const res = await writeStatus(k, name, {
        strategies: [
          {
            ...strategy("KubeClusterSigningCertificate", "Success", "FetchedKey"),
            frontend: {
              type: "TokenCredentialRequestAPI",
              tokenCredentialRequestInfo: {
                server: "https://127.0.0.1:6443",
                certificateAuthorityData: "Zm9v",
              },
            },
          },
          strategy("ImpersonationProxy", "Error", "Disabled"),
        ],
      });
      assert.ok(res.ok, res.ok ? "" : res.message);
      const rows = await table(["credentialissuer", name]);
      assert.deepEqual(rows[0], ["NAME", "PROXYMODE", "DEFAULTSTRATEGY", "AGE"]);
      assert.deepEqual(rows[1]?.slice(0, 3), [name, "auto", "KubeClusterSigningCertificate"]);
    });

    it("rejects a status with an http impersonation proxy endpoint", async () => {
      const name = c.uniqueName("ci");
      assert.ok((await create(k, name, { impersonationProxy: { mode: "auto" } })).ok);
      const res = await writeStatus(k, name, {
        strategies: [
          {
            type: "ImpersonationProxy",
            status: "Success",
            reason: "Listening",
            message: "impersonation proxy is ready to accept client connections",
            lastUpdateTime: "2026-01-02T03:04:05Z",
            frontend: {
              type: "ImpersonationProxy",
              impersonationProxyInfo: {
                endpoint: "http://proxy.example.com",
                certificateAuthorityData: "Zm9v",
              },
            },
          },
        ],
      });
      assert.ok(!res.ok);
      assert.equal(
        res.message,
        `${k.kind}.${k.group} "${name}" is invalid: status.strategies[0].frontend.impersonationProxyInfo.endpoint: Invalid value: "http://proxy.example.com": strategies[0].frontend.impersonationProxyInfo.endpoint in body should match '^https://'`,
      );
    });
  });

  describe("categories", () => {
    const names = { ci: "", jwt: "", webhook: "" };

    before(async () => {
      names.ci = c.uniqueName("cat-ci");
      names.jwt = c.uniqueName("cat-jwt");
      names.webhook = c.uniqueName("cat-webhook");
      for (const [k, name, spec] of [
        [credentialIssuer, names.ci, { impersonationProxy: { mode: "disabled" } }],
        [jwtAuthenticator, names.jwt, { issuer: "https://issuer.example.com", audience: "a" }],
        [webhookAuthenticator, names.webhook, { endpoint: "https://webhook.example.com" }],
      ] as const) {
        const res = await create(k, name, spec);
        assert.ok(res.ok, res.ok ? "" : res.message);
      }
    });

    it("kubectl get pinniped lists all three kinds", async () => {
      const res = await c.kubectl(["get", "pinniped", "-o", "name"]);
      assert.equal(res.code, 0, res.stderr);
      const lines = res.stdout.trim().split("\n");
      assert.ok(lines.includes(`credentialissuer.config.concierge.pinniped.dev/${names.ci}`), res.stdout);
      assert.ok(
        lines.includes(`jwtauthenticator.authentication.concierge.pinniped.dev/${names.jwt}`),
        res.stdout,
      );
      assert.ok(
        lines.includes(`webhookauthenticator.authentication.concierge.pinniped.dev/${names.webhook}`),
        res.stdout,
      );
    });

    it("kubectl get pinniped-authenticators lists only the authenticators", async () => {
      const res = await c.kubectl(["get", "pinniped-authenticators", "-o", "name"]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(
        res.stdout,
        new RegExp(`jwtauthenticator\\.authentication\\.concierge\\.pinniped\\.dev/${names.jwt}`),
      );
      assert.match(
        res.stdout,
        new RegExp(`webhookauthenticator\\.authentication\\.concierge\\.pinniped\\.dev/${names.webhook}`),
      );
      assert.doesNotMatch(res.stdout, /credentialissuer/);
    });
  });
});
