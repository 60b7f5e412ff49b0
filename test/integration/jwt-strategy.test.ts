// The JWTCredential strategy on a control plane of its own whose kube-apiserver trusts the
// Concierge's issuer through `--authentication-config` (the harness writes the file; kube-apiserver
// reloads it when it changes). The Concierge runs as a local process (hack/run-local.ts) with
// config/'s RBAC; its issuer is served on the aggregated API's loopback port, which kube-apiserver
// reaches from the same network namespace. Tokens come back through the real aggregator and are
// checked by the real kube-apiserver with `kubectl auth whoami`.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { conciergeJWTAuthenticator } from "../../hack/authnconfig.ts";
import { type ControlPlane, freePorts, startControlPlane } from "../../hack/controlplane.ts";
import { installCRDs } from "../../hack/install.ts";
import { type LocalConcierge, runLocal } from "../../hack/run-local.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { type KubectlResult, runKubectl } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import { secretStrategyRBAC, signerSecretRef, signerSecretWith } from "../harness/local-concierge.ts";
import { tokenCredentialRequest } from "../harness/login.ts";
import { runCommand } from "../harness/process.ts";
import { startTokenReviewWebhook, type TokenReviewWebhook } from "../harness/tokenreview-webhook.ts";

const pinnipedBin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "pinniped");
const goodToken = "jwt-strategy-test-token";
const user = { username: "pinny", groups: ["seals", "walruses"] };
const audience = "concierge-jwt-strategy-test";
const namespace = "pinniped-concierge";
const { namespace: signerNamespace, name: signerSecret } = signerSecretRef;

type Strategy = { type: string; status: string; reason: string; message: string };
type Credential = {
  token?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  expirationTimestamp: string;
};

describe("the JWTCredential strategy, on a control plane whose kube-apiserver trusts the Concierge's issuer", () => {
  let cp: ControlPlane;
  let dir: string;
  let webhook: TokenReviewWebhook;
  let concierge: LocalConcierge | undefined;
  let issuerURL: string;
  let apiPort: number;
  const logs = memoryLogger("info");

  const kubectl = (
    args: string[],
    opts: { input?: string; kubeconfig?: string } = {},
  ): Promise<KubectlResult> =>
    runKubectl(
      cp.binDir,
      opts.kubeconfig ?? cp.kubeconfigPath,
      ["--cache-dir", join(dir, "cache"), ...args],
      opts,
    );
  const ok = async (args: string[], opts?: { input?: string; kubeconfig?: string }) => {
    const res = await kubectl(args, opts);
    assert.equal(res.code, 0, `kubectl ${args.join(" ")}: ${res.stderr}`);
    return res.stdout;
  };
  const apply = (...objects: object[]) =>
    ok(["apply", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }) });

  const jwtSettings = () => ({ issuer: issuerURL, audience, probeIntervalSeconds: 10 });
  const startWith = async (strategies: Record<string, unknown>) => {
    await concierge?.stop();
    concierge = await runLocal({
      kubeconfigPath: cp.kubeconfigPath,
      binDir: cp.binDir,
      log: logs.log,
      identity: "jwt-strategy-test",
      leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      configOverrides: { strategies },
      aggregatedAPIServerPort: apiPort,
    });
    await eventually("the Concierge ready", () => concierge?.ready(), { timeoutMs: 90_000 });
    await eventually(
      "the aggregator routing to the new listener",
      async () => (await kubectl(["get", "--raw", "/apis/login.concierge.pinniped.dev/v1alpha1"])).code === 0,
      { timeoutMs: 90_000 },
    );
  };
  /** kube-apiserver trusts the issuer (its serving CA is the Concierge's), or, with `audience`, another audience only. */
  const trustIssuer = async (withAudience = audience, extraKeys: string[] = []) => {
    const secret = JSON.parse(
      await ok([
        "get",
        "secret",
        "-n",
        namespace,
        "pinniped-concierge-api-tls-serving-certificate",
        "-o",
        "json",
      ]),
    ) as { data: Record<string, string> };
    const ca = Buffer.from(secret.data.caCertificate ?? "", "base64").toString("utf8");
    assert.match(ca, /BEGIN CERTIFICATE/);
    const authenticator = conciergeJWTAuthenticator({
      issuerURL,
      audience: withAudience,
      certificateAuthority: ca,
    });
    // The README's mapping of an extra key: the token's `extra` claim is a map of lists.
    authenticator.claimMappings.extra = extraKeys.map((key) => ({
      key,
      valueExpression: `has(claims.extra) && '${key}' in claims.extra ? claims.extra['${key}'] : []`,
    }));
    await cp.setAuthenticationConfig({ jwt: [authenticator] });
  };

  const strategy = async (type: string) => {
    const out = await ok(["get", "credentialissuer", "pinniped-concierge-config", "-o", "json"]);
    const all = (JSON.parse(out) as { status?: { strategies?: Strategy[] } }).status?.strategies ?? [];
    return all.find((s) => s.type === type);
  };
  // kube-apiserver takes up to about a minute to reload its authentication configuration.
  const shows = (type: string, status: string, message: RegExp) =>
    eventually(
      `${type} ${status} ${message}`,
      async () => {
        const s = await strategy(type);
        return s?.status === status && message.test(s.message) ? s : undefined;
      },
      { timeoutMs: 150_000 },
    );

  const login = async (token = goodToken): Promise<{ credential?: Credential; message?: string }> => {
    const tcr = tokenCredentialRequest(token, { kind: "WebhookAuthenticator", name: "corp" });
    const res = await kubectl(["create", "-f", "-", "-o", "json"], { input: JSON.stringify(tcr) });
    if (res.code !== 0) return { message: `kubectl failed: ${res.stderr}` };
    return (JSON.parse(res.stdout) as { status: { credential?: Credential; message?: string } }).status;
  };
  /** `kubectl auth whoami` with a kubeconfig holding only the token. */
  const whoami = async (token: string) => {
    const kubeconfig = join(dir, "user.kubeconfig");
    const caData = (await readFile(cp.pki.ca.cert)).toString("base64");
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "local", cluster: { server: cp.server, "certificate-authority-data": caData } }],
        users: [{ name: "user", user: { token } }],
        contexts: [{ name: "user", context: { cluster: "local", user: "user" } }],
        "current-context": "user",
      }),
      { mode: 0o600 },
    );
    const who = JSON.parse(await ok(["auth", "whoami", "-o", "json"], { kubeconfig })) as {
      status: {
        userInfo: { username: string; groups: string[]; uid?: string; extra?: Record<string, string[]> };
      };
    };
    const { username, groups, uid, extra = {} } = who.status.userInfo;
    // kube-apiserver adds the token's jti as this extra: only the user's own are compared.
    const { "authentication.kubernetes.io/credential-id": _jti, ...own } = extra;
    return {
      username,
      groups,
      ...(uid ? { uid } : {}),
      ...(Object.keys(own).length > 0 ? { extra: own } : {}),
    };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "jwt-strategy-"));
    [apiPort] = (await freePorts(1)) as [number];
    issuerURL = `https://127.0.0.1:${apiPort}/pinniped-jwt-issuer`;
    // No authenticator yet: the issuer's CA is the Concierge's serving CA, made when it first runs.
    cp = await startControlPlane({ name: "jwt-strategy", authenticationConfig: { jwt: [] } });
    await installCRDs(cp.binDir, cp.kubeconfigPath);
    webhook = await startTokenReviewWebhook({ users: { [goodToken]: user } });
  });

  after(async () => {
    await concierge?.stop();
    await webhook?.close();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("is Error while kube-apiserver does not trust the issuer, then issues tokens that kubectl auth whoami accepts as the user", async () => {
    await startWith({ order: ["JWTCredential"], jwtCredential: jwtSettings() });
    await apply({
      apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
      kind: "WebhookAuthenticator",
      metadata: { name: "corp" },
      spec: { endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } },
    });
    await ok(["wait", "--for=jsonpath={.status.phase}=Ready", "--timeout=60s", "webhookauthenticator/corp"]);
    const untrusted = await shows(
      "JWTCredential",
      "Error",
      new RegExp(
        `^kube-apiserver does not trust tokens from issuer ${issuerURL} with audience ${audience}: it did not authenticate the probe token`,
      ),
    );
    assert.equal(untrusted.reason, "ProbeFailed");
    assert.equal((await login()).message, "authentication failed", "no token kube-apiserver would refuse");

    // The signing key lives in a Secret the Concierge made.
    const keys = JSON.parse(
      await ok(["get", "secret", "-n", namespace, "pinniped-concierge-jwt-signing-keys", "-o", "json"]),
    ) as { data: Record<string, string> };
    assert.ok(keys.data["keys.json"]);

    const began = performance.now();
    await trustIssuer();
    const trusted = await shows("JWTCredential", "Success", /^kube-apiserver accepted a probe token/);
    process.stdout.write(
      `# kube-apiserver's reload of --authentication-config, seen by the probe: ${Math.round(performance.now() - began)} ms\n`,
    );
    assert.equal(trusted.reason, "ProbeSucceeded");
    const status = await login();
    assert.ok(status.credential?.token, `no token: ${status.message}`);
    assert.equal(status.credential.clientCertificateData, undefined);
    const lifetime = (Date.parse(status.credential.expirationTimestamp) - Date.now()) / 1000;
    assert.ok(lifetime > 200 && lifetime <= 300, `the 300 s TTL, got ${lifetime}`);
    assert.deepEqual(await whoami(status.credential.token), {
      username: user.username,
      groups: [...user.groups, "system:authenticated"],
    });
    // The CLI end to end: it hands the token to kubectl as the ExecCredential's status.token.
    const generated = join(dir, "generated.kubeconfig");
    const got = await runCommand(pinnipedBin, [
      "get",
      "kubeconfig",
      "--pinniped-cli-path",
      pinnipedBin,
      "--kubeconfig",
      cp.kubeconfigPath,
      "--concierge-authenticator-type",
      "webhook",
      "--concierge-authenticator-name",
      "corp",
      "--static-token",
      goodToken,
      "--credential-cache",
      join(dir, "credentials.yaml"),
      "-o",
      generated,
    ]);
    assert.equal(got.code, 0, got.stderr);
    const viaCLI = JSON.parse(await ok(["auth", "whoami", "-o", "json"], { kubeconfig: generated })) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    assert.equal(viaCLI.status.userInfo.username, user.username);
    assert.deepEqual(viaCLI.status.userInfo.groups, [...user.groups, "system:authenticated"]);
    // kubectl get credentialissuer -o yaml shows it, in upstream's fields, with upstream's frontend.
    const yaml = await ok(["get", "credentialissuer", "pinniped-concierge-config", "-o", "yaml"]);
    assert.match(yaml, /type: JWTCredential/);
    assert.match(yaml, /frontend:\n\s+tokenCredentialRequestInfo:/);
  });

  it("goes Error with kube-apiserver's answer when it stops trusting the issuer (another audience), and recovers", async () => {
    await trustIssuer("some-other-audience");
    await shows(
      "JWTCredential",
      "Error",
      /^kube-apiserver does not trust tokens from issuer .* with audience /,
    );
    assert.equal((await login()).message, "authentication failed");
    await trustIssuer();
    await shows("JWTCredential", "Success", /^kube-apiserver accepted a probe token/);
    const status = await login();
    assert.ok(status.credential?.token, status.message);
    assert.equal((await whoami(status.credential.token)).username, user.username);
  });

  it("carries the user's uid and extras in the token, which kube-apiserver maps (upstream's refusal of them lifted)", async () => {
    const richToken = "jwt-strategy-test-rich-token";
    webhook.users.set(richToken, {
      username: "walrus",
      groups: ["tusks"],
      uid: "walrus-42",
      extra: { "example.com/team": ["blue", "green"] },
    });
    const reload = performance.now();
    await trustIssuer(audience, ["example.com/team"]);
    await eventually(
      "kube-apiserver mapping the extra",
      async () => {
        const status = await login(richToken);
        if (!status.credential?.token) return undefined;
        const who = await whoami(status.credential.token);
        return who.extra?.["example.com/team"] ? who : undefined;
      },
      { timeoutMs: 150_000 },
    ).then((who) => {
      process.stdout.write(
        `# reload with an extra mapping, seen by a login: ${Math.round(performance.now() - reload)} ms\n`,
      );
      assert.deepEqual(who, {
        username: "walrus",
        groups: ["tusks", "system:authenticated"],
        uid: "walrus-42",
        extra: { "example.com/team": ["blue", "green"] },
      });
    });
  });

  it("takes over from a broken Secret strategy (time printed), with no failed TokenCredentialRequest", async () => {
    await ok(["create", "namespace", signerNamespace]);
    await apply(
      ...secretStrategyRBAC(),
      signerSecretWith(await readFile(cp.pki.ca.cert, "utf8"), await readFile(cp.pki.ca.key, "utf8")),
    );
    await startWith({
      order: ["SecretSigningCertificate", "JWTCredential"],
      secretSigningCertificate: { secrets: [{ namespace: signerNamespace, name: signerSecret }] },
      jwtCredential: jwtSettings(),
    });
    await shows("SecretSigningCertificate", "Success", /^key was loaded/);
    await shows("JWTCredential", "Success", /^kube-apiserver accepted a probe token/);
    const first = await login();
    assert.ok(first.credential?.clientCertificateData, "the Secret's CA serves first");

    const failures: string[] = [];
    const broken = performance.now();
    const breaking = ok(["delete", "secret", "-n", signerNamespace, signerSecret]);
    let switchedAfterMs: number | undefined;
    let token: string | undefined;
    let servedAfter = 0;
    while (servedAfter < 3) {
      const started = performance.now();
      const status = await login();
      if (!status.credential) failures.push(status.message ?? "no credential");
      else if (status.credential.token) {
        switchedAfterMs ??= started - broken;
        token = status.credential.token;
      }
      if (switchedAfterMs !== undefined) servedAfter++;
      assert.ok(
        performance.now() - broken < 60_000,
        `no switch within a minute; failures: ${failures.join("; ")}`,
      );
    }
    await breaking;
    process.stdout.write(
      `# failover Secret -> JWT: first login served by the JWT issuer began ${Math.round(switchedAfterMs ?? Number.NaN)} ms after the delete\n`,
    );
    assert.deepEqual(failures, []);
    assert.ok(token);
    assert.equal((await whoami(token)).username, user.username);
    const ready = await ok([
      "get",
      "credentialissuer",
      "pinniped-concierge-config",
      "-o",
      'jsonpath={.status.conditions[?(@.type=="Ready")].message}',
    ]);
    assert.match(ready, /JWTCredential strategy/);
  });
});
