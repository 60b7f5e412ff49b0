// Two more Concierges on the real node, each rendered by hack/render-install.ts for an API group
// suffix, a namespace and a name of its own, beside the run's default install (pinniped.dev, in
// pinniped-concierge): three on one cluster. Each gets Ready (its APIServices Available, the
// signing key borrowed through the real kubelet), its admission webhook answers for its own
// group, and a user logs in through each with the CLI's --concierge-api-group-suffix (ours, and
// upstream's Go CLI): `pinniped get kubeconfig`, then kubectl runs `pinniped login static` for
// `kubectl auth whoami`. The default install is left as it was; the two are deleted, and waited
// for, at the end.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import type { NodeCluster } from "../../hack/node/cluster.ts";
import { renderInstall } from "../../hack/render-install.ts";
import { runKubectl, uniqueName } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import { testConcierge } from "../harness/node.ts";
import { installUpstreamCLI, pathWith } from "../harness/pinniped-cli.ts";
import { runCommand } from "../harness/process.ts";
import { startTokenReviewWebhook, type TokenReviewWebhook } from "../harness/tokenreview-webhook.ts";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const pinnipedBin = join(repoRoot, "bin", "pinniped");

interface Install {
  apiGroupSuffix: string;
  namespace: string;
  name: string;
  /** The WebhookAuthenticator each install logs its user in with. */
  authenticator: string;
  token: string;
  user: { username: string; groups: string[] };
  file: string;
}

const installs: Install[] = [
  { apiGroupSuffix: "acme.example", namespace: "acme-system", name: "acme-concierge", who: "wile" },
  { apiGroupSuffix: "tuna.io", namespace: "tuna", name: "tuna-concierge", who: "charlie" },
].map(({ who, ...i }) => ({
  ...i,
  authenticator: uniqueName(`${who}-hook`),
  token: `token-for-${who}-${uniqueName("t")}`,
  user: { username: who, groups: [`${i.name}-users`] },
  file: "",
}));

/**
 * The rendered install, with one replica instead of two: three Concierges share the run's 2-core
 * node, and one replica each shows what this test is about.
 */
function rendered(i: Install): string {
  const docs = parseAllDocuments(
    renderInstall({ apiGroupSuffix: i.apiGroupSuffix, namespace: i.namespace, name: i.name }),
  );
  for (const doc of docs) if (doc.get("kind") === "Deployment") doc.setIn(["spec", "replicas"], 1);
  return docs.map((d) => d.toString()).join("---\n");
}

describe("two Concierges with other API group suffixes, namespaces and names, beside the default one", () => {
  let n: NodeCluster;
  let dir: string;
  let webhook: TokenReviewWebhook;
  let upstreamBin: string;

  const kubectl = async (args: string[], input?: string) => {
    const res = await runKubectl(n.binDir, n.kubeconfigPath, ["--cache-dir", join(dir, "cache"), ...args], {
      ...(input === undefined ? {} : { input }),
    });
    assert.equal(res.code, 0, `kubectl ${args.join(" ")}: ${res.stderr}`);
    return res;
  };

  before(async () => {
    ({ node: n } = await testConcierge());
    dir = await mkdtemp(join(tmpdir(), "group-suffix-"));
    const users = Object.fromEntries(installs.map((i) => [i.token, i.user]));
    webhook = await startTokenReviewWebhook({ users, host: n.node.bridgeIP });
    const began = Date.now();
    for (const i of installs) {
      i.file = join(dir, `${i.name}.yaml`);
      await writeFile(i.file, rendered(i));
      // One apply each, on a cluster that has the default install already (its image too).
      await kubectl(["apply", "-f", i.file]);
    }
    for (const i of installs) {
      await kubectl(["rollout", "status", "-n", i.namespace, `deployment/${i.name}`, "--timeout=300s"]);
      await kubectl([
        "wait",
        "--for=condition=Available",
        "--timeout=180s",
        `apiservice/v1alpha1.login.concierge.${i.apiGroupSuffix}`,
        `apiservice/v1alpha1.identity.concierge.${i.apiGroupSuffix}`,
      ]);
    }
    process.stderr.write(
      `# group-suffix: ${installs.length} suffixed installs Ready ${((Date.now() - began) / 1000).toFixed(1)}s after kubectl apply\n`,
    );
    upstreamBin = await installUpstreamCLI(join(dir, "upstream"));
  });

  after(async () => {
    // Gone before the next suite starts: their pods drain for a while on SIGTERM, and suites that
    // follow on the shared node should find it as the default install left it.
    await Promise.all(
      installs
        .filter((i) => n && i.file)
        .map((i) =>
          runCommand(
            join(n.binDir, "kubectl"),
            [
              "--kubeconfig",
              n.kubeconfigPath,
              "delete",
              "--ignore-not-found",
              "--wait=true",
              "--timeout=240s",
              "-f",
              i.file,
            ],
            { timeoutMs: 260_000 },
          ).then((res) => {
            if (res.code !== 0) process.stderr.write(`# group-suffix: deleting ${i.name}: ${res.stderr}\n`);
          }),
        ),
    );
    // The aggregator rechecks every APIService as others come and go: the default install's are
    // Available again before this suite hands the node on.
    if (n) {
      await runKubectl(n.binDir, n.kubeconfigPath, [
        "wait",
        "--for=condition=Available",
        "--timeout=90s",
        "apiservice/v1alpha1.login.concierge.pinniped.dev",
        "apiservice/v1alpha1.identity.concierge.pinniped.dev",
      ]);
    }
    await webhook?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("each serves its own groups only, and has its own CredentialIssuer with the signing key borrowed", async () => {
    for (const i of installs) {
      const resources = (
        await kubectl(["api-resources", `--api-group=login.concierge.${i.apiGroupSuffix}`, "-o", "name"])
      ).stdout;
      assert.equal(resources.trim(), `tokencredentialrequests.login.concierge.${i.apiGroupSuffix}`);
      const identity = (
        await kubectl(["api-resources", `--api-group=identity.concierge.${i.apiGroupSuffix}`, "-o", "name"])
      ).stdout;
      assert.equal(identity.trim(), `whoamirequests.identity.concierge.${i.apiGroupSuffix}`);
      await eventually(
        `${i.name}: KubeClusterSigningCertificate Success`,
        async () => {
          const res = await runKubectl(n.binDir, n.kubeconfigPath, [
            "get",
            `credentialissuers.config.concierge.${i.apiGroupSuffix}`,
            `${i.name}-config`,
            "-o",
            "json",
          ]);
          if (res.code !== 0) return false;
          const issuer = JSON.parse(res.stdout) as {
            status?: { strategies?: { type: string; status: string }[] };
          };
          return (issuer.status?.strategies ?? []).some(
            (s) => s.type === "KubeClusterSigningCertificate" && s.status === "Success",
          );
        },
        { timeoutMs: 180_000 },
      );
      // Only its own: the default install's CredentialIssuer is not among them.
      const issuers = (
        await kubectl(["get", `credentialissuers.config.concierge.${i.apiGroupSuffix}`, "-o", "name"])
      ).stdout;
      assert.equal(issuers.trim(), `credentialissuer.config.concierge.${i.apiGroupSuffix}/${i.name}-config`);
    }
  });

  it("each one's admission webhook validates authenticators of its group: warnings at apply, then Ready", async () => {
    for (const i of installs) {
      const authenticator = (name: string, ca: string) =>
        JSON.stringify({
          apiVersion: `authentication.concierge.${i.apiGroupSuffix}/v1alpha1`,
          kind: "WebhookAuthenticator",
          metadata: { name },
          spec: { endpoint: webhook.url, tls: { certificateAuthorityData: ca } },
        });
      // A CA that is not base64: stored, with the webhook's warning (failurePolicy Fail, so the
      // warning can only come from this install's own webhook answering).
      const warned = await kubectl(
        ["create", "--dry-run=server", "-o", "name", "-f", "-"],
        authenticator(uniqueName("bad-ca"), "not base64!"),
      );
      assert.match(warned.stderr, /Warning: spec\.tls\.certificateAuthorityData/);
      await kubectl(["apply", "-f", "-"], authenticator(i.authenticator, webhook.caBase64));
      await kubectl([
        "wait",
        "--for=jsonpath={.status.phase}=Ready",
        "--timeout=90s",
        `webhookauthenticators.authentication.concierge.${i.apiGroupSuffix}/${i.authenticator}`,
      ]);
    }
  });

  /** `pinniped get kubeconfig` by the `pinniped` on PATH in `bin` (ours or upstream's), for one install. */
  const getKubeconfig = async (i: Install, bin: string, out: string, extra: string[] = []) => {
    const res = await runCommand(
      "pinniped",
      [
        "get",
        "kubeconfig",
        "--kubeconfig",
        n.kubeconfigPath,
        "--concierge-api-group-suffix",
        i.apiGroupSuffix,
        "--concierge-authenticator-type",
        "webhook",
        "--concierge-authenticator-name",
        i.authenticator,
        "--static-token",
        i.token,
        "--credential-cache",
        join(dir, `${out}.credentials.yaml`),
        ...extra,
        "-o",
        join(dir, out),
      ],
      { env: { PATH: pathWith(bin) }, timeoutMs: 90_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    return res.stderr;
  };
  const authWhoami = async (bin: string, kubeconfig: string) => {
    const res = await runCommand(
      join(n.binDir, "kubectl"),
      [
        "--kubeconfig",
        join(dir, kubeconfig),
        "--cache-dir",
        join(dir, "cache"),
        "auth",
        "whoami",
        "-o",
        "json",
      ],
      { env: { PATH: pathWith(bin) }, timeoutMs: 90_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    return (JSON.parse(res.stdout) as { status: { userInfo: { username: string; groups: string[] } } }).status
      .userInfo;
  };

  it("a user logs in through each with our CLI's --concierge-api-group-suffix, and whoami asks that install", async () => {
    for (const i of installs) {
      const out = `ours-${i.name}.kubeconfig`;
      const log = await getKubeconfig(i, join(repoRoot, "bin"), out, ["--pinniped-cli-path", pinnipedBin]);
      assert.match(log, new RegExp(`discovered CredentialIssuer ${i.name}-config`));
      const who = await authWhoami(join(repoRoot, "bin"), out);
      assert.equal(who.username, i.user.username);
      assert.deepEqual(who.groups, [...i.user.groups, "system:authenticated"]);
      const whoami = await runCommand(
        pinnipedBin,
        ["whoami", "--kubeconfig", join(dir, out), "--api-group-suffix", i.apiGroupSuffix],
        { timeoutMs: 90_000 },
      );
      assert.equal(whoami.code, 0, whoami.stderr);
      assert.match(whoami.stdout, new RegExp(`Username: ${i.user.username}\n`));
    }
    assert.ok(
      installs.every((i) => webhook.requests.some((r) => r.token === i.token)),
      "the webhook was not asked for every install's token",
    );
  });

  it("the same with upstream's Go CLI: its get kubeconfig and its login static as kubectl's exec plugin", async () => {
    for (const i of installs) {
      const out = `upstream-${i.name}.kubeconfig`;
      await getKubeconfig(i, upstreamBin, out);
      assert.equal((await authWhoami(upstreamBin, out)).username, i.user.username);
    }
  });

  it("a TokenCredentialRequest that names another install's authenticator group gets no credential", async () => {
    const [acme, tuna] = installs as [Install, Install];
    const res = await kubectl(
      ["create", "-o", "json", "-f", "-"],
      JSON.stringify({
        apiVersion: `login.concierge.${acme.apiGroupSuffix}/v1alpha1`,
        kind: "TokenCredentialRequest",
        spec: {
          token: acme.token,
          authenticator: {
            apiGroup: `authentication.concierge.${tuna.apiGroupSuffix}`,
            kind: "WebhookAuthenticator",
            name: acme.authenticator,
          },
        },
      }),
    );
    const status = (JSON.parse(res.stdout) as { status: { credential?: unknown; message?: string } }).status;
    assert.equal(status.credential, undefined);
    assert.equal(status.message, "authentication failed");
  });
});
