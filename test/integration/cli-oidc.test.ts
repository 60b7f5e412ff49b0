// The `pinniped` CLI end to end, OIDC path, against the Concierge installed from its image on the
// real node (test/harness/node.ts): a JWTAuthenticator trusts the test's real oidc-provider (on
// the bridge, where the Concierge's pods reach it); `pinniped get kubeconfig` writes a kubeconfig
// whose exec plugin is `pinniped login oidc`; real kubectl runs it; the plugin prints the login URL
// on kubectl's stderr, where a real headless Chromium (test/harness/browser.ts) picks it up and
// signs in at the provider's login page, exactly as a person would after clicking the link.
//
// The Concierge issues 60 s certificates here (its minimum: the suite changes its ConfigMap and
// restarts it, as an operator would, and puts it back after), and the provider 60 s ID tokens, so
// that waiting half a minute makes both the cached credential and the cached ID token too old:
// the next kubectl must renew the credential with the refresh token, without a browser.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { expiryMarginMs } from "../../cli/cache.ts";
import type { NodeCluster } from "../../hack/node/cluster.ts";
import { closeBrowser } from "../harness/browser.ts";
import { dedicatedKubectl, uniqueName } from "../harness/cluster.ts";
import {
  changeConciergeConfig,
  conciergeMetric,
  signingKeyBorrowed,
  testConcierge,
} from "../harness/node.ts";
import { startOIDCProvider, type TestOIDCProvider } from "../harness/oidc-provider.ts";
import {
  getKubeconfig,
  installUpstreamCLI,
  pathWith,
  clonePinniped as pinnipedBin,
} from "../harness/pinniped-cli.ts";
import { runCommand } from "../harness/process.ts";
import { loginPrompt, userKubectl } from "../harness/user-kubectl.ts";

const user = { username: "pinny", groups: ["sea-lions", "seals"] };

describe("pinniped CLI, OIDC login with a real browser, against the Concierge installed from its image on the real node", () => {
  let n: NodeCluster;
  let dir: string;
  let provider: TestOIDCProvider;
  let generated: string;
  let credentialCache: string;
  let sessionCache: string;
  let restoreConfig: (() => Promise<void>) | undefined;
  const authenticator = uniqueName("corp-idp");
  const rbacName = uniqueName("cli-oidc-sea-lions");

  const { kubectl, ok } = dedicatedKubectl(() => ({ cluster: n, dir }));
  /** Certificates the Concierge's replicas issued, from their /metrics. */
  const exchanges = () =>
    conciergeMetric(n, /^concierge_token_credential_requests_total\{outcome="issued"\} (\d+)$/m);

  /** kubectl as the user, through the generated kubeconfig; the browser signs in when asked. */
  const kubectlAsUser = (args: string[]) =>
    userKubectl(args, {
      binDir: n.binDir,
      kubeconfig: generated,
      cacheDir: join(dir, "cache"),
      login: { username: user.username, password: "any" },
    });

  before(async () => {
    ({ node: n } = await testConcierge());
    dir = await mkdtemp(join(tmpdir(), "cli-oidc-"));
    credentialCache = join(dir, "pinniped", "credentials.yaml");
    sessionCache = join(dir, "pinniped", "sessions.yaml");
    generated = join(dir, "generated.kubeconfig");
    provider = await startOIDCProvider({
      audiences: [],
      interactive: { users: { [user.username]: { groups: user.groups } }, idTokenTTLSeconds: 60 },
      host: n.node.bridgeIP,
    });
    restoreConfig = await changeConciergeConfig(n, (config) => {
      config.tokenCredentialRequest = { clientCertificateTTLSeconds: 60 };
    });

    await ok(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
            kind: "JWTAuthenticator",
            metadata: { name: authenticator },
            spec: {
              issuer: provider.issuer,
              audience: "pinniped-cli",
              claims: { username: "username", groups: "groups" },
              tls: { certificateAuthorityData: Buffer.from(provider.caPEM).toString("base64") },
            },
          },
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
            subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "sea-lions" }],
          },
        ],
      }),
    });
    await ok([
      "wait",
      "--for=jsonpath={.status.phase}=Ready",
      "--timeout=60s",
      `jwtauthenticator/${authenticator}`,
    ]);
    await signingKeyBorrowed(n);
  });

  after(async () => {
    await closeBrowser();
    if (n) {
      await kubectl(["delete", "jwtauthenticator", authenticator, "--ignore-not-found"]);
      await kubectl(["delete", "clusterrole,clusterrolebinding", rbacName, "--ignore-not-found"]);
    }
    await restoreConfig?.();
    await provider?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("pinniped get kubeconfig discovers the JWTAuthenticator and writes a `login oidc` exec plugin", async () => {
    const res = await getKubeconfig({
      adminKubeconfig: n.kubeconfigPath,
      authenticator: { type: "jwt", name: authenticator },
      flags: [
        "--oidc-skip-browser",
        "--credential-cache",
        credentialCache,
        "--oidc-session-cache",
        sessionCache,
      ],
      out: generated,
    });
    assert.match(res.stderr, /discovered CredentialIssuer pinniped-concierge-config/);
    assert.match(res.stderr, /discovered Concierge operating in TokenCredentialRequest API mode/);
    assert.match(res.stderr, /validated connection to the cluster/);
    const exec = parse(res.kubeconfig).users[0].user.exec;
    assert.deepEqual(exec.args.slice(0, 3), ["login", "oidc", "--enable-concierge"]);
    assert.equal(exec.interactiveMode, "IfAvailable");
    for (const arg of [
      "--concierge-authenticator-type=jwt",
      `--concierge-authenticator-name=${authenticator}`,
      `--issuer=${provider.issuer}`,
      "--client-id=pinniped-cli",
      "--skip-browser",
      "--request-audience=pinniped-cli",
      `--ca-bundle-data=${Buffer.from(provider.caPEM).toString("base64")}`,
      `--session-cache=${sessionCache}`,
    ]) {
      assert.ok(exec.args.includes(arg), `${arg} missing from ${exec.args.join(" ")}`);
    }
    // The provider does not offer Pinniped's own scope, so the kubeconfig does not ask for it.
    const scopes = (exec.args as string[])
      .find((a) => a.startsWith("--scopes="))!
      .slice(9)
      .split(",");
    assert.ok(!scopes.includes("pinniped:request-audience"), scopes.join(","));
    assert.ok(scopes.includes("openid") && scopes.includes("offline_access"), scopes.join(","));
  });

  it("the first kubectl sends the user to the browser; auth whoami then shows the provider's user and groups", async () => {
    const before = { exchanges: await exchanges(), ...provider.stats() };
    const res = await kubectlAsUser(["auth", "whoami", "-o", "json"]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.browserLogins, 1);
    const who = JSON.parse(res.stdout) as { status: { userInfo: { username: string; groups: string[] } } };
    assert.equal(who.status.userInfo.username, user.username);
    // The certificate's O= values form a DER SET OF, which sorts them by encoding (as Go's does),
    // so the order the provider gave is not kept.
    assert.deepEqual(who.status.userInfo.groups.sort(), [...user.groups, "system:authenticated"].sort());
    assert.equal(await exchanges(), before.exchanges + 1);
    assert.equal(provider.stats().interactiveLogins, before.interactiveLogins + 1);
    for (const file of [credentialCache, sessionCache]) {
      assert.equal((await stat(file)).mode & 0o777, 0o600, file);
    }
  });

  it("a second kubectl within the certificate's TTL neither logs in nor exchanges again", async () => {
    const before = { exchanges: await exchanges(), ...provider.stats() };
    const res = await kubectlAsUser(["auth", "whoami"]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.browserLogins, 0);
    assert.doesNotMatch(res.stderr, loginPrompt);
    assert.equal(await exchanges(), before.exchanges);
    assert.equal(provider.stats().interactiveLogins, before.interactiveLogins);
    assert.equal(provider.stats().refreshGrants, before.refreshGrants);
  });

  it("an RBAC-allowed kubectl get succeeds and a forbidden one is denied", async () => {
    const allowed = await kubectlAsUser(["get", "namespace", "default", "-o", "name"]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stdout, /namespace\/default/);
    const denied = await kubectlAsUser(["get", "secrets", "-n", "kube-system"]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Forbidden.*User "pinny" cannot list resource "secrets"/);
  });

  it("pinniped whoami through the same kubeconfig names the user, with kubectl's cached credential", async () => {
    const entries = async () =>
      (parse(await readFile(credentialCache, "utf8")) as { credentials: { key: string }[] }).credentials.map(
        (e) => e.key,
      );
    const before = { exchanges: await exchanges(), entries: await entries() };
    const res = await runCommand(pinnipedBin, ["whoami", "--kubeconfig", generated]);
    assert.equal(res.code, 0, res.stderr);
    const groups = /Username: pinny\nGroups: (.*)\n/.exec(res.stdout)?.[1]?.split(", ");
    assert.deepEqual(groups?.sort(), [...user.groups, "system:authenticated"].sort(), res.stdout);
    // The plugin ran as under kubectl: same cache key, so no second exchange and no second entry.
    assert.equal(await exchanges(), before.exchanges);
    assert.deepEqual(await entries(), before.entries);
  });

  it("once the credential and the ID token are too old, kubectl renews with the refresh token and no browser", async () => {
    const cache = parse(await readFile(credentialCache, "utf8")) as {
      credentials: { credential: { expirationTimestamp: string } }[];
    };
    const expires = Math.max(...cache.credentials.map((c) => Date.parse(c.credential.expirationTimestamp)));
    // The plugin stops handing out a credential this long before it expires.
    const wait = expires - expiryMarginMs - Date.now() + 1_000;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));

    const before = { exchanges: await exchanges(), ...provider.stats() };
    const res = await kubectlAsUser(["auth", "whoami", "-o", "json"]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.browserLogins, 0, res.stderr);
    assert.equal(JSON.parse(res.stdout).status.userInfo.username, user.username);
    assert.equal(await exchanges(), before.exchanges + 1, "the expired credential was not renewed");
    assert.equal(provider.stats().refreshGrants, before.refreshGrants + 1, "no refresh grant");
    assert.equal(provider.stats().interactiveLogins, before.interactiveLogins);
  });

  it("nothing the plugin printed holds a token", async () => {
    const sessions = parse(await readFile(sessionCache, "utf8")) as {
      sessions: { tokens: Record<string, { token?: string } | undefined> }[];
    };
    const tokens = sessions.sessions.flatMap((s) =>
      ["access", "refresh", "id"].flatMap((kind) => s.tokens[kind]?.token ?? []),
    );
    assert.ok(tokens.length > 0, "no tokens found in the session cache to look for");
    const res = await kubectlAsUser(["auth", "whoami"]);
    for (const t of tokens) assert.ok(!res.stderr.includes(t) && !res.stdout.includes(t));
  });

  it("two kubectl started together with no cached login: one browser login, the second waits for it (longer than upstream's 10 s lock timeout) and uses its credential", async () => {
    await rm(credentialCache, { force: true });
    await rm(sessionCache, { force: true });
    const before = { exchanges: await exchanges(), ...provider.stats() };
    const first = userKubectl(["auth", "whoami", "-o", "json"], {
      binDir: n.binDir,
      kubeconfig: generated,
      cacheDir: join(dir, "cache"),
      login: { username: user.username, password: "any" },
      loginDelayMs: 12_000,
    });
    await new Promise((r) => setTimeout(r, 500));
    const second = kubectlAsUser(["get", "namespace", "default", "-o", "name"]);
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.browserLogins + b.browserLogins, 1, `${a.stderr}\n---\n${b.stderr}`);
    assert.equal(provider.stats().interactiveLogins, before.interactiveLogins + 1);
    assert.equal(await exchanges(), before.exchanges + 1);
  });

  it("upstream's Go CLI: its get kubeconfig against our Concierge, its login oidc as the exec plugin with the real browser", async () => {
    const upstreamBin = await installUpstreamCLI(join(dir, "upstream"));
    const env = { PATH: pathWith(upstreamBin) };
    const out = join(dir, "upstream.kubeconfig");
    await getKubeconfig({
      adminKubeconfig: n.kubeconfigPath,
      authenticator: { type: "jwt", name: authenticator },
      flags: [
        "--oidc-skip-browser",
        "--credential-cache",
        join(dir, "upstream-credentials.yaml"),
        "--oidc-session-cache",
        join(dir, "upstream-sessions.yaml"),
      ],
      out,
      bin: upstreamBin,
    });
    const as = (args: string[]) =>
      userKubectl(args, {
        binDir: n.binDir,
        kubeconfig: out,
        cacheDir: join(dir, "cache"),
        login: { username: user.username, password: "any" },
        env,
      });
    const first = await as(["auth", "whoami", "-o", "json"]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.browserLogins, 1);
    assert.equal(JSON.parse(first.stdout).status.userInfo.username, user.username);
    const again = await as(["get", "namespace", "default", "-o", "name"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.browserLogins, 0);
    const denied = await as(["get", "secrets", "-n", "kube-system"]);
    assert.match(denied.stderr, /Forbidden.*User "pinny" cannot list resource "secrets"/);
  });
});
