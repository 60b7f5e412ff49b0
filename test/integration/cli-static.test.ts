// The `pinniped` CLI (bin/pinniped) end to end, static-token path, against the Concierge installed
// from its image on the real node (test/harness/node.ts): a WebhookAuthenticator trusts the test's
// TokenReview webhook (on the bridge, where the Concierge's pods reach it), and the signing key is
// borrowed by kube-cert-agent through the real kubelet from the static kube-controller-manager pod,
// so the CredentialIssuer's TokenCredentialRequestAPI strategy is genuinely Success.
//
// Then: `pinniped get kubeconfig --static-token …` → kubectl runs `pinniped login static` as an
// exec plugin for `auth whoami`, an allowed and a forbidden `get`, and `pinniped whoami`; the same
// with the installed executable, the npm package and upstream's Go CLI.
import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import type { NodeCluster } from "../../hack/node/cluster.ts";
import { dedicatedKubectl, uniqueName } from "../harness/cluster.ts";
import { writeCredentialKubeconfig } from "../harness/login.ts";
import {
  conciergeMetric,
  type NodeWebhookAuthenticator,
  signingKeyBorrowed,
  testConcierge,
  webhookAuthenticator,
} from "../harness/node.ts";
import {
  buildCLI,
  getKubeconfig,
  installExecutable,
  installNpmPackage,
  installUpstreamCLI,
  pathWith,
  clonePinniped as pinnipedBin,
} from "../harness/pinniped-cli.ts";
import { runCommand } from "../harness/process.ts";
import { startHTTPSServer } from "../harness/tls.ts";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const token = "cli-static-test-token";
const user = { username: "pinny", groups: ["seals", "walruses"] };

describe("pinniped CLI, static token, against the Concierge installed from its image on the real node", () => {
  let n: NodeCluster;
  let dir: string;
  let authenticator: NodeWebhookAuthenticator;
  let generated: string;
  let credentialCache: string;
  const rbacName = uniqueName("cli-static-seals");

  const { kubectl, ok } = dedicatedKubectl(() => ({ cluster: n, dir }));
  /**
   * Certificates the Concierge's replicas issued, from their /metrics: the webhook's answers would
   * undercount, as the Concierge remembers successful TokenReviews for a few seconds.
   */
  const exchanges = () =>
    conciergeMetric(n, /^concierge_token_credential_requests_total\{outcome="issued"\} (\d+)$/m);

  before(async () => {
    ({ node: n } = await testConcierge());
    dir = await mkdtemp(join(tmpdir(), "cli-static-"));
    credentialCache = join(dir, "pinniped", "credentials.yaml");
    generated = join(dir, "generated.kubeconfig");
    authenticator = await webhookAuthenticator(n, "cli-static", { [token]: user });

    await ok(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRole",
            metadata: { name: rbacName },
            rules: [{ apiGroups: [""], resources: ["namespaces"], verbs: ["get", "list"] }],
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRoleBinding",
            metadata: { name: rbacName },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: rbacName },
            subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "seals" }],
          },
        ],
      }),
    });
    await signingKeyBorrowed(n);
  });

  after(async () => {
    if (n) await kubectl(["delete", "clusterrole,clusterrolebinding", rbacName, "--ignore-not-found"]);
    await authenticator?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("pinniped get kubeconfig --static-token discovers the Concierge and writes an exec-plugin kubeconfig", async () => {
    const res = await getKubeconfig({
      adminKubeconfig: n.kubeconfigPath,
      authenticator: { type: "webhook", name: authenticator.name },
      flags: ["--static-token", token, "--credential-cache", credentialCache],
      out: generated,
    });
    assert.match(res.stderr, /discovered CredentialIssuer pinniped-concierge-config/);
    assert.match(res.stderr, /discovered Concierge operating in TokenCredentialRequest API mode/);
    assert.doesNotMatch(res.stderr, new RegExp(token));
    assert.equal((await stat(generated)).mode & 0o777, 0o600);
    const kc = parse(res.kubeconfig);
    const exec = kc.users[0].user.exec;
    assert.equal(exec.command, pinnipedBin);
    assert.equal(exec.interactiveMode, "Never");
    assert.deepEqual(exec.args.slice(0, 3), ["login", "static", "--enable-concierge"]);
    assert.ok(exec.args.includes("--concierge-authenticator-type=webhook"));
    assert.ok(exec.args.includes(`--concierge-authenticator-name=${authenticator.name}`));
    assert.ok(exec.args.includes(`--concierge-endpoint=${n.server}`));
    assert.ok(exec.args.includes(`--token=${token}`));
  });

  it("kubectl auth whoami through the exec plugin shows the webhook's user and groups; a second call reuses the cached credential", async () => {
    const before = await exchanges();
    const who = JSON.parse(await ok(["auth", "whoami", "-o", "json"], { kubeconfig: generated })) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    assert.equal(who.status.userInfo.username, user.username);
    assert.deepEqual(who.status.userInfo.groups, [...user.groups, "system:authenticated"]);
    assert.equal(await exchanges(), before + 1);
    assert.equal((await stat(credentialCache)).mode & 0o777, 0o600);
    await ok(["auth", "whoami"], { kubeconfig: generated });
    assert.equal(
      await exchanges(),
      before + 1,
      "a second kubectl within the certificate's TTL exchanged again",
    );
  });

  it("a concurrent burst of kubectl processes with an empty cache does one exchange (the lock spans it)", async () => {
    await rm(credentialCache);
    const before = await exchanges();
    const results = await Promise.all(
      Array.from({ length: 5 }, () => kubectl(["auth", "whoami", "-o", "name"], { kubeconfig: generated })),
    );
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    assert.equal(await exchanges(), before + 1);
  });

  it("an RBAC-allowed kubectl get succeeds and a forbidden one is denied", async () => {
    assert.match(
      await ok(["get", "namespace", "default", "-o", "name"], { kubeconfig: generated }),
      /namespace\/default/,
    );
    const denied = await kubectl(["get", "secrets", "-n", "kube-system"], { kubeconfig: generated });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Forbidden.*User "pinny" cannot list resource "secrets"/);
  });

  it("pinniped whoami with the generated kubeconfig prints upstream's text and full json", async () => {
    const text = await runCommand(pinnipedBin, ["whoami", "--kubeconfig", generated]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      new RegExp(`^Current cluster info:\n\nName: .+-pinniped\nURL: ${n.server.replaceAll(".", "\\.")}\n`),
    );
    assert.match(
      text.stdout,
      /Current user info:\n\nUsername: pinny\nGroups: seals, walruses, system:authenticated\n/,
    );
    const json = await runCommand(pinnipedBin, ["whoami", "--kubeconfig", generated, "-o", "json"]);
    assert.equal(json.code, 0, json.stderr);
    const obj = JSON.parse(json.stdout);
    assert.equal(obj.kind, "WhoAmIRequest");
    assert.equal(obj.apiVersion, "identity.concierge.pinniped.dev/v1alpha1");
    assert.equal(obj.status.kubernetesUserInfo.user.username, "pinny");
  });

  it("pinniped login static fails with 'authentication failed' and exit 1 for an unknown token", async () => {
    const kc = parse(await readFile(generated, "utf8"));
    const args = (kc.users[0].user.exec.args as string[]).filter((a) => !a.startsWith("--token="));
    const res = await runCommand(pinnipedBin, [...args, "--token=not-a-valid-token"]);
    assert.equal(res.code, 1);
    assert.equal(
      res.stderr,
      "Error: could not complete Concierge credential exchange: login failed: authentication failed\n",
    );
    assert.equal(res.stdout, "");
  });

  it("keeps the key on the client: the TokenCredentialRequest carries a CSR, the answer only the certificate, the 0600 cache holds the key; --client-held-key=false sends upstream's request", async () => {
    const kc = parse(await readFile(generated, "utf8"));
    const args = kc.users[0].user.exec.args as string[];
    const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? "";
    const endpoint = flag("concierge-endpoint");
    const clusterCA = Buffer.from(flag("concierge-ca-bundle-data"), "base64").toString("utf8");
    // A relay that records each TokenCredentialRequest and its answer on their way to the Concierge.
    const seen: { path: string; sent: Record<string, unknown>; answered: Record<string, unknown> }[] = [];
    const relay = await startHTTPSServer((req, res) => {
      let sent = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => {
        sent += c;
      });
      req.on("end", () => {
        const upstream = httpsRequest(
          new URL(req.url ?? "/", endpoint),
          {
            method: req.method,
            ca: clusterCA,
            headers: { "Content-Type": "application/json", Accept: "application/json" },
          },
          (answer) => {
            let answered = "";
            answer.setEncoding("utf8");
            answer.on("data", (c: string) => {
              answered += c;
            });
            answer.on("end", () => {
              seen.push({ path: req.url ?? "", sent: JSON.parse(sent), answered: JSON.parse(answered) });
              res.writeHead(answer.statusCode ?? 502, { "Content-Type": "application/json" });
              res.end(answered);
            });
          },
        );
        upstream.on("error", (err) => {
          res.writeHead(502);
          res.end(err.message);
        });
        upstream.end(sent);
      });
    });
    try {
      const relayed = (cache: string, ...more: string[]) =>
        runCommand(pinnipedBin, [
          ...args.filter(
            (a) => !/^--(concierge-endpoint|concierge-ca-bundle-data|credential-cache)=/.test(a),
          ),
          `--concierge-endpoint=${relay.base}`,
          `--concierge-ca-bundle-data=${relay.caBase64}`,
          `--credential-cache=${cache}`,
          ...more,
        ]);
      const cache = join(dir, "held-key", "credentials.yaml");
      const res = await relayed(cache);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(seen.length, 1);
      const [exchange] = seen;
      assert.match(exchange!.path, /\/tokencredentialrequests\?fieldValidation=Strict$/);
      const spec = exchange!.sent.spec as { certificateSigningRequest?: string };
      assert.match(spec.certificateSigningRequest ?? "", /^-----BEGIN CERTIFICATE REQUEST-----/);
      assert.doesNotMatch(JSON.stringify(exchange!.sent), /PRIVATE KEY/);
      const answered = (exchange!.answered.status as { credential: Record<string, string> }).credential;
      assert.ok(answered.clientCertificateData, JSON.stringify(exchange!.answered));
      assert.equal(answered.clientKeyData, undefined, "the answer carried a private key");

      const printed = JSON.parse(res.stdout).status as {
        clientCertificateData: string;
        clientKeyData: string;
      };
      assert.equal(printed.clientCertificateData, answered.clientCertificateData);
      const cert = new X509Certificate(printed.clientCertificateData);
      assert.ok(cert.checkPrivateKey(createPrivateKey(printed.clientKeyData)));
      assert.equal(createPrivateKey(printed.clientKeyData).asymmetricKeyDetails?.namedCurve, "prime256v1");
      assert.equal((await stat(cache)).mode & 0o777, 0o600);
      const cached = JSON.parse(await readFile(cache, "utf8")) as {
        credentials: { credential: { clientKeyData?: string } }[];
      };
      assert.equal(cached.credentials[0]?.credential.clientKeyData, printed.clientKeyData);

      // kube-apiserver takes the certificate with the key that never left this process.
      const userKubeconfig = join(dir, "held-key.kubeconfig");
      await writeCredentialKubeconfig(userKubeconfig, { server: n.server, caPEM: clusterCA }, printed);
      const who = JSON.parse(await ok(["auth", "whoami", "-o", "json"], { kubeconfig: userKubeconfig })) as {
        status: { userInfo: { username: string } };
      };
      assert.equal(who.status.userInfo.username, user.username);

      const upstreamStyle = await relayed(
        join(dir, "held-key", "upstream-style.yaml"),
        "--client-held-key=false",
      );
      assert.equal(upstreamStyle.code, 0, upstreamStyle.stderr);
      assert.equal(seen.length, 2);
      assert.doesNotMatch(seen[1]!.path, /fieldValidation/);
      assert.equal((seen[1]!.sent.spec as Record<string, unknown>).certificateSigningRequest, undefined);
      const serverKey = (seen[1]!.answered.status as { credential: Record<string, string> }).credential;
      assert.ok(serverKey.clientKeyData, "upstream's flow: the Concierge answers a key");
    } finally {
      await relay.close();
    }
  });

  /** kubectl as a user whose PATH starts with `bin`: the `pinniped` there is the exec plugin. */
  const userKubectl = (bin: string, kubeconfig: string, args: string[]) =>
    runCommand(
      join(n.binDir, "kubectl"),
      ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), ...args],
      {
        env: { PATH: pathWith(bin) },
        timeoutMs: 90_000,
      },
    );
  /** `pinniped get kubeconfig` by the `pinniped` on PATH in `bin`, with its defaults. */
  const getKubeconfigWith = async (bin: string, out: string, cache: string) =>
    (
      await getKubeconfig({
        adminKubeconfig: n.kubeconfigPath,
        authenticator: { type: "webhook", name: authenticator.name },
        flags: ["--static-token", token, "--credential-cache", cache],
        out,
        bin,
      })
    ).kubeconfig;
  const whoamiUser = async (bin: string, kubeconfig: string) => {
    const res = await userKubectl(bin, kubeconfig, ["auth", "whoami", "-o", "json"]);
    assert.equal(res.code, 0, res.stderr);
    return (JSON.parse(res.stdout) as { status: { userInfo: { username: string; groups: string[] } } }).status
      .userInfo;
  };

  it("the npm package, installed with npm install -g into a temporary prefix, writes kubeconfigs that run `pinniped` from PATH, and kubectl auth whoami works through it", async () => {
    const { npmPackage } = await buildCLI();
    const bin = await installNpmPackage(npmPackage, join(dir, "npm-prefix"));
    const out = join(dir, "npm.kubeconfig");
    const text = await getKubeconfigWith(bin, out, join(dir, "npm-credentials.yaml"));
    assert.equal(parse(text).users[0].user.exec.command, "pinniped");
    assert.ok(!text.includes(repoRoot), "the kubeconfig names a path inside the clone");
    const who = await whoamiUser(bin, out);
    assert.equal(who.username, user.username);
    const version = await runCommand("pinniped", ["version", "-o", "json"], { env: { PATH: pathWith(bin) } });
    assert.equal(JSON.parse(version.stdout).nodeVersion, process.version);
  });

  it("the single executable, copied onto PATH as `pinniped`, runs get kubeconfig, kubectl auth whoami and whoami", async () => {
    const { executable } = await buildCLI();
    const bin = await installExecutable(executable, join(dir, "exe"));
    const out = join(dir, "exe.kubeconfig");
    const text = await getKubeconfigWith(bin, out, join(dir, "exe-credentials.yaml"));
    assert.ok(!text.includes(repoRoot));
    assert.equal((await whoamiUser(bin, out)).username, user.username);
    const who = await runCommand("pinniped", ["whoami", "--kubeconfig", out], {
      env: { PATH: pathWith(bin) },
    });
    assert.equal(who.code, 0, who.stderr);
    assert.match(who.stdout, /Username: pinny\n/);
  });

  describe("interop with upstream's Go CLI", () => {
    let upstreamBin: string;
    before(async () => {
      upstreamBin = await installUpstreamCLI(join(dir, "upstream"));
    });

    it("upstream's get kubeconfig against our Concierge, its login static as kubectl's exec plugin: auth whoami, RBAC allow and deny, whoami", async () => {
      const out = join(dir, "upstream.kubeconfig");
      await getKubeconfigWith(upstreamBin, out, join(dir, "upstream-credentials.yaml"));
      const who = await whoamiUser(upstreamBin, out);
      assert.equal(who.username, user.username);
      assert.deepEqual(who.groups, [...user.groups, "system:authenticated"]);
      const allowed = await userKubectl(upstreamBin, out, ["get", "namespace", "default", "-o", "name"]);
      assert.equal(allowed.code, 0, allowed.stderr);
      const denied = await userKubectl(upstreamBin, out, ["get", "secrets", "-n", "kube-system"]);
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /Forbidden.*User "pinny" cannot list resource "secrets"/);
      const whoami = await runCommand("pinniped", ["whoami", "--kubeconfig", out], {
        env: { PATH: pathWith(upstreamBin) },
      });
      assert.equal(whoami.code, 0, whoami.stderr);
      assert.match(whoami.stdout, /Username: pinny\nGroups: seals, walruses, system:authenticated\n/);
    });

    it("our kubeconfig run by upstream's CLI, sharing one credential cache file with ours in both directions", async () => {
      const out = join(dir, "ours-for-upstream.kubeconfig");
      const cache = join(dir, "shared-credentials.yaml");
      await getKubeconfigWith(join(repoRoot, "bin"), out, cache);
      // Ours writes the cache first; upstream reads it and adds its own entry; ours reads that.
      assert.equal((await whoamiUser(join(repoRoot, "bin"), out)).username, user.username);
      assert.equal((await whoamiUser(upstreamBin, out)).username, user.username);
      assert.equal((await whoamiUser(join(repoRoot, "bin"), out)).username, user.username);
      assert.equal((await stat(cache)).mode & 0o777, 0o600);
    });
  });
});
