// The whole Concierge process (server/main.ts) as hack/run-local.ts runs it: installed from
// config/, running as its own ServiceAccount (so config/02-rbac.yaml is what it may do), reached by
// the REAL kube-apiserver through the APIServices and the admission webhook of config/.
//
// It has a control plane of its own: the APIServices are the real, cluster-scoped
// v1alpha1.{login,identity}.concierge.pinniped.dev ones, which aggregated-api.test.ts also creates
// on the shared control plane.
//
// The control plane runs kube-apiserver and kube-controller-manager as processes, with no kubelet
// and no Pod objects for them, so the test plays the node (test/harness/play-node.ts): it creates
// a Node whose kubelet is a stand-in (test/harness/kubelet-standin.ts) answering exec the way the
// agent binary would, plays kube-controller-manager's static (mirror) pod naming the control
// plane's real signing CA, and marks pods Running as a kubelet would. The process's
// kube-cert-agent then borrows that key for real (Deployment, ReplicaSet, exec through
// kube-apiserver to the kubelet): no test hook loads it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Pod } from "../../controllers/kubecertagent/agent.ts";
import { type ControlPlane, freePorts } from "../../hack/controlplane.ts";
import { configDir, type LocalConcierge } from "../../hack/run-local.ts";
import { KubeRestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { apiServiceNames } from "../../server/main.ts";
import { dedicatedKubectl, startTestControlPlane } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import {
  issuerStrategies,
  requestCredential,
  startLocalConcierge,
  type TCRStatus,
  whoamiWith,
} from "../harness/local-concierge.ts";
import type { AuthenticatorRef } from "../harness/login.ts";
import { startOIDCProvider, type TestOIDCProvider } from "../harness/oidc-provider.ts";
import { agentSelector, type PlayedNode, playControlPlaneNode } from "../harness/play-node.ts";
import { startTokenReviewWebhook, type TokenReviewWebhook } from "../harness/tokenreview-webhook.ts";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const namespace = "pinniped-concierge";
const secretName = "pinniped-concierge-api-tls-serving-certificate";
const goodToken = "concierge-process-test-token";
const user = { username: "pinny", groups: ["seals", "walruses"] };
const oidcUser = { username: "oidc-pinny", groups: ["otters", "sea-lions"] };
const audience = "concierge-process-test";
const otherAudience = "some-other-client";
const nodeName = "concierge-process-node";

const webhookRef: AuthenticatorRef = { kind: "WebhookAuthenticator", name: "corp" };
const jwtRef: AuthenticatorRef = { kind: "JWTAuthenticator", name: "oidc" };

// How long and how often this file waited before eventually was shared: its tests keep that timing.
const polling = { timeoutMs: 90_000 };

describe("the Concierge process, run locally against a dedicated control plane", () => {
  let cp: ControlPlane;
  let dir: string;
  let concierge: LocalConcierge;
  let webhook: TokenReviewWebhook;
  let oidc: TestOIDCProvider;
  let node: PlayedNode | undefined;
  let admin: KubeRestClient;
  const logs = memoryLogger("info");

  const k = dedicatedKubectl(() => ({ cluster: cp, dir }));
  const { kubectl, ok } = k;
  const health = (path: string) => fetch(`http://127.0.0.1:${concierge.ports.health}${path}`);
  const secret = async () => {
    const res = await kubectl(["get", "secret", "-n", namespace, secretName, "-o", "json"]);
    return res.code === 0
      ? (JSON.parse(res.stdout) as { metadata: { uid: string }; data: Record<string, string> })
      : undefined;
  };
  const caBundles = async () =>
    Promise.all(apiServiceNames.map((n) => ok(["get", "apiservice", n, "-o", "jsonpath={.spec.caBundle}"])));
  const login = (token = goodToken, authenticator = webhookRef) => requestCredential(k, token, authenticator);
  /** `kubectl auth whoami` with a kubeconfig holding only the TCR's client certificate. */
  const whoami = (name: string, credential: NonNullable<TCRStatus["credential"]>) =>
    whoamiWith(k, cp, join(dir, `${name}.kubeconfig`), credential);
  const strategies = () => issuerStrategies(k);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "concierge-process-"));
    cp = await startTestControlPlane("concierge");
    admin = new KubeRestClient(cp.kubeConfig());
    webhook = await startTokenReviewWebhook({ users: { [goodToken]: user } });
    oidc = await startOIDCProvider({ audiences: [audience, otherAudience] });
    concierge = await startLocalConcierge(cp, { log: logs.log, identity: "concierge-process-test" });
  });

  after(async () => {
    await concierge?.stop();
    await node?.stop();
    await oidc?.close();
    await webhook?.close();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // /metrics: on the HTTPS port, behind TokenReview and SubjectAccessReview (metrics-endpoint.test.ts).
  it("reaches /readyz and answers /healthz and /livez on the plain-HTTP port, and no /metrics there", async () => {
    assert.equal((await health("/healthz")).status, 200);
    assert.equal((await health("/livez")).status, 200);
    await eventually("/readyz", async () => (await health("/readyz")).status === 200, polling);
    assert.ok(concierge.ready());
    assert.equal((await health("/metrics")).status, 404);
  });

  it("runs as its ServiceAccount, with no more rights than config/02-rbac.yaml grants", async () => {
    const who = await ok(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], {
      kubeconfig: concierge.kubeconfigPath,
    });
    assert.equal(who, "system:serviceaccount:pinniped-concierge:pinniped-concierge");
    const can = (args: string[]) =>
      kubectl(["auth", "can-i", ...args], { kubeconfig: concierge.kubeconfigPath });
    assert.equal((await can(["delete", "secrets", "-n", namespace])).code, 0);
    assert.equal((await can(["get", "secrets", "-n", "kube-system"])).code, 1);
    assert.equal((await can(["patch", "apiservice/v1alpha1.apps"])).code, 1);
    assert.equal((await can(["create", "clusterroles"])).code, 1);
  });

  it("holds the Lease named after the Deployment", async () => {
    await eventually("leadership", async () => concierge.manager.leader.isLeader(), polling);
    const holder = await ok([
      "get",
      "lease",
      "-n",
      namespace,
      "pinniped-concierge",
      "-o",
      "jsonpath={.spec.holderIdentity}",
    ]);
    assert.equal(holder, "concierge-process-test");
  });

  it("deletes a kube-cert-agent pod left by Pinniped v0.7.0 or older, and no other pod", async () => {
    const agentPod = (name: string, labels: Record<string, string>) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace, labels },
        spec: {
          automountServiceAccountToken: false,
          containers: [{ name: "sleeper", image: "debian:latest", command: ["sleep", "infinity"] }],
        },
      });
    // The old agent label with the Concierge's labels, as old versions created it; and two that
    // are not such pods: the old label without the Concierge's labels, and today's label value.
    const created = async (name: string, labels: Record<string, string>) =>
      eventually(
        `pod ${name} created`,
        async () => (await kubectl(["create", "-f", "-"], { input: agentPod(name, labels) })).code === 0,
        polling,
      );
    await created("legacy-agent", { "kube-cert-agent.pinniped.dev": "true", app: "pinniped-concierge" });
    await created("not-ours", { "kube-cert-agent.pinniped.dev": "true" });
    await created("current-label", { "kube-cert-agent.pinniped.dev": "v2", app: "pinniped-concierge" });
    await eventually(
      "the legacy agent pod deleted",
      async () => (await kubectl(["get", "pod", "-n", namespace, "legacy-agent"])).code !== 0,
      polling,
    );
    assert.ok(logs.lines.some((l) => l.message === "deleted legacy kube-cert-agent pod"));
    const left = await ok(["get", "pods", "-n", namespace, "-o", "name", "not-ours", "current-label"]);
    assert.equal(left.trim(), "pod/not-ours\npod/current-label");
    await ok(["delete", "pod", "-n", namespace, "not-ours", "current-label", "--wait=false"]);
  });

  it("creates the serving-cert Secret, and both APIServices become Available with its CA", async () => {
    const s = await eventually("the serving-cert Secret", secret, polling);
    assert.deepEqual(Object.keys(s.data).sort(), [
      "caCertificate",
      "caCertificatePrivateKey",
      "tlsCertificateChain",
      "tlsPrivateKey",
    ]);
    await ok([
      "wait",
      "--for=condition=Available",
      "--timeout=90s",
      ...apiServiceNames.map((n) => `apiservice/${n}`),
    ]);
    // Both are base64 of the same PEM.
    assert.deepEqual(await caBundles(), [s.data.caCertificate, s.data.caCertificate]);
  });

  it("shows tokencredentialrequests in kubectl api-resources", async () => {
    const out = await eventually(
      "discovery",
      async () => {
        const res = await kubectl([
          "api-resources",
          "--api-group=login.concierge.pinniped.dev",
          "--cached=false",
        ]);
        return res.stdout.includes("tokencredentialrequests") ? res.stdout : undefined;
      },
      polling,
    );
    assert.match(
      out,
      /tokencredentialrequests\s+login\.concierge\.pinniped\.dev\/v1alpha1\s+false\s+TokenCredentialRequest/,
    );
  });

  it("stores authenticators upstream's CRD accepts, warns at apply time (the webhook's caBundle was filled), and reports the problem in upstream's words", async () => {
    const s = await eventually("the serving-cert Secret", secret, polling);
    await eventually(
      "the webhook configuration's caBundle",
      async () => {
        const bundles = await ok([
          "get",
          "validatingwebhookconfiguration",
          "pinniped-concierge-authenticators",
          "-o",
          "jsonpath={.webhooks[*].clientConfig.caBundle}",
        ]);
        return bundles === `${s.data.caCertificate} ${s.data.caCertificate}`;
      },
      polling,
    );
    const tlsCondition = async (kind: string, name: string) => {
      const out = await ok(["get", kind, name, "-o", "json"]);
      const status = (
        JSON.parse(out) as {
          status?: { phase?: string; conditions?: { type: string; status: string; message: string }[] };
        }
      ).status;
      const condition = status?.conditions?.find((c) => c.type === "TLSConfigurationValid");
      return condition && { phase: status?.phase, status: condition.status, message: condition.message };
    };
    const cases = [
      {
        kind: "jwtauthenticator",
        manifest:
          "{apiVersion: authentication.concierge.pinniped.dev/v1alpha1, kind: JWTAuthenticator, metadata: {name: bad-ca}, " +
          "spec: {issuer: 'https://issuer.example.com', audience: concierge, tls: {certificateAuthorityData: pretend-this-is-a-certificate}}}",
        warning:
          'Warning: spec.tls.certificateAuthorityData: Invalid value: "<omitted>": illegal base64 data at input byte 7',
        condition: "spec.tls.certificateAuthorityData is invalid: illegal base64 data at input byte 7",
      },
      {
        kind: "webhookauthenticator",
        manifest:
          "{apiVersion: authentication.concierge.pinniped.dev/v1alpha1, kind: WebhookAuthenticator, metadata: {name: two-cas}, " +
          "spec: {endpoint: 'https://webhook.example.com', tls: {certificateAuthorityData: Zm9v, " +
          "certificateAuthorityDataSource: {kind: Secret, name: ca, key: ca.crt}}}}",
        warning:
          "Warning: spec.tls.certificateAuthorityDataSource: Forbidden: may not be specified together with spec.tls.certificateAuthorityData\n" +
          'Warning: spec.tls.certificateAuthorityData: Invalid value: "<omitted>": no base64-encoded PEM certificates found in 4 bytes of data (PEM certificates must begin with "-----BEGIN CERTIFICATE-----")',
        condition:
          "spec.tls is invalid: both tls.certificateAuthorityDataSource and tls.certificateAuthorityData provided",
      },
    ];
    for (const c of cases) {
      const res = await kubectl(["apply", "-f", "-"], { input: c.manifest });
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stderr.trim(), c.warning);
      const name = c.manifest.match(/name: ([a-z-]+)/)![1]!;
      const condition = await eventually(
        `${c.kind} ${name}'s TLS condition`,
        () => tlsCondition(c.kind, name),
        polling,
      );
      assert.deepEqual(condition, { phase: "Error", status: "False", message: c.condition });
      await ok(["delete", c.kind, name]);
    }
  });

  it("makes a WebhookAuthenticator for the test TokenReview webhook Ready", async () => {
    await ok(["apply", "-f", "-"], {
      input: [
        "apiVersion: authentication.concierge.pinniped.dev/v1alpha1",
        "kind: WebhookAuthenticator",
        "metadata: {name: corp}",
        `spec: {endpoint: '${webhook.url}', tls: {certificateAuthorityData: '${webhook.caBase64}'}}`,
      ].join("\n"),
    });
    await ok(["wait", "--for=jsonpath={.status.phase}=Ready", "--timeout=60s", "webhookauthenticator/corp"]);
  });

  it("makes a JWTAuthenticator for the test OIDC provider Ready", async () => {
    await ok(["apply", "-f", "-"], {
      input: [
        "apiVersion: authentication.concierge.pinniped.dev/v1alpha1",
        "kind: JWTAuthenticator",
        `metadata: {name: ${jwtRef.name}}`,
        `spec: {issuer: '${oidc.issuer}', audience: ${audience}, tls: {certificateAuthorityData: '${Buffer.from(oidc.caPEM).toString("base64")}'}}`,
      ].join("\n"),
    });
    await ok([
      "wait",
      "--for=jsonpath={.status.phase}=Ready",
      "--timeout=60s",
      `jwtauthenticator/${jwtRef.name}`,
    ]);
  });

  it("publishes the kube-cert-agent strategy's error in the CredentialIssuer (before the test plays a node: no kube-controller-manager pod)", async () => {
    const strategy = await eventually(
      "the KubeClusterSigningCertificate strategy",
      async () => (await strategies()).find((s) => s.type === "KubeClusterSigningCertificate"),
      polling,
    );
    assert.equal(strategy.status, "Error");
    assert.equal(strategy.reason, "CouldNotFetchKey");
  });

  it("answers a TokenCredentialRequest with 'authentication failed' while no signing CA is loaded", async () => {
    assert.equal(concierge.holders.kubeSigner.get(), undefined);
    const status = await login();
    assert.equal(status.credential, undefined);
    assert.equal(status.message, "authentication failed");
    // A valid ID token too: the token is good, there is nothing to sign with.
    const token = await oidc.mint({ subject: "oidc-subject", audience, claims: oidcUser });
    const jwt = await login(token, jwtRef);
    assert.equal(jwt.credential, undefined);
    assert.equal(jwt.message, "authentication failed");
  });

  it("borrows the control plane's signing key through kube-cert-agent once the test plays the node, its kubelet and kube-controller-manager's static pod", async (t) => {
    const began = performance.now();
    node = await playControlPlaneNode({ kubeconfigPath: cp.kubeconfigPath, namespace, nodeName });
    const { clusterCA, kubelet } = node;

    // The agent Deployment the process creates; kube-controller-manager's Deployment and
    // ReplicaSet controllers make its pod, which the played node marks Running.
    const deployment = await eventually(
      "the agent Deployment",
      async () => {
        const res = await kubectl([
          "get",
          "deployment",
          "-n",
          namespace,
          "pinniped-concierge-kube-cert-agent",
          "-o",
          "json",
        ]);
        return res.code === 0
          ? (JSON.parse(res.stdout) as { spec: { template: { spec: Pod["spec"] } } })
          : undefined;
      },
      polling,
    );
    const agentSpec = deployment.spec.template.spec;
    assert.equal(agentSpec?.nodeName, nodeName);
    assert.deepEqual(agentSpec?.containers?.[0]?.env, [
      { name: "CERT_PATH", value: clusterCA.cert },
      { name: "KEY_PATH", value: clusterCA.key },
    ]);
    const listAgentPods = async () =>
      (
        await admin.request<{ items: Pod[] }>({
          method: "GET",
          path: `/api/v1/namespaces/${namespace}/pods`,
          query: { labelSelector: agentSelector },
        })
      ).items;
    await eventually(
      "the agent pod",
      async () => ((await listAgentPods()).length > 0 ? true : undefined),
      polling,
    );
    const strategy = await eventually(
      "KubeClusterSigningCertificate Success/FetchedKey",
      async () => {
        const s = (await strategies()).find((x) => x.type === "KubeClusterSigningCertificate");
        return s?.status === "Success" ? s : undefined;
      },
      polling,
    );
    assert.equal(strategy.reason, "FetchedKey");
    assert.equal(strategy.message, "key was fetched successfully");
    // kubectl's DEFAULTSTRATEGY column shows it.
    const table = await ok(["get", "credentialissuer", "pinniped-concierge-config"]);
    const [header, row] = table.trim().split("\n");
    const column = header!.split(/\s+/).indexOf("DEFAULTSTRATEGY");
    assert.notEqual(column, -1, table);
    assert.equal(row!.split(/\s+/)[column], "KubeClusterSigningCertificate", table);
    // The key loaded is the control plane's, fetched by exec through kube-apiserver.
    assert.equal(
      concierge.holders.kubeSigner.get()?.certPEM.trim(),
      (await readFile(clusterCA.cert, "utf8")).trim(),
    );
    assert.ok(kubelet.execs.length > 0);
    assert.ok(
      kubelet.execs.every(
        (e) =>
          e.namespace === namespace && e.command.join(" ") === "pinniped-concierge-kube-cert-agent print",
      ),
    );
    assert.deepEqual(kubelet.rejected, []);
    t.diagnostic(`node played to FetchedKey in ${Math.round(performance.now() - began)} ms`);
  });

  it("issues a WebhookAuthenticator TCR certificate, from the key kube-cert-agent borrowed from the (test-played) static pod, that kubectl auth whoami accepts", async () => {
    const status = await login();
    assert.ok(status.credential, status.message);
    const who = await whoami("pinny", status.credential);
    assert.equal(who.username, user.username);
    assert.deepEqual(who.groups, [...user.groups, "system:authenticated"]);
    const bad = await login("not-a-valid-token");
    assert.equal(bad.credential, undefined);
    assert.equal(bad.message, "authentication failed");
  });

  it("issues a JWTAuthenticator TCR certificate for an ID token from the OIDC provider, from the borrowed key, that kubectl auth whoami accepts; a token for another audience fails", async () => {
    const token = await oidc.mint({ subject: "oidc-subject", audience, claims: oidcUser });
    const status = await login(token, jwtRef);
    assert.ok(status.credential, status.message);
    const who = await whoami("oidc-pinny", status.credential);
    assert.equal(who.username, oidcUser.username);
    assert.deepEqual(who.groups, [...oidcUser.groups, "system:authenticated"]);
    const foreign = await oidc.mint({ subject: "oidc-subject", audience: otherAudience, claims: oidcUser });
    const bad = await login(foreign, jwtRef);
    assert.equal(bad.credential, undefined);
    assert.equal(bad.message, "authentication failed");
  });

  it("succeeds 10 TokenCredentialRequests in a row across a serving-cert rotation (Secret deleted after the 5th)", async () => {
    const before = await eventually("the serving-cert Secret", secret, polling);
    const servedBefore = concierge.holders.servingCerts.get()?.certPEM;
    // No pause around the deletion: the old pair serves until the new one is loaded, and the
    // new one is loaded before (or as) the caBundles change, so no request should fail.
    for (let i = 1; i <= 10; i++) {
      const status = await login();
      assert.ok(status.credential, `TCR ${i}: ${status.message}`);
      if (i === 5) await ok(["delete", "secret", "-n", namespace, secretName]);
    }
    const rotated = await eventually(
      "a new serving-cert Secret",
      async () => {
        const s = await secret();
        return s && s.metadata.uid !== before.metadata.uid ? s : undefined;
      },
      polling,
    );
    assert.notEqual(rotated.data.caCertificate, before.data.caCertificate);
    assert.notEqual(rotated.data.tlsCertificateChain, before.data.tlsCertificateChain);
    await eventually(
      "both caBundles to follow the new CA",
      async () => (await caBundles()).every((b) => b === rotated.data.caCertificate),
      polling,
    );
    await eventually(
      "the new pair to be served",
      async () => {
        const served = concierge.holders.servingCerts.get()?.certPEM;
        return served !== servedBefore && served !== undefined;
      },
      polling,
    );
    // Upstream's check once the rotation is done: ten in a row, through the new CA.
    for (let i = 1; i <= 10; i++) {
      const status = await login();
      assert.ok(status.credential, `TCR ${i} after the rotation: ${status.message}`);
    }
  });

  it("keeps config/07-deployment.yaml acceptable to kube-apiserver (server-side dry run; nothing would run it)", async () => {
    await ok(["apply", "--dry-run=server", "-f", join(configDir, "07-deployment.yaml")]);
  });

  it("releases the Lease on stop()", async () => {
    await concierge.stop();
    const holder = await ok([
      "get",
      "lease",
      "-n",
      namespace,
      "pinniped-concierge",
      "-o",
      "jsonpath={.spec.holderIdentity}",
    ]);
    assert.equal(holder, "");
    await assert.rejects(health("/healthz"));
    assert.ok(logs.lines.some((l) => l.message === "stopped"));
    // The process ran as its ServiceAccount throughout: a rule missing from config/02-rbac.yaml
    // would have shown up here as a refused request.
    assert.deepEqual(
      logs.lines.filter((l) => /forbidden/i.test(JSON.stringify(l))),
      [],
    );
  });

  it("runs as `node server/main.ts --config … --kubeconfig …` and exits 0 on SIGTERM, releasing the Lease", async () => {
    const [healthPort] = await freePorts(1);
    const configPath = join(dir, "pinniped.yaml");
    await writeFile(
      configPath,
      [
        `namespace: ${namespace}`,
        // The port the APIServices and the webhook configuration already name.
        `aggregatedAPIServerPort: ${concierge.ports.aggregatedAPI}`,
        `healthPort: ${healthPort}`,
        "extraServingSANs: [localhost, 127.0.0.1]",
      ].join("\n"),
    );
    const child = spawn(
      process.execPath,
      [join(repoRoot, "server", "main.ts"), "--config", configPath, "--kubeconfig", concierge.kubeconfigPath],
      { env: { ...process.env, POD_NAME: "concierge-process-child" }, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await eventually(
        "the child's /readyz",
        async () => {
          const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined);
          return res?.status === 200;
        },
        polling,
      );
      await eventually(
        "the child to take the Lease",
        async () => {
          const holder = await ok([
            "get",
            "lease",
            "-n",
            namespace,
            "pinniped-concierge",
            "-o",
            "jsonpath={.spec.holderIdentity}",
          ]);
          return holder === "concierge-process-child";
        },
        polling,
      );
    } catch (err) {
      child.kill("SIGKILL");
      throw new Error(`${(err as Error).message}\n${stderr}`);
    }
    child.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
    const holder = await ok([
      "get",
      "lease",
      "-n",
      namespace,
      "pinniped-concierge",
      "-o",
      "jsonpath={.spec.holderIdentity}",
    ]);
    assert.equal(holder, "");
    const messages = stderr
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { message: string }).message);
    for (const step of [
      "config loaded",
      "starting",
      "reconcilers registered",
      "informers synced",
      "stopped",
    ]) {
      assert.ok(messages.includes(step), `no "${step}" log line in:\n${stderr}`);
    }
  });
});
