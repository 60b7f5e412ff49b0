// The login strategies beyond upstream's two, each alone and failing over to the next, on a
// control plane of their own (the Concierge runs as a local process, as hack/run-local.ts runs
// it, with exactly config/'s RBAC plus what each strategy's README row asks for), through the
// real aggregator and checked by the real kube-apiserver with `kubectl auth whoami`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse, parseAllDocuments } from "yaml";
import { CertificateAuthority } from "../../certs/ca.ts";
import { createSigningRequest } from "../../certs/csr.ts";
import { generateKey, keyPEM, selfSignedCertificate } from "../../certs/testing.ts";
import type { ControlPlane } from "../../hack/controlplane.ts";
import type { LocalConcierge } from "../../hack/run-local.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { dedicatedKubectl, startTestControlPlane } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import {
  type Credential,
  issuerStrategies,
  requestCredential,
  type Strategy,
  secretStrategyRBAC,
  signerSecretRef,
  signerSecretWith,
  startLocalConcierge,
  whoamiWith,
} from "../harness/local-concierge.ts";
import { startTokenReviewWebhook, type TokenReviewWebhook } from "../harness/tokenreview-webhook.ts";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const goodToken = "strategies-test-token";
const user = { username: "pinny", groups: ["seals", "walruses"] };
const { namespace: signerNamespace, name: signerSecret } = signerSecretRef;

describe("login strategies, on a dedicated control plane", () => {
  let cp: ControlPlane;
  let dir: string;
  let webhook: TokenReviewWebhook;
  let concierge: LocalConcierge | undefined;
  const logs = memoryLogger("info");

  const k = dedicatedKubectl(() => ({ cluster: cp, dir }));
  const { kubectl, ok } = k;
  const apply = (...objects: object[]) =>
    ok(["apply", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }) });

  /** Stops the running Concierge, if any, and starts one with these `strategies` settings. */
  const startWith = async (strategies: Record<string, unknown>) => {
    await concierge?.stop();
    concierge = await startLocalConcierge(cp, {
      log: logs.log,
      identity: "strategies-test",
      configOverrides: { strategies },
    });
    await eventually("the Concierge ready", () => concierge?.ready(), { timeoutMs: 90_000 });
    // The APIServices now name the new listener's port; until the aggregator has taken that in,
    // it answers 503 for the group.
    await eventually(
      "the aggregator routing to the new listener",
      async () => (await kubectl(["get", "--raw", "/apis/login.concierge.pinniped.dev/v1alpha1"])).code === 0,
      { timeoutMs: 90_000 },
    );
  };

  const strategy = async (type: string) => (await issuerStrategies(k)).find((s) => s.type === type);
  /** Waits until the strategy of `type` shows `status` with a message matching `message`. */
  const shows = (type: string, status: string, message: RegExp) =>
    eventually(
      `${type} ${status} ${message}`,
      async () => {
        const s = await strategy(type);
        return s?.status === status && message.test(s.message) ? s : undefined;
      },
      { timeoutMs: 60_000 },
    );

  const login = (certificateSigningRequest?: string) =>
    requestCredential(
      k,
      goodToken,
      { kind: "WebhookAuthenticator", name: "corp" },
      certificateSigningRequest,
    );
  /** `kubectl auth whoami` with a kubeconfig holding only the credential. */
  const whoami = (credential: Credential) => whoamiWith(k, cp, join(dir, "user.kubeconfig"), credential);
  const loginAndWhoami = async () => {
    const status = await login();
    assert.ok(status.credential, `no credential: ${status.message}`);
    return whoami(status.credential);
  };
  /**
   * The CSR API strategy's opt-in RBAC, config/opt-in/csr-api-rbac.yaml as shipped; `approve: false`
   * leaves out approval on the signer.
   */
  const csrRBAC = (approve = true) => {
    const objects = parseAllDocuments(
      readFileSync(join(repoRoot, "config", "opt-in", "csr-api-rbac.yaml"), "utf8"),
    ).map((d) => d.toJS() as { kind: string; rules?: { resources: string[] }[] });
    if (approve) return objects;
    return objects.map((o) =>
      o.kind === "ClusterRole"
        ? { ...o, rules: o.rules?.filter((r) => !r.resources.includes("signers")) }
        : o,
    );
  };
  const webhookAuthenticatorReady = async () => {
    await apply({
      apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
      kind: "WebhookAuthenticator",
      metadata: { name: "corp" },
      spec: { endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } },
    });
    await ok(["wait", "--for=jsonpath={.status.phase}=Ready", "--timeout=60s", "webhookauthenticator/corp"]);
  };
  const readyMessage = () =>
    ok([
      "get",
      "credentialissuer",
      "pinniped-concierge-config",
      "-o",
      'jsonpath={.status.conditions[?(@.type=="Ready")].message}',
    ]);
  const clusterSecret = async () =>
    signerSecretWith(await readFile(cp.pki.ca.cert, "utf8"), await readFile(cp.pki.ca.key, "utf8"));
  /** Seconds from now until the credential expires: 300 from a local CA, 600 (the minimum) from the CSR API. */
  const lifetime = (credential: Credential) =>
    (Date.parse(credential.expirationTimestamp) - Date.now()) / 1000;
  const csrLeft = async () =>
    (await ok(["get", "csr", "-l", "concierge.pinniped.dev/strategy", "-o", "name"])).trim();

  /**
   * Logs in back to back while `breakIt` runs, until `servedByNext` says a credential came from
   * the next strategy and a few more logins succeeded; returns how long after the break began the
   * first login that the next strategy served was started, and every failure.
   */
  const failover = async (breakIt: () => Promise<unknown>, servedByNext: (c: Credential) => boolean) => {
    const failures: string[] = [];
    const broken = performance.now();
    const breaking = breakIt();
    let switchedAfterMs: number | undefined;
    let servedAfter = 0;
    while (servedAfter < 3) {
      const started = performance.now();
      const status = await login();
      if (!status.credential) failures.push(status.message ?? "no credential");
      else if (servedByNext(status.credential)) switchedAfterMs ??= started - broken;
      if (switchedAfterMs !== undefined) servedAfter++;
      assert.ok(
        performance.now() - broken < 60_000,
        `no switch within a minute; failures: ${failures.join("; ")}`,
      );
    }
    await breaking;
    return { switchedAfterMs: switchedAfterMs ?? Number.NaN, failures };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strategies-"));
    cp = await startTestControlPlane("strategies");
    webhook = await startTokenReviewWebhook({ users: { [goodToken]: user } });
  });

  after(async () => {
    await concierge?.stop();
    await webhook?.close();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe("SecretSigningCertificate", () => {
    const secretStrategies = {
      order: ["SecretSigningCertificate"],
      secretSigningCertificate: { secrets: [{ namespace: signerNamespace, name: signerSecret }] },
    };

    it("with get/list/watch on exactly its Secret, signs with the cluster's CA from the Secret: kubectl auth whoami is the user", async () => {
      await ok(["create", "namespace", signerNamespace]);
      await apply(...secretStrategyRBAC(), await clusterSecret());
      await startWith(secretStrategies);
      await webhookAuthenticatorReady();
      await shows("SecretSigningCertificate", "Success", /^key was loaded from Secret signers\/csr-signer$/);
      assert.deepEqual(await loginAndWhoami(), {
        username: user.username,
        groups: [...user.groups, "system:authenticated"],
      });
      const cannot = await kubectl(["auth", "can-i", "get", "secrets", "-n", signerNamespace], {
        kubeconfig: concierge!.kubeconfigPath,
      });
      assert.equal(cannot.code, 1, "the Concierge may read only the named Secret");
    });

    it("signs a client's own certificate signing request: the answer holds the certificate only, for the user whatever the request's subject", async () => {
      const { csrPEM, keyPEM } = await createSigningRequest({
        username: "mallory",
        groups: ["system:masters"],
      });
      const status = await login(csrPEM);
      assert.ok(status.credential, status.message);
      assert.equal(status.credential.clientKeyData, undefined);
      assert.deepEqual(await whoami({ ...status.credential, clientKeyData: keyPEM }), {
        username: user.username,
        groups: [...user.groups, "system:authenticated"],
      });
      const refused = await kubectl(["create", "-f", "-", "-o", "json"], {
        input: JSON.stringify({
          apiVersion: "login.concierge.pinniped.dev/v1alpha1",
          kind: "TokenCredentialRequest",
          spec: {
            token: goodToken,
            authenticator: {
              apiGroup: "authentication.concierge.pinniped.dev",
              kind: "WebhookAuthenticator",
              name: "corp",
            },
            certificateSigningRequest: "not a CSR",
          },
        }),
      });
      assert.notEqual(refused.code, 0);
      assert.match(
        refused.stderr,
        /spec\.certificateSigningRequest: Invalid value: "<omitted>": not a PEM CERTIFICATE REQUEST/,
      );
    });

    it("shows each broken Secret's reason in the CredentialIssuer, issues nothing meanwhile, and reloads the good one without a restart", async () => {
      const untrusted = await CertificateAuthority.create("not the cluster's CA", 3_600_000);
      const key = generateKey("ec-p256");
      const leaf = await selfSignedCertificate(key, { commonName: "a leaf", isCA: false });
      const where = "Secret signers/csr-signer";
      const cases: [object, RegExp][] = [
        [
          signerSecretWith(untrusted.certPEM, untrusted.privateKeyPEM()),
          new RegExp(
            `^${where}: kube-apiserver does not trust its CA \\(subject "CN=not the cluster's CA"\\) for client certificates`,
          ),
        ],
        [
          signerSecretWith(leaf, keyPEM(key, "sec1")),
          new RegExp(`^${where}: invalid CA certificate: passed in key pair is not a CA$`),
        ],
        [
          signerSecretWith(await readFile(cp.pki.ca.cert, "utf8"), keyPEM(key, "sec1")),
          new RegExp(`^${where}: could not load CA: tls: private key does not match public key$`),
        ],
      ];
      for (const [secret, message] of cases) {
        await apply(secret);
        await shows("SecretSigningCertificate", "Error", message);
        assert.equal((await login()).message, "authentication failed");
      }
      await ok(["delete", "secret", "-n", signerNamespace, signerSecret]);
      await shows("SecretSigningCertificate", "Error", new RegExp(`^${where} not found$`));
      assert.equal((await login()).message, "authentication failed");

      await apply(
        signerSecretWith(await readFile(cp.pki.ca.cert, "utf8"), await readFile(cp.pki.ca.key, "utf8")),
      );
      await shows("SecretSigningCertificate", "Success", /^key was loaded/);
      assert.equal((await loginAndWhoami()).username, user.username);
      // kubectl get credentialissuer -o yaml shows the same entry, in upstream's fields.
      const yaml = await ok(["get", "credentialissuer", "pinniped-concierge-config", "-o", "yaml"]);
      assert.match(yaml, /type: SecretSigningCertificate/);
      assert.match(yaml, /frontend:\n\s+tokenCredentialRequestInfo:/);
    });
  });

  describe("CertificateSigningRequestAPI", () => {
    it("alone: the real kube-controller-manager signs an approved CSR; kubectl auth whoami is the user; the CSR is deleted", async () => {
      await apply(...csrRBAC());
      await startWith({
        order: ["CertificateSigningRequestAPI"],
        certificateSigningRequestAPI: { probeIntervalSeconds: 10 },
      });
      await shows(
        "CertificateSigningRequestAPI",
        "Success",
        /^the kubernetes.io\/kube-apiserver-client signer issued a probe certificate; certificates live 600s, the CSR API's minimum/,
      );
      const status = await login();
      assert.ok(status.credential, status.message);
      assert.ok(lifetime(status.credential) > 500, "the CSR API's minimum of 600 s, not the 300 s TTL");
      assert.deepEqual(await whoami(status.credential), {
        username: user.username,
        groups: [...user.groups, "system:authenticated"],
      });
      await eventually("the CSRs deleted", async () => (await csrLeft()) === "");
    });

    it("shows RBAC that forbids approval in the CredentialIssuer, and recovers when it is granted", async () => {
      await apply(...csrRBAC(false));
      await shows(
        "CertificateSigningRequestAPI",
        "Error",
        /^CertificateSigningRequest API: could not approve CertificateSigningRequest .*forbidden/,
      );
      assert.equal((await login()).message, "authentication failed");
      await apply(...csrRBAC());
      await shows("CertificateSigningRequestAPI", "Success", /probe certificate/);
      assert.equal((await loginAndWhoami()).username, user.username);
    });
  });

  describe("failover", () => {
    const both = {
      secretSigningCertificate: { secrets: [{ namespace: signerNamespace, name: signerSecret }] },
      certificateSigningRequestAPI: { probeIntervalSeconds: 10 },
    };

    it("from a deleted Secret to the CSR API (time printed, the 5 s goal read from it), with no failed TokenCredentialRequest", async () => {
      await startWith({ order: ["SecretSigningCertificate", "CertificateSigningRequestAPI"], ...both });
      await shows("SecretSigningCertificate", "Success", /^key was loaded/);
      await shows("CertificateSigningRequestAPI", "Success", /probe certificate/);
      const first = await login();
      assert.ok(first.credential && lifetime(first.credential) < 400, "the Secret's CA serves first");
      const { switchedAfterMs, failures } = await failover(
        () => ok(["delete", "secret", "-n", signerNamespace, signerSecret]),
        (c) => lifetime(c) > 500,
      );
      process.stdout.write(
        `# failover Secret -> CSR API: first login served by the CSR API began ${Math.round(switchedAfterMs)} ms after the delete\n`,
      );
      assert.deepEqual(failures, []);
      await shows("SecretSigningCertificate", "Error", / not found$/);
      // The Ready condition names the strategy that serves.
      assert.match(await readyMessage(), /CertificateSigningRequestAPI strategy/);
    });

    it("from the CSR API, when approval becomes forbidden, to the Secret (time printed, the 5 s goal read from it), with no failed TokenCredentialRequest", async () => {
      await apply(await clusterSecret());
      await startWith({ order: ["CertificateSigningRequestAPI", "SecretSigningCertificate"], ...both });
      await shows("SecretSigningCertificate", "Success", /^key was loaded/);
      await shows("CertificateSigningRequestAPI", "Success", /probe certificate/);
      // Both succeed: Ready names the one configured first, which serves, not the default order's first.
      await eventually("Ready to name the CSR API", async () =>
        /CertificateSigningRequestAPI strategy/.test(await readyMessage()),
      );
      const { switchedAfterMs, failures } = await failover(
        () => apply(...csrRBAC(false)),
        (c) => lifetime(c) < 400,
      );
      process.stdout.write(
        `# failover CSR API -> Secret: first login served by the Secret began ${Math.round(switchedAfterMs)} ms after RBAC changed\n`,
      );
      assert.deepEqual(failures, []);
      await shows("CertificateSigningRequestAPI", "Error", /could not approve/);
      await apply(...csrRBAC());
    });
  });

  describe("kube-controller-manager without the kube-apiserver-client signer", () => {
    before(async () => {
      // A control plane of its own: kube-controller-manager with every controller but csrsigning.
      await concierge?.stop();
      concierge = undefined;
      await cp.stop();
      cp = await startTestControlPlane("strategies-signer-off", {
        controllerManagerArgs: ["--controllers=*,-csrsigning"],
      });
    });

    it("the CSR API strategy shows the reason in kubectl get credentialissuer -o yaml, and logins go to the next strategy", async () => {
      await ok(["create", "namespace", signerNamespace]);
      await apply(...csrRBAC(), ...secretStrategyRBAC(), await clusterSecret());
      await startWith({
        order: ["CertificateSigningRequestAPI", "SecretSigningCertificate"],
        secretSigningCertificate: { secrets: [{ namespace: signerNamespace, name: signerSecret }] },
        certificateSigningRequestAPI: { probeIntervalSeconds: 10 },
      });
      await webhookAuthenticatorReady();
      const unsigned =
        /^CertificateSigningRequest API: no certificate for CertificateSigningRequest \S+ within \d+s: is kube-controller-manager's kubernetes.io\/kube-apiserver-client signer running\?$/;
      await shows("CertificateSigningRequestAPI", "Error", unsigned);
      await shows("SecretSigningCertificate", "Success", /^key was loaded/);
      const yaml = await ok(["get", "credentialissuer", "pinniped-concierge-config", "-o", "yaml"]);
      const shown = (parse(yaml) as { status: { strategies: Strategy[] } }).status.strategies.find(
        (s) => s.type === "CertificateSigningRequestAPI",
      );
      assert.equal(shown?.status, "Error");
      assert.equal(shown?.reason, "ProbeFailed");
      assert.match(shown?.message ?? "", unsigned);
      process.stdout.write(`# signer off, the CSR API strategy: ${JSON.stringify(shown)}\n`);
      await eventually("Ready to name the Secret strategy", async () =>
        /SecretSigningCertificate strategy/.test(await readyMessage()),
      );
      // Failover: the Secret's CA serves (its 300 s TTL, not the CSR API's 600 s).
      for (let i = 0; i < 3; i++) {
        const status = await login();
        assert.ok(status.credential, status.message);
        assert.ok(lifetime(status.credential) < 400, "served by the Secret strategy");
      }
      assert.equal((await loginAndWhoami()).username, user.username);
    });
  });
});
