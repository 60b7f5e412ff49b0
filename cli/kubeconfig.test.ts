import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RequestOptions, RestClient } from "../controllers/runtime/rest.ts";
import {
  buildKubeconfig,
  defaultInstallHint,
  discoverAuthenticator,
  discoverIssuer,
  parseGetKubeconfig,
  pickTokenCredentialRequestStrategy,
} from "./kubeconfig.ts";

/** Answers GETs from a table of path → object. */
function fakeClient(objects: Record<string, unknown>): RestClient {
  return {
    request: async <T>(o: RequestOptions) => {
      if (!(o.path in objects)) throw new Error(`404 ${o.path}`);
      return objects[o.path] as T;
    },
    stream: async () => {},
  };
}
const issuers = "/apis/config.concierge.pinniped.dev/v1alpha1/credentialissuers";
const webhooks = "/apis/authentication.concierge.pinniped.dev/v1alpha1/webhookauthenticators";
const jwts = "/apis/authentication.concierge.pinniped.dev/v1alpha1/jwtauthenticators";
const named = (...names: string[]) => ({ items: names.map((name) => ({ metadata: { name } })) });

describe("get kubeconfig", () => {
  it("parses flags: one static token source, type and name together", () => {
    assert.throws(
      () => parseGetKubeconfig([], "/p"),
      /one of --static-token or --static-token-env must be specified/,
    );
    assert.throws(
      () => parseGetKubeconfig(["--static-token=a", "--static-token-env=B"], "/p"),
      /only one of --static-token and --static-token-env can be specified/,
    );
    assert.throws(
      () => parseGetKubeconfig(["--static-token=a", "--concierge-authenticator-type=webhook"], "/p"),
      /must be specified together/,
    );
    assert.throws(
      () =>
        parseGetKubeconfig(
          ["--static-token=a", "--concierge-authenticator-type=saml", "--concierge-authenticator-name=x"],
          "/p",
        ),
      /invalid authenticator type "saml", supported values are "webhook" and "jwt"/,
    );
    const o = parseGetKubeconfig(["--static-token-env=TOK", "-o", "out.yaml"], "/p/bin/pinniped");
    assert.ok(o !== "help");
    assert.deepEqual(o.staticToken, { env: "TOK" });
    assert.equal(o.output, "out.yaml");
    assert.equal(o.cliPath, "/p/bin/pinniped");
    assert.equal(o.nameSuffix, "-pinniped");
    assert.equal(o.installHint, defaultInstallHint);
    assert.equal(o.credentialCache, undefined);
    assert.equal(parseGetKubeconfig(["-h"], "/p"), "help");
  });

  it("picks the first successful TokenCredentialRequestAPI strategy, else says what is wrong", () => {
    const ok = {
      type: "KubeClusterSigningCertificate",
      status: "Success",
      frontend: { type: "TokenCredentialRequestAPI" },
    };
    const proxy = {
      type: "ImpersonationProxy",
      status: "Success",
      frontend: { type: "ImpersonationProxyInfo" },
    };
    assert.equal(
      pickTokenCredentialRequestStrategy({ metadata: { name: "c" }, status: { strategies: [proxy, ok] } }),
      ok,
    );
    const failing = {
      type: "KubeClusterSigningCertificate",
      status: "Error",
      reason: "CouldNotFetchKey",
      message: "no pods",
    };
    assert.throws(
      () =>
        pickTokenCredentialRequestStrategy({
          metadata: { name: "c" },
          status: { strategies: [failing, proxy] },
        }),
      /could not find successful Concierge strategy matching --concierge-mode=TokenCredentialRequestAPI .*KubeClusterSigningCertificate: Error\/CouldNotFetchKey: no pods/,
    );
    assert.throws(() => pickTokenCredentialRequestStrategy({ metadata: { name: "c" } }), /no strategies/);
  });

  it("discovers exactly one CredentialIssuer, or the named one", async () => {
    await assert.rejects(
      discoverIssuer(fakeClient({ [issuers]: named() }), "pinniped.dev", undefined),
      /no CredentialIssuers were found/,
    );
    await assert.rejects(
      discoverIssuer(fakeClient({ [issuers]: named("a", "b") }), "pinniped.dev", undefined),
      /multiple CredentialIssuers were found, so the --concierge-credential-issuer flag must be specified/,
    );
    const one = await discoverIssuer(fakeClient({ [issuers]: named("a") }), "pinniped.dev", undefined);
    assert.equal(one.metadata.name, "a");
    const c = fakeClient({ [`${issuers}/b`]: { metadata: { name: "b" } } });
    assert.equal((await discoverIssuer(c, "pinniped.dev", "b")).metadata.name, "b");
  });

  it("discovers exactly one authenticator of either kind, or the named one", async () => {
    await assert.rejects(
      discoverAuthenticator(
        fakeClient({ [webhooks]: named(), [jwts]: named() }),
        "pinniped.dev",
        undefined,
        undefined,
      ),
      /no authenticators were found/,
    );
    await assert.rejects(
      discoverAuthenticator(
        fakeClient({ [webhooks]: named("w"), [jwts]: named("j") }),
        "pinniped.dev",
        undefined,
        undefined,
      ),
      /multiple authenticators were found, so the --concierge-authenticator-type\/--concierge-authenticator-name flags must be specified/,
    );
    assert.deepEqual(
      await discoverAuthenticator(
        fakeClient({ [webhooks]: named("w"), [jwts]: named() }),
        "pinniped.dev",
        undefined,
        undefined,
      ),
      { type: "webhook", name: "w" },
    );
    const c = fakeClient({ [`${jwts}/j`]: { metadata: { name: "j" } } });
    assert.deepEqual(await discoverAuthenticator(c, "pinniped.dev", "JWT", "j"), { type: "jwt", name: "j" });
    await assert.rejects(discoverAuthenticator(c, "pinniped.dev", "webhook", "j"), /404/);
  });

  it("writes upstream's exec stanza, args in upstream's order", () => {
    const kc = buildKubeconfig({
      contextName: "admin@kind",
      clusterName: "kind",
      userName: "admin",
      server: "https://127.0.0.1:6443",
      caBase64: "Q0E=",
      authenticator: { type: "webhook", name: "corp" },
      options: {
        apiGroupSuffix: "pinniped.dev",
        staticToken: { token: "tok" },
        credentialCache: "/tmp/c.yaml",
        nameSuffix: "-pinniped",
        installHint: "install it",
        cliPath: "/repo/bin/pinniped",
      },
    });
    assert.deepEqual(kc, {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "kind-pinniped",
          cluster: { server: "https://127.0.0.1:6443", "certificate-authority-data": "Q0E=" },
        },
      ],
      users: [
        {
          name: "admin-pinniped",
          user: {
            exec: {
              apiVersion: "client.authentication.k8s.io/v1beta1",
              command: "/repo/bin/pinniped",
              args: [
                "login",
                "static",
                "--enable-concierge",
                "--concierge-api-group-suffix=pinniped.dev",
                "--concierge-authenticator-name=corp",
                "--concierge-authenticator-type=webhook",
                "--concierge-endpoint=https://127.0.0.1:6443",
                "--concierge-ca-bundle-data=Q0E=",
                "--credential-cache=/tmp/c.yaml",
                "--token=tok",
              ],
              env: [],
              installHint: "install it",
              interactiveMode: "Never",
              provideClusterInfo: true,
            },
          },
        },
      ],
      contexts: [
        { name: "admin@kind-pinniped", context: { cluster: "kind-pinniped", user: "admin-pinniped" } },
      ],
      "current-context": "admin@kind-pinniped",
      preferences: {},
    });
    const env = buildKubeconfig({
      contextName: "c",
      clusterName: "k",
      userName: "u",
      server: "https://s",
      caBase64: "Q0E=",
      authenticator: { type: "jwt", name: "oidc" },
      options: {
        apiGroupSuffix: "pinniped.dev",
        staticToken: { env: "TOK" },
        credentialCache: undefined,
        nameSuffix: "-p",
        installHint: "h",
        cliPath: "pinniped",
      },
    }) as { users: { user: { exec: { args: string[] } } }[] };
    const args = env.users[0]!.user.exec.args;
    assert.equal(args.at(-1), "--token-env=TOK");
    assert.ok(!args.some((a) => a.startsWith("--credential-cache")));
    assert.ok(args.includes("--concierge-authenticator-type=jwt"));
  });
});
