// The aggregated API behind the REAL kube-apiserver: APIServices point at an ExternalName Service
// (`localhost`) whose port is our listener's, so every request below goes kubectl → kube-apiserver
// → aggregator (front-proxy client certificate, X-Remote-* headers, HTTP/2) → this process.
//
// The issuer is a test double that signs with the cluster's own CA through openssl, so a
// certificate from a TokenCredentialRequest really logs in to kube-apiserver as the
// authenticated user. The authenticator is a fake in an AuthenticatorCache; the
// authenticators' own tests cover real tokens.
//
// APIServices are cluster-scoped and the control plane is shared by the run's other tests: they
// are deleted in after(), with the RBAC objects this file creates.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { AuthenticatorCache, authenticationGroup } from "../../authenticators/cache.ts";
import { ServingCertHolder } from "../../certs/servingcert.ts";
import { Informer } from "../../controllers/runtime/informer.ts";
import { restTransport } from "../../controllers/runtime/listwatch.ts";
import { freePorts } from "../../hack/controlplane.ts";
import { newCA, newCert } from "../../hack/pki.ts";
import { KubeRestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { type AggregatedAPIServer, startAggregatedAPIServer } from "../../server/aggregated.ts";
import {
  extensionAPIServerAuthentication,
  FrontProxyConfigHolder,
  watchFrontProxyConfig,
} from "../../server/frontproxy.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";

const login = "login.concierge.pinniped.dev";
const identity = "identity.concierge.pinniped.dev";
const apiServices = [`v1alpha1.${login}`, `v1alpha1.${identity}`];
const goodToken = "a-token-the-fake-authenticator-accepts";
const user = { username: "pinny", groups: ["tcr-group-a", "tcr-group-b"] };

describe("aggregated API through kube-apiserver", () => {
  let c: TestCluster;
  let dir: string;
  let ns: string;
  let server: AggregatedAPIServer;
  let informer: Informer;
  let rest: KubeRestClient;
  let authenticatorName: string;
  let rbacName: string;
  const logs = memoryLogger("info");

  const tcr = (token: string, name = authenticatorName) => ({
    apiVersion: `${login}/v1alpha1`,
    kind: "TokenCredentialRequest",
    metadata: { name: "login" },
    spec: { token, authenticator: { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name } },
  });
  // kubectl caches discovery on disk for hours: a cache of its own keeps our groups out of the
  // shared one, where later tests' `kubectl get pinniped` would still expand to them.
  const kubectl = (args: string[], opts?: { input?: string; kubeconfig?: string }) =>
    c.kubectl(["--cache-dir", join(dir, "kube-cache"), ...args], opts);
  const create = (object: unknown, output: "json" | "yaml") =>
    kubectl(["create", "-f", "-", "-o", output], { input: JSON.stringify(object) });

  async function kubeconfigFor(name: string, userLines: string[]): Promise<string> {
    const caData = (await readFile(join(dirname(c.kubeconfigPath), "pki", "ca.crt"))).toString("base64");
    const path = join(dir, `${name}.kubeconfig`);
    const lines = [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: local",
      "  cluster:",
      `    server: ${c.server}`,
      `    certificate-authority-data: ${caData}`,
      "users:",
      `- name: ${name}`,
      "  user:",
      ...userLines.map((l) => `    ${l}`),
      "contexts:",
      `- name: ${name}`,
      "  context:",
      "    cluster: local",
      `    user: ${name}`,
      `current-context: ${name}`,
      "",
    ];
    await writeFile(path, lines.join("\n"), { mode: 0o600 });
    return path;
  }

  async function anonymousPost(
    path: string,
    body: unknown,
  ): Promise<{ status: number; body: unknown; auditID: unknown }> {
    const ca = await readFile(join(dirname(c.kubeconfigPath), "pki", "ca.crt"));
    return new Promise((resolve, reject) => {
      const req = request(
        `${c.server}${path}`,
        { method: "POST", ca, headers: { "content-type": "application/json" }, agent: false },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            text += chunk;
          });
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: JSON.parse(text),
              auditID: res.headers["audit-id"],
            }),
          );
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });
  }

  before(async () => {
    c = await testCluster();
    dir = await mkdtemp(join(tmpdir(), "aggregated-api-"));
    ns = await c.newNamespace("concierge-api");
    authenticatorName = c.uniqueName("corp");
    rbacName = c.uniqueName("concierge-test-pre-authn-apis");

    const ca = await newCA(dir, "serving-ca", "aggregated API test CA", "ec");
    const serving = await newCert(dir, ca, {
      name: "serving",
      cn: "concierge-api",
      dnsNames: [`concierge-api.${ns}.svc`, "localhost"],
      ips: ["127.0.0.1"],
      usage: "server",
    });
    const certs = new ServingCertHolder();
    certs.set({ certPEM: await readFile(serving.cert, "utf8"), keyPEM: await readFile(serving.key, "utf8") });

    // The front-proxy configuration, as a Concierge replica gets it: an informer on the one ConfigMap.
    rest = new KubeRestClient(c.kubeConfig());
    informer = new Informer({
      resource: {
        group: "",
        version: "v1",
        resource: "configmaps",
        namespace: extensionAPIServerAuthentication.namespace,
        fieldSelector: `metadata.name=${extensionAPIServerAuthentication.name}`,
      },
      transport: restTransport(rest),
    });
    const frontProxy = new FrontProxyConfigHolder();
    watchFrontProxyConfig(informer, frontProxy, logs.log);
    informer.start();
    await informer.waitForSync(AbortSignal.timeout(30_000));
    assert.ok(frontProxy.get(), "the front-proxy configuration was not loaded");

    const authenticators = new AuthenticatorCache();
    authenticators.store(
      { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: authenticatorName },
      {
        fingerprint: "test",
        authenticator: {
          authenticateToken: async (token) =>
            token === goodToken
              ? { authenticated: true, user: { ...user, groups: [...user.groups] } }
              : { authenticated: false, reason: "unknown token" },
          close: () => {},
        },
      },
    );
    // Signs with the cluster CA (kube-apiserver's --client-ca-file), so the result logs in for real.
    const clusterCA = {
      cert: join(dirname(c.kubeconfigPath), "pki", "ca.crt"),
      key: join(dirname(c.kubeconfigPath), "pki", "ca.key"),
    };
    let issued = 0;
    const issue = async (u: { username: string; groups: string[] }) => {
      const files = await newCert(dir, clusterCA, {
        name: `client-${++issued}`,
        cn: u.username,
        organizations: u.groups,
        usage: "client",
        days: 1,
      });
      const certificatePEM = await readFile(files.cert, "utf8");
      return {
        type: "certificate" as const,
        certificatePEM,
        keyPEM: await readFile(files.key, "utf8"),
        notAfter: new X509Certificate(certificatePEM).validToDate,
      };
    };

    const [port] = await freePorts(1);
    server = await startAggregatedAPIServer({
      certs,
      frontProxy,
      host: "127.0.0.1",
      port: port!,
      authenticators,
      issuer: { issue: async ({ user }) => ({ ok: true, credential: await issue(user) }) },
      log: logs.log,
      metrics: new Metrics(),
    });

    const caBundle = (await readFile(ca.cert)).toString("base64");
    const objects = [
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "concierge-api", namespace: ns },
        spec: { type: "ExternalName", externalName: "localhost", ports: [{ port: server.port }] },
      },
      ...[login, identity].map((group) => ({
        apiVersion: "apiregistration.k8s.io/v1",
        kind: "APIService",
        metadata: { name: `v1alpha1.${group}` },
        spec: {
          group,
          version: "v1alpha1",
          groupPriorityMinimum: 9900,
          versionPriority: 15,
          caBundle,
          service: { namespace: ns, name: "concierge-api", port: server.port },
        },
      })),
      // As upstream's install: anyone may call the pre-authentication APIs.
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: rbacName },
        rules: [
          { apiGroups: [login], resources: ["tokencredentialrequests"], verbs: ["create", "list"] },
          { apiGroups: [identity], resources: ["whoamirequests"], verbs: ["create", "list"] },
        ],
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: rbacName },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: rbacName },
        subjects: ["system:authenticated", "system:unauthenticated"].map((name) => ({
          apiGroup: "rbac.authorization.k8s.io",
          kind: "Group",
          name,
        })),
      },
    ];
    const res = await kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }),
    });
    assert.equal(res.code, 0, res.stderr);
    const wait = await kubectl([
      "wait",
      "--for=condition=Available",
      "--timeout=90s",
      ...apiServices.map((n) => `apiservice/${n}`),
    ]);
    assert.equal(
      wait.code,
      0,
      `${wait.stderr}\n${(await kubectl(["get", "apiservices", ...apiServices, "-o", "yaml"])).stdout}`,
    );
  });

  after(async () => {
    await c?.kubectl(["delete", "apiservice", ...apiServices, "--ignore-not-found"]);
    if (c) {
      await eventually("kube-apiserver to drop our groups from discovery", async () => {
        const res = await c.kubectl(["get", "--raw", "/apis"]);
        return res.code === 0 && !res.stdout.includes(login) && !res.stdout.includes(identity);
      });
    }
    if (rbacName) {
      await c?.kubectl(["delete", "clusterrolebinding,clusterrole", rbacName, "--ignore-not-found"]);
    }
    if (ns) await c?.kubectl(["delete", "namespace", ns, "--wait=false"]);
    await informer?.stop();
    rest?.close();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("shows both resources in kubectl api-resources", async () => {
    let out = "";
    await eventually("discovery to list both resources", async () => {
      const res = await kubectl(["api-resources", "--categories=pinniped", "-o", "wide", "--cached=false"]);
      out = res.stdout;
      return out.includes("tokencredentialrequests") && out.includes("whoamirequests");
    });
    const rows = out.split("\n").map((l) => l.trim().split(/\s+/));
    const tcrRow = rows.find((r) => r[0] === "tokencredentialrequests");
    const whoRow = rows.find((r) => r[0] === "whoamirequests");
    assert.deepEqual(tcrRow?.slice(1, 4), [`${login}/v1alpha1`, "false", "TokenCredentialRequest"]);
    assert.deepEqual(whoRow?.slice(1, 4), [`${identity}/v1alpha1`, "false", "WhoAmIRequest"]);
    assert.ok(tcrRow?.includes("create,list") || tcrRow?.includes("[create list]"), out);
  });

  it("explains tokencredentialrequest from the aggregated OpenAPI", async () => {
    let out = "";
    await eventually("kubectl explain to find the kind", async () => {
      const res = await kubectl(["explain", "tokencredentialrequest.spec"]);
      out = res.stdout;
      return res.code === 0;
    });
    assert.match(out, /GROUP:\s+login\.concierge\.pinniped\.dev/);
    assert.match(out, /KIND:\s+TokenCredentialRequest/);
    assert.match(out, /authenticator\s+<Object> -required-/);
    assert.match(out, /token\s+<string>/);
    const top = await kubectl(["explain", "whoamirequest"]);
    assert.equal(top.code, 0, top.stderr);
    assert.match(top.stdout, /WhoAmIRequest submits a request to echo back the current authenticated user/);
    // kube-apiserver merges our OpenAPI v2 into its own, which older clients read.
    await eventually("the OpenAPI v2 document to be merged", async () => {
      const v2 = await kubectl(["explain", "--output=plaintext-openapiv2", "tokencredentialrequest.status"]);
      out = v2.stdout;
      return v2.code === 0;
    });
    assert.match(out, /credential\s+<Object>/);
  });

  it("exchanges a good token for a certificate that logs in to kube-apiserver as the user", async () => {
    const res = await create(tcr(goodToken), "json");
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as {
      status: {
        credential: { expirationTimestamp: string; clientCertificateData: string; clientKeyData: string };
      };
    };
    const credential = out.status.credential;
    const cert = new X509Certificate(credential.clientCertificateData);
    assert.equal(credential.expirationTimestamp, `${cert.validToDate.toISOString().slice(0, 19)}Z`);
    const kubeconfig = await kubeconfigFor("pinny", [
      `client-certificate-data: ${Buffer.from(credential.clientCertificateData).toString("base64")}`,
      `client-key-data: ${Buffer.from(credential.clientKeyData).toString("base64")}`,
    ]);
    const whoami = await kubectl(["auth", "whoami", "-o", "json"], { kubeconfig });
    assert.equal(whoami.code, 0, whoami.stderr);
    const info = (
      JSON.parse(whoami.stdout) as { status: { userInfo: { username: string; groups: string[] } } }
    ).status.userInfo;
    assert.equal(info.username, "pinny");
    assert.deepEqual(info.groups, ["tcr-group-a", "tcr-group-b", "system:authenticated"]);
    const get = await kubectl(["get", "namespace", "default"], { kubeconfig });
    assert.notEqual(get.code, 0);
    assert.match(get.stderr, /User "pinny" cannot get resource "namespaces"/);
    // The audit trail carries the token's hash, never the token.
    assert.ok(logs.lines.some((l) => l.message === "TokenCredentialRequest Authenticated User"));
    assert.ok(!JSON.stringify(logs.lines).includes(goodToken));
  });

  it("answers a bad token, or an unknown authenticator, with authentication failed", async () => {
    for (const request of [tcr("not-a-good-token"), tcr(goodToken, "no-such-authenticator")]) {
      const res = await create(request, "json");
      assert.equal(res.code, 0, res.stderr);
      const out = JSON.parse(res.stdout) as { status: unknown };
      assert.deepEqual(out.status, { message: "authentication failed" });
    }
  });

  it("refuses an empty token with upstream's error", async () => {
    const res = await create(tcr(""), "json");
    assert.notEqual(res.code, 0);
    // Two spaces: kubectl prints the Status's kind, which upstream leaves empty as well.
    assert.equal(
      res.stderr.trim(),
      'The  "login" is invalid: spec.token.value: Required value: token must be supplied',
    );
  });

  it("refuses a server-side dry run", async () => {
    const res = await kubectl(["create", "--dry-run=server", "-f", "-"], {
      input: JSON.stringify(tcr(goodToken)),
    });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /dryRun: Unsupported value: \[\]string\{"All"\}/);
  });

  it("validates fields through the aggregator as upstream does: Strict refuses, Warn warns", async () => {
    const withUnknown = JSON.stringify({ ...tcr(goodToken), spec: { ...tcr(goodToken).spec, foo: "bar" } });
    // kubectl looks for fieldValidation on a PATCH operation, which neither we nor upstream serve,
    // so its default (strict) checks the schema itself; the server's check needs the raw path.
    const strict = await kubectl(
      [
        "create",
        "--raw",
        `/apis/${login}/v1alpha1/tokencredentialrequests?fieldValidation=Strict`,
        "-f",
        "-",
      ],
      { input: withUnknown },
    );
    assert.notEqual(strict.code, 0);
    assert.match(
      strict.stderr,
      /TokenCredentialRequest in version "v1alpha1" cannot be handled as a TokenCredentialRequest: strict decoding error: unknown field "spec\.foo"/,
    );
    const warn = await kubectl(["create", "--validate=warn", "-f", "-", "-o", "json"], {
      input: withUnknown,
    });
    assert.equal(warn.code, 0, warn.stderr);
    assert.match(warn.stderr, /Warning: unknown field "spec\.foo"/);
    assert.ok((JSON.parse(warn.stdout) as { status: { credential?: unknown } }).status.credential);
  });

  it("echoes the admin in a WhoAmIRequest", async () => {
    const res = await create(
      { apiVersion: `${identity}/v1alpha1`, kind: "WhoAmIRequest", metadata: { name: "me" } },
      "yaml",
    );
    assert.equal(res.code, 0, res.stderr);
    const out = parse(res.stdout) as {
      status: { kubernetesUserInfo: { user: { username: string; groups: string[] } } };
    };
    assert.equal(out.status.kubernetesUserInfo.user.username, "kubernetes-admin");
    assert.deepEqual(out.status.kubernetesUserInfo.user.groups, ["system:masters", "system:authenticated"]);
  });

  // Over plain HTTPS without credentials: kubectl, given a kubeconfig user without credentials,
  // prompts for a password instead of calling anonymously.
  it("lets an anonymous client exchange a token and see itself as anonymous", async () => {
    const tokenReply = await anonymousPost(`/apis/${login}/v1alpha1/tokencredentialrequests`, tcr(goodToken));
    assert.equal(tokenReply.status, 201, JSON.stringify(tokenReply.body));
    assert.ok((tokenReply.body as { status: { credential?: unknown } }).status.credential);
    // The audit events carry kube-apiserver's audit ID of the same request.
    const audited = logs.lines
      .filter((l) => l.message === "TokenCredentialRequest Authenticated User")
      .at(-1);
    assert.equal(audited?.auditID, tokenReply.auditID);
    const who = await anonymousPost(`/apis/${identity}/v1alpha1/whoamirequests`, {
      apiVersion: `${identity}/v1alpha1`,
      kind: "WhoAmIRequest",
    });
    assert.equal(who.status, 201, JSON.stringify(who.body));
    assert.deepEqual((who.body as { status: { kubernetesUserInfo: unknown } }).status.kubernetesUserInfo, {
      user: { username: "system:anonymous", groups: ["system:unauthenticated"] },
    });
  });

  it("lists nothing", async () => {
    const res = await kubectl(["get", "tokencredentialrequests,whoamirequests"]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /No resources found/);
    const raw = await kubectl(["get", "--raw", `/apis/${login}/v1alpha1/tokencredentialrequests`]);
    assert.deepEqual(JSON.parse(raw.stdout), {
      kind: "TokenCredentialRequestList",
      apiVersion: `${login}/v1alpha1`,
      metadata: { resourceVersion: "0" },
      items: [],
    });
  });
});
