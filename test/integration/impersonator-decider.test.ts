// The impersonation proxy's request decider against the real kube-apiserver: its TokenReviews and
// SubjectAccessReviews go out with the admin's credentials, RBAC decides, and the headers it
// produces are sent to kube-apiserver to show that they make it run the request as the right user.
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import https from "node:https";
import { before, describe, it } from "node:test";
import { CertificateAuthority } from "../../certs/ca.ts";
import { issueClientCertificate } from "../../certs/issue.ts";
import { createRequestDecider } from "../../impersonator/decider.ts";
import type { Decision, Forward, IncomingRequest, RequestDecider } from "../../impersonator/types.ts";
import { KubeRestClient } from "../../kube/rest.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";

const marker = "decision made by impersonation-proxy.concierge.pinniped.dev";
const credentialIDKey = "authentication.kubernetes.io/credential-id";

function forwarded(decision: Decision): Forward {
  assert.equal(decision.action, "forward", JSON.stringify(decision));
  return decision as Forward;
}

describe("impersonation proxy decider against kube-apiserver", { timeout: 60_000 }, () => {
  let c: TestCluster;
  let ns: string;
  let decide: RequestDecider;
  let saToken: string;
  let proxyToken: string;
  let certFor: (username: string) => Promise<X509Certificate>;
  const names = { carol: "", dave: "", bob: "" };

  const kubectl = async (...args: string[]) => {
    const res = await c.kubectl(args);
    assert.equal(res.code, 0, `kubectl ${args.join(" ")}: ${res.stderr}`);
    return res.stdout.trim();
  };

  const incoming = (method: string, path: string, extra: Partial<IncomingRequest>): IncomingRequest => ({
    method,
    path,
    headers: {},
    verifiedClientCertificate: undefined,
    remoteAddress: "127.0.0.1",
    upgrade: false,
    ...extra,
  });

  // RBAC reaches the authorizer through an informer, so a fresh binding may take a moment.
  async function eventuallyDecide(
    request: IncomingRequest,
    until: (d: Decision) => boolean,
  ): Promise<Decision> {
    let last: Decision | undefined;
    for (let i = 0; i < 50; i++) {
      last = await decide(request, AbortSignal.timeout(10_000));
      if (until(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    return last!;
  }

  // Sends a decision's headers to kube-apiserver as the server would forward the request.
  async function sendUpstream(
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    body?: unknown,
  ): Promise<{ code: number; json: unknown }> {
    const kc = c.kubeConfig();
    const cluster = kc.getCurrentCluster()!;
    const ca = cluster.caData ? Buffer.from(cluster.caData, "base64") : undefined;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        new URL(path, cluster.server),
        {
          method,
          ...(ca ? { ca } : {}),
          headers: { ...headers, ...(payload ? { "content-type": "application/json" } : {}) },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            text += chunk;
          });
          res.on("end", () => resolve({ code: res.statusCode ?? 0, json: JSON.parse(text) }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  before(async () => {
    c = await testCluster();
    ns = await c.newNamespace("ipdecider");
    for (const key of Object.keys(names) as (keyof typeof names)[]) names[key] = c.uniqueName(`ipd-${key}`);

    await kubectl("create", "serviceaccount", "bot", "-n", ns);
    await kubectl("create", "serviceaccount", "proxy", "-n", ns);
    saToken = await kubectl("create", "token", "bot", "-n", ns);
    proxyToken = await kubectl("create", "token", "proxy", "-n", ns);

    const role = (name: string, ...args: string[]) => kubectl("create", "clusterrole", name, ...args);
    const bind = (name: string, ...args: string[]) =>
      kubectl("create", "clusterrolebinding", name, `--clusterrole=${name}`, ...args);
    // The proxy's own rights, as upstream's deploy/concierge/rbac.yaml grants them (kubectl create
    // clusterrole cannot express the authentication.k8s.io `*` rule).
    const proxyRole = `${ns}-proxy`;
    const created = await c.kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: proxyRole },
        rules: [
          { apiGroups: [""], resources: ["users", "groups", "serviceaccounts"], verbs: ["impersonate"] },
          { apiGroups: ["authentication.k8s.io"], resources: ["*"], verbs: ["impersonate"] },
        ],
      }),
    });
    assert.equal(created.code, 0, created.stderr);
    await bind(proxyRole, `--serviceaccount=${ns}:proxy`);
    await role(names.carol, "--verb=list", "--resource=namespaces");
    await bind(names.carol, `--user=${names.carol}`);

    const ca = await CertificateAuthority.create("decider test client CA", 3_600_000);
    certFor = async (username) =>
      new X509Certificate((await issueClientCertificate(ca, { username, groups: ["testers"] })).certPEM);
    decide = createRequestDecider({
      client: new KubeRestClient(c.kubeConfig()),
      proxyToken: () => proxyToken,
      // These tests grant RBAC between requests; a cached denial would hide the grant for 10 s.
      denyCacheTTLMs: 0,
    });
  });

  it("passes a service-account token through after a real TokenReview", async () => {
    const d = forwarded(
      await decide(
        incoming("GET", "/version", { headers: { authorization: `Bearer ${saToken}` } }),
        AbortSignal.timeout(10_000),
      ),
    );
    assert.deepEqual(d.headers, { Authorization: `Bearer ${saToken}` });
    assert.equal(d.audit.passthrough, true);
    assert.equal(d.audit.user.username, `system:serviceaccount:${ns}:bot`);
    assert.ok(d.audit.user.uid, "a service account token authenticates with a UID");
  });

  it("refuses a token kube-apiserver does not accept", async () => {
    const d = await decide(
      incoming("GET", "/version", { headers: { authorization: "Bearer not-a-token" } }),
      AbortSignal.timeout(10_000),
    );
    assert.deepEqual(d, { action: "refuse", code: 401, reason: "Unauthorized", message: "Unauthorized" });
  });

  it("authorizes a certificate user with RBAC and forwards headers kube-apiserver honours", async () => {
    const cert = await certFor(names.carol);
    const allowed = forwarded(
      await eventuallyDecide(
        incoming("GET", "/api/v1/namespaces", { verifiedClientCertificate: cert }),
        (d) => d.action === "forward",
      ),
    );
    assert.deepEqual(allowed.headers, {
      Authorization: `Bearer ${proxyToken}`,
      "Impersonate-User": names.carol,
      "Impersonate-Group": ["testers", "system:authenticated"],
      "Impersonate-Extra-authentication.kubernetes.io%2Fcredential-id": [
        `X509SHA256=${createHash("sha256").update(cert.raw).digest("hex")}`,
      ],
    });
    const upstream = await sendUpstream("GET", "/api/v1/namespaces", allowed.headers);
    assert.equal(upstream.code, 200, JSON.stringify(upstream.json));

    const denied = await decide(
      incoming("GET", `/api/v1/namespaces/${ns}/secrets`, { verifiedClientCertificate: cert }),
      AbortSignal.timeout(10_000),
    );
    assert.equal(denied.action, "refuse");
    assert.equal((denied as { code: number }).code, 403);
    assert.match(
      (denied as { message: string }).message,
      new RegExp(
        `^secrets is forbidden: User "${names.carol}" cannot list resource "secrets" in API group "" in the namespace "${ns}": (.*, )?${marker}$`,
      ),
    );
  });

  it("allows nested impersonation only with an impersonate grant", async () => {
    const cert = await certFor(names.dave);
    const request = incoming("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
      verifiedClientCertificate: cert,
      headers: { "impersonate-user": names.bob },
    });
    const denied = await decide(request, AbortSignal.timeout(10_000));
    assert.equal(denied.action, "refuse");
    assert.match(
      (denied as { message: string }).message,
      new RegExp(
        `^users "${names.bob}" is forbidden: User "${names.dave}" cannot impersonate resource "users" in API group "" at the cluster scope: (.*, )?${marker}$`,
      ),
    );

    await kubectl(
      "create",
      "clusterrole",
      names.dave,
      "--verb=impersonate",
      "--resource=users",
      `--resource-name=${names.bob}`,
    );
    await kubectl(
      "create",
      "clusterrolebinding",
      names.dave,
      `--clusterrole=${names.dave}`,
      `--user=${names.dave}`,
    );
    const allowed = forwarded(await eventuallyDecide(request, (d) => d.action === "forward"));
    assert.equal(allowed.headers["Impersonate-User"], names.bob);
    assert.equal(allowed.audit.impersonatedUser?.username, names.bob);

    const upstream = await sendUpstream(
      "POST",
      "/apis/authentication.k8s.io/v1/selfsubjectreviews",
      allowed.headers,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "SelfSubjectReview",
      },
    );
    assert.equal(upstream.code, 201, JSON.stringify(upstream.json));
    const userInfo = (
      upstream.json as { status: { userInfo: { username: string; extra?: Record<string, string[]> } } }
    ).status.userInfo;
    assert.equal(userInfo.username, names.bob);
    assert.deepEqual(userInfo.extra?.["original-user-info.impersonation-proxy.concierge.pinniped.dev"], [
      JSON.stringify({
        username: names.dave,
        groups: ["testers", "system:authenticated"],
        extra: { [credentialIDKey]: [`X509SHA256=${createHash("sha256").update(cert.raw).digest("hex")}`] },
      }),
    ]);
  });

  it("forwards a certificate user's credential ID exactly as kube-apiserver computes it", async () => {
    const user = c.kubeConfig().getCurrentUser();
    assert.ok(user?.certData || user?.certFile, "the admin kubeconfig holds a client certificate");
    const pem = user.certData ? Buffer.from(user.certData, "base64") : await readFile(user.certFile!);
    const direct = JSON.parse(await kubectl("auth", "whoami", "-o", "json")) as {
      status: { userInfo: { extra?: Record<string, string[]> } };
    };
    const expected = direct.status.userInfo.extra?.[credentialIDKey];
    assert.ok(expected, "kube-apiserver gives certificate users a credential ID");

    const path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    const d = forwarded(
      await decide(
        incoming("POST", path, { verifiedClientCertificate: new X509Certificate(pem) }),
        AbortSignal.timeout(10_000),
      ),
    );
    const upstream = await sendUpstream("POST", path, d.headers, {
      apiVersion: "authentication.k8s.io/v1",
      kind: "SelfSubjectReview",
    });
    assert.equal(upstream.code, 201, JSON.stringify(upstream.json));
    const through = (upstream.json as { status: { userInfo: { extra?: Record<string, string[]> } } }).status
      .userInfo;
    assert.deepEqual(through.extra?.[credentialIDKey], expected);
  });
});
