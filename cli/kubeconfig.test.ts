import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import type { RequestOptions, RestClient } from "../kube/rest.ts";
import { startHTTPSServer, type TestHTTPSServer } from "../test/harness/tls.ts";
import {
  buildKubeconfig,
  defaultInstallHint,
  defaultOIDCScopes,
  discoverAuthenticator,
  discoverIssuer,
  type GetKubeconfigOptions,
  generateKubeconfig,
  getKubeconfig,
  type KubeconfigInputs,
  parseGetKubeconfig,
} from "./kubeconfig.ts";
import {
  type CredentialIssuer,
  discoverOIDCCABundle,
  pickFrontend,
  type Strategy,
} from "./kubeconfig-discovery.ts";
import { parseGoDuration } from "./kubeconfig-duration.ts";
import { pruneScopes } from "./kubeconfig-http.ts";

type Answer = unknown | ((o: RequestOptions) => unknown);
/** Answers GETs from a table of path → object (or a function of the request). */
function fakeClient(objects: Record<string, Answer>): RestClient & { paths: string[] } {
  const paths: string[] = [];
  return {
    paths,
    request: async <T>(o: RequestOptions) => {
      paths.push(o.path);
      if (!(o.path in objects)) throw new Error(`404 ${o.path}`);
      const a = objects[o.path];
      return (typeof a === "function" ? a(o) : a) as T;
    },
    stream: async () => {},
  };
}
const issuers = "/apis/config.concierge.pinniped.dev/v1alpha1/credentialissuers";
const webhooks = "/apis/authentication.concierge.pinniped.dev/v1alpha1/webhookauthenticators";
const jwts = "/apis/authentication.concierge.pinniped.dev/v1alpha1/jwtauthenticators";
const apiservices = "/apis/apiregistration.k8s.io/v1/apiservices";
const named = (...names: string[]) => ({ items: names.map((name) => ({ metadata: { name } })) });
const b64 = (s: string) => Buffer.from(s).toString("base64");

const tcr: Strategy = {
  type: "KubeClusterSigningCertificate",
  status: "Success",
  reason: "FetchedKey",
  message: "ok",
  frontend: { type: "TokenCredentialRequestAPI" },
};
const proxy = (endpoint: string, caBase64: string): Strategy => ({
  type: "ImpersonationProxy",
  status: "Success",
  reason: "Listening",
  message: "listening",
  frontend: {
    type: "ImpersonationProxy",
    impersonationProxyInfo: { endpoint, certificateAuthorityData: caBase64 },
  },
});
const ci = (...strategies: Strategy[]): CredentialIssuer => ({
  metadata: { name: "c" },
  status: { strategies },
});

function options(args: string[]): GetKubeconfigOptions {
  const o = parseGetKubeconfig(args);
  assert.ok(o !== "help");
  return o;
}

let server: TestHTTPSServer;
/** Per-test behaviour of the shared HTTPS server (issuer discovery and validation target). */
let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
let dir: string;
before(async () => {
  server = await startHTTPSServer((req, res) => handler(req, res));
  dir = await mkdtemp(join(tmpdir(), "kubeconfig-test-"));
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe("get kubeconfig flags", () => {
  it("parses flags: one static token source, type and name together, valid mode and timeout", () => {
    const bad: [string[], RegExp][] = [
      [
        ["--static-token=a", "--static-token-env=B"],
        /only one of --static-token and --static-token-env can be specified/,
      ],
      [["--concierge-authenticator-type=webhook"], /must be specified together/],
      [
        ["--concierge-authenticator-type=saml", "--concierge-authenticator-name=x"],
        /invalid authenticator type "saml", supported values are "webhook" and "jwt"/,
      ],
      [
        ["--concierge-mode=foo"],
        /invalid mode "foo", valid modes are TokenCredentialRequestAPI and ImpersonationProxy/,
      ],
      [["--timeout=10"], /invalid duration "10"/],
      [["--oidc-listen-port=70000"], /--oidc-listen-port/],
      [["--concierge-ca-bundle=/nonexistent/ca.pem"], /could not read CA bundle path/],
      [["--oidc-frobnicate"], /unknown flag: --oidc-frobnicate$/],
    ];
    for (const [args, re] of bad) assert.throws(() => parseGetKubeconfig(args), re, args.join(" "));
    const o = options(["--static-token-env=TOK", "-o", "out.yaml"]);
    assert.deepEqual(o.staticToken, { env: "TOK" });
    assert.equal(o.output, "out.yaml");
    assert.equal(o.cliPath, "pinniped");
    assert.equal(o.nameSuffix, "-pinniped");
    assert.equal(o.installHint, defaultInstallHint);
    assert.equal(o.credentialCache, undefined);
    assert.equal(o.timeoutMs, 600_000);
    assert.equal(o.conciergeMode, undefined);
    assert.equal(parseGetKubeconfig(["-h"]), "help");
  });

  it("defaults to OIDC login with upstream's client ID and scopes; explicit scopes are marked", () => {
    const o = options([]);
    assert.equal(o.staticToken, undefined);
    assert.equal(o.oidc.clientID, "pinniped-cli");
    assert.deepEqual(o.oidc.scopes, [
      "offline_access",
      "openid",
      "pinniped:request-audience",
      "username",
      "groups",
    ]);
    assert.equal(o.oidc.scopesSet, false);
    const s = options([
      "--oidc-scopes=openid,email",
      "--oidc-scopes",
      "profile",
      "--concierge-mode=impersonationproxy",
    ]);
    assert.deepEqual(s.oidc.scopes, ["openid", "email", "profile"]);
    assert.equal(s.oidc.scopesSet, true);
    assert.equal(s.conciergeMode, "ImpersonationProxy");
    assert.deepEqual(options(["--concierge-namespace=x"]).warnings, [
      "Flag --concierge-namespace has been deprecated, not needed anymore",
    ]);
  });

  it("reads repeatable CA bundle files, each of which must hold a certificate", async () => {
    const a = join(dir, "a.pem");
    const b = join(dir, "b.pem");
    const empty = join(dir, "empty.pem");
    await writeFile(a, server.caPEM);
    await writeFile(b, server.otherCAPEM);
    await writeFile(empty, "not a cert\n");
    const o = options([`--oidc-ca-bundle=${a}`, `--oidc-ca-bundle=${b}`, `--concierge-ca-bundle=${a}`]);
    assert.equal(o.oidc.caBundle, `${server.caPEM}\n${server.otherCAPEM}`);
    assert.equal(o.conciergeCABundle, server.caPEM);
    assert.throws(
      () => parseGetKubeconfig([`--concierge-ca-bundle=${empty}`]),
      /failed to load any CA certificates from ".*empty.pem"/,
    );
  });

  it("parses Go durations", () => {
    const cases: [string, number][] = [
      ["10m", 600_000],
      ["30s", 30_000],
      ["1m30s", 90_000],
      ["1.5h", 5_400_000],
      ["250ms", 250],
      ["0", 0],
      ["2h0m0s", 7_200_000],
    ];
    for (const [text, ms] of cases) assert.equal(parseGoDuration(text), ms, text);
    for (const text of ["", "10", "m", "1x", "1m 30s"])
      assert.throws(() => parseGoDuration(text), /invalid duration/, text);
  });
});

describe("get kubeconfig discovery", () => {
  it("picks the frontend as upstream: first successful known frontend matching the mode", () => {
    const ip = proxy("https://proxy", "Q0E=");
    const errored: Strategy = { ...tcr, status: "Error", reason: "CouldNotFetchKey", message: "no pods" };
    const pending: Strategy = {
      ...ip,
      status: "Error",
      reason: "Pending",
      message: "waiting for load balancer",
    };
    const unknown: Strategy = { ...tcr, frontend: { type: "Carrier pigeon" } };
    const noFrontend: Strategy = { ...tcr, frontend: undefined };
    const table: [
      string,
      CredentialIssuer,
      "TokenCredentialRequestAPI" | "ImpersonationProxy" | undefined,
      string | RegExp,
    ][] = [
      ["TCR only", ci(tcr), undefined, "TokenCredentialRequestAPI"],
      ["IP only", ci(errored, ip), undefined, "ImpersonationProxy"],
      ["both: TCR first", ci(tcr, ip), undefined, "TokenCredentialRequestAPI"],
      ["both, IP listed first", ci(ip, tcr), undefined, "ImpersonationProxy"],
      ["mode selects IP", ci(tcr, ip), "ImpersonationProxy", "ImpersonationProxy"],
      ["unknown and missing frontends skipped", ci(unknown, noFrontend, ip), undefined, "ImpersonationProxy"],
      [
        "mode mismatch",
        ci(tcr),
        "ImpersonationProxy",
        /could not find successful Concierge strategy matching --concierge-mode=ImpersonationProxy \(CredentialIssuer c reports KubeClusterSigningCertificate: Success\/FetchedKey: ok\)$/,
      ],
      [
        "pending",
        ci(errored, pending),
        undefined,
        /could not autodiscover --concierge-mode .*ImpersonationProxy: Error\/Pending: waiting for load balancer/,
      ],
      [
        "error",
        ci(errored),
        "TokenCredentialRequestAPI",
        /--concierge-mode=TokenCredentialRequestAPI .*CouldNotFetchKey: no pods/,
      ],
      ["no status", { metadata: { name: "c" } }, undefined, /no strategies/],
    ];
    for (const [name, issuer, mode, want] of table) {
      if (typeof want === "string") assert.equal(pickFrontend(issuer, mode).type, want, name);
      else assert.throws(() => pickFrontend(issuer, mode), want, name);
    }
    assert.equal(pickFrontend(ci(ip), undefined).impersonationProxyInfo?.endpoint, "https://proxy");
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

  it("discovers exactly one authenticator of either kind, or the named one, with a JWT spec", async () => {
    const none = fakeClient({ [webhooks]: named(), [jwts]: named() });
    await assert.rejects(
      discoverAuthenticator(none, "pinniped.dev", undefined, undefined),
      /no authenticators were found/,
    );
    const two = fakeClient({ [webhooks]: named("w"), [jwts]: named("j") });
    await assert.rejects(
      discoverAuthenticator(two, "pinniped.dev", undefined, undefined),
      /multiple authenticators were found, so the --concierge-authenticator-type\/--concierge-authenticator-name flags must be specified/,
    );
    const one = fakeClient({ [webhooks]: named("w"), [jwts]: named() });
    assert.deepEqual(await discoverAuthenticator(one, "pinniped.dev", undefined, undefined), {
      type: "webhook",
      name: "w",
    });
    const spec = { issuer: "https://issuer", audience: "aud" };
    const c = fakeClient({ [`${jwts}/j`]: { metadata: { name: "j" }, spec } });
    assert.deepEqual(await discoverAuthenticator(c, "pinniped.dev", "JWT", "j"), {
      type: "jwt",
      name: "j",
      spec,
    });
    await assert.rejects(discoverAuthenticator(c, "pinniped.dev", "webhook", "j"), /404/);
  });

  it("autodiscovers the OIDC CA bundle from a Secret in the Concierge namespace found by its APIService", async () => {
    const services = {
      items: [
        { spec: { group: "login.concierge.other.dev", service: { namespace: "wrong" } } },
        { spec: { group: "login.concierge.pinniped.dev", service: { namespace: "concierge" } } },
      ],
    };
    const spec = { tls: { certificateAuthorityDataSource: { kind: "Secret", name: "ca", key: "ca.crt" } } };
    const lines: string[] = [];
    const c = fakeClient({
      [apiservices]: services,
      "/api/v1/namespaces/concierge/secrets/ca": {
        data: { "ca.crt": b64(server.caPEM), empty: "", junk: b64("junk") },
      },
      "/api/v1/namespaces/concierge/configmaps/ca": { data: { "ca.crt": server.otherCAPEM } },
    });
    assert.equal(
      await discoverOIDCCABundle(c, "pinniped.dev", "j", spec, (l) => lines.push(l)),
      server.caPEM,
    );
    assert.ok(lines.some((l) => /\(roots: 1\)/.test(l)));
    const cm = { tls: { certificateAuthorityDataSource: { kind: "ConfigMap", name: "ca", key: "ca.crt" } } };
    assert.equal(await discoverOIDCCABundle(c, "pinniped.dev", "j", cm, () => {}), server.otherCAPEM);
    const withKey = (key: string, kind = "Secret", name = "ca") => ({
      tls: { certificateAuthorityDataSource: { kind, name, key } },
    });
    const tried = "tried to autodiscover --oidc-ca-bundle, but";
    const failures: [RestClient, object, string][] = [
      [
        c,
        withKey("nope"),
        `${tried} key "nope" specified by JWTAuthenticator j spec.tls.certificateAuthorityDataSource.key does not exist in Secret concierge/ca`,
      ],
      [
        c,
        withKey("empty"),
        `${tried} key "empty" specified by JWTAuthenticator j spec.tls.certificateAuthorityDataSource.key exists but has empty value in Secret concierge/ca`,
      ],
      [
        c,
        withKey("junk"),
        `${tried} value at key "junk" specified by JWTAuthenticator j spec.tls.certificateAuthorityDataSource.key does not contain any CA certificates in Secret concierge/ca`,
      ],
      [
        c,
        withKey("k", "Secret", "gone"),
        `${tried} encountered error getting Secret concierge/gone specified by JWTAuthenticator j spec.tls.certificateAuthorityDataSource: 404 /api/v1/namespaces/concierge/secrets/gone`,
      ],
      [
        fakeClient({ [apiservices]: { items: [] } }),
        withKey("k"),
        `${tried} encountered error discovering namespace of Concierge for JWTAuthenticator j: could not find APIService with non-empty spec.service.namespace for API group login.concierge.pinniped.dev`,
      ],
      [
        c,
        { tls: { certificateAuthorityData: "not base64!" } },
        `${tried} JWTAuthenticator j has invalid spec.tls.certificateAuthorityData: illegal base64 data`,
      ],
    ];
    for (const [client, s, message] of failures) {
      await assert.rejects(
        discoverOIDCCABundle(client, "pinniped.dev", "j", s, () => {}),
        { message },
      );
    }
    assert.equal(
      await discoverOIDCCABundle(
        c,
        "pinniped.dev",
        "j",
        { tls: { certificateAuthorityData: b64(server.caPEM) } },
        () => {},
      ),
      server.caPEM,
    );
    assert.equal(await discoverOIDCCABundle(c, "pinniped.dev", "j", {}, () => {}), undefined);
  });

  it("drops default scopes the issuer does not list, keeps openid, and only warns when discovery fails", async () => {
    handler = (req, res) => {
      if (req.url === "/.well-known/openid-configuration") {
        res.setHeader("Content-Type", "application/json");
        res.end(
          JSON.stringify({ issuer: server.base, scopes_supported: ["offline_access", "email", "groups"] }),
        );
      } else {
        res.statusCode = 404;
        res.end();
      }
    };
    const lines: string[] = [];
    const signal = AbortSignal.timeout(5000);
    const kept = await pruneScopes(`${server.base}/`, defaultOIDCScopes, {
      ca: server.caPEM,
      signal,
      log: (l) => lines.push(l),
    });
    assert.deepEqual(kept, ["offline_access", "openid", "groups"]);
    assert.deepEqual(lines, [
      "removed scope pinniped:request-audience from --oidc-scopes because the issuer does not list it in scopes_supported",
      "removed scope username from --oidc-scopes because the issuer does not list it in scopes_supported",
    ]);
    lines.length = 0;
    // The wrong CA: TLS fails, so the scopes stay and a warning says why.
    const same = await pruneScopes(server.base, defaultOIDCScopes, {
      ca: server.otherCAPEM,
      signal,
      log: (l) => lines.push(l),
    });
    assert.deepEqual(same, defaultOIDCScopes);
    assert.match(lines[0]!, /^warning: could not fetch OIDC discovery data from issuer/);
    lines.length = 0;
    assert.deepEqual(
      await pruneScopes(`${server.base}/missing`, ["openid"], {
        ca: server.caPEM,
        signal,
        log: (l) => lines.push(l),
      }),
      ["openid"],
    );
    assert.match(lines[0]!, /unexpected HTTP status 404/);
  });
});

describe("get kubeconfig output", () => {
  const base: Omit<KubeconfigInputs, "login" | "concierge"> = {
    contextName: "admin@kind",
    clusterName: "kind",
    userName: "admin",
    cluster: { server: "https://127.0.0.1:6443", ca: "CA" },
    credentialCache: "/tmp/c.yaml",
    nameSuffix: "-pinniped",
    installHint: "install it",
    cliPath: "/repo/bin/pinniped",
  };
  const concierge = {
    apiGroupSuffix: "pinniped.dev",
    authenticator: { type: "webhook", name: "corp" },
    endpoint: "https://127.0.0.1:6443",
    ca: "CA",
  };
  const exec = (kc: Record<string, unknown>) =>
    (kc as { users: { user: { exec: { args: string[]; interactiveMode: string } } }[] }).users[0]!.user.exec;

  it("writes upstream's exec stanza for a static token, args in upstream's order", () => {
    const kc = buildKubeconfig({ ...base, concierge, login: { static: { token: "tok" } } });
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
    const env = exec(
      buildKubeconfig({ ...base, credentialCache: undefined, concierge, login: { static: { env: "TOK" } } }),
    );
    assert.equal(env.args.at(-1), "--token-env=TOK");
    assert.ok(!env.args.some((a) => a.startsWith("--credential-cache")));
    // --no-concierge: the token goes straight to the cluster.
    assert.deepEqual(
      exec(buildKubeconfig({ ...base, concierge: undefined, login: { static: { token: "t" } } })).args,
      ["login", "static", "--credential-cache=/tmp/c.yaml", "--token=t"],
    );
  });

  it("writes `login oidc` with every OIDC flag in upstream's order, interactive if available", () => {
    const full = exec(
      buildKubeconfig({
        ...base,
        concierge: { ...concierge, authenticator: { type: "jwt", name: "oidc" } },
        login: {
          oidc: {
            issuer: "https://issuer",
            clientID: "pinniped-cli",
            scopes: ["openid", "groups"],
            skipBrowser: true,
            skipListen: true,
            listenPort: 48095,
            caBundle: "PEM",
            sessionCache: "/tmp/s.yaml",
            debugSessionCache: true,
            requestAudience: "cluster-1",
            upstreamIDPName: "okta",
            upstreamIDPType: "oidc",
            upstreamIDPFlow: "browser_authcode",
          },
        },
      }),
    );
    assert.equal(full.interactiveMode, "IfAvailable");
    assert.deepEqual(full.args, [
      "login",
      "oidc",
      "--enable-concierge",
      "--concierge-api-group-suffix=pinniped.dev",
      "--concierge-authenticator-name=oidc",
      "--concierge-authenticator-type=jwt",
      "--concierge-endpoint=https://127.0.0.1:6443",
      "--concierge-ca-bundle-data=Q0E=",
      "--credential-cache=/tmp/c.yaml",
      "--issuer=https://issuer",
      "--client-id=pinniped-cli",
      "--scopes=openid,groups",
      "--skip-browser",
      "--skip-listen",
      "--listen-port=48095",
      "--ca-bundle-data=UEVN",
      "--session-cache=/tmp/s.yaml",
      "--debug-session-cache",
      "--request-audience=cluster-1",
      "--upstream-identity-provider-name=okta",
      "--upstream-identity-provider-type=oidc",
      "--upstream-identity-provider-flow=browser_authcode",
    ]);
    const oidc = { issuer: "https://i", clientID: "c", scopes: ["openid"] };
    assert.deepEqual(
      exec(buildKubeconfig({ ...base, credentialCache: undefined, concierge: undefined, login: { oidc } }))
        .args,
      ["login", "oidc", "--issuer=https://i", "--client-id=c", "--scopes=openid"],
    );
    assert.throws(
      () =>
        buildKubeconfig({
          ...base,
          concierge,
          login: { oidc: { ...oidc, requestAudience: "x.pinniped.dev" } },
        }),
      /request audience is not allowed to include the substring '.pinniped.dev': x.pinniped.dev/,
    );
  });
});

describe("get kubeconfig end to end (fake API server, local HTTPS issuer and cluster)", () => {
  const kubeconfig = () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "kind", server: server.base, caData: server.caBase64, skipTLSVerify: false }],
      users: [{ name: "admin", token: "admin-token" }],
      contexts: [{ name: "admin@kind", cluster: "kind", user: "admin" }],
      currentContext: "admin@kind",
    });
    return kc;
  };
  const jwtSpec = {
    audience: "cluster-1",
    audiences: ["other"],
    tls: { certificateAuthorityDataSource: { kind: "Secret", name: "issuer-ca", key: "ca.crt" } },
  };
  const cluster = (o: Record<string, unknown>) =>
    (o as { clusters: { cluster: Record<string, unknown> }[] }).clusters[0]!.cluster;
  const args = (o: Record<string, unknown>) =>
    (o as { users: { user: { exec: { args: string[]; interactiveMode: string } } }[] }).users[0]!.user.exec;

  it("a JWTAuthenticator behind the impersonation proxy: waits out Pending, discovers issuer, audience, CA and scopes, validates", async () => {
    let validations = 0;
    handler = (req, res) => {
      if (req.url === "/.well-known/openid-configuration") {
        res.end(
          JSON.stringify({ scopes_supported: ["openid", "offline_access", "pinniped:request-audience"] }),
        );
        return;
      }
      validations++;
      res.statusCode = validations === 1 ? 503 : 401;
      res.end();
    };
    const ip = proxy(`${server.base}/proxy`, server.caBase64);
    let polls = 0;
    const client = fakeClient({
      [issuers]: () => {
        polls++;
        return {
          items: [polls === 1 ? ci({ ...ip, status: "Error", reason: "Pending", message: "lb" }) : ci(ip)],
        };
      },
      [jwts]: { items: [{ metadata: { name: "oidc" }, spec: { ...jwtSpec, issuer: server.base } }] },
      [webhooks]: named(),
      [apiservices]: {
        items: [{ spec: { group: "login.concierge.pinniped.dev", service: { namespace: "concierge" } } }],
      },
      "/api/v1/namespaces/concierge/secrets/issuer-ca": { data: { "ca.crt": server.caBase64 } },
    });
    const lines: string[] = [];
    const out = await generateKubeconfig(options(["--timeout=5s"]), {
      kc: kubeconfig(),
      client,
      log: (l) => lines.push(l),
      pollMs: 20,
    });
    assert.equal(polls, 2);
    assert.equal(validations, 2);
    assert.deepEqual(cluster(out), {
      server: `${server.base}/proxy`,
      "certificate-authority-data": server.caBase64,
    });
    const exec = args(out);
    assert.equal(exec.interactiveMode, "IfAvailable");
    assert.deepEqual(exec.args, [
      "login",
      "oidc",
      "--enable-concierge",
      "--concierge-api-group-suffix=pinniped.dev",
      "--concierge-authenticator-name=oidc",
      "--concierge-authenticator-type=jwt",
      `--concierge-endpoint=${server.base}/proxy`,
      `--concierge-ca-bundle-data=${server.caBase64}`,
      `--issuer=${server.base}`,
      "--client-id=pinniped-cli",
      "--scopes=offline_access,openid,pinniped:request-audience",
      `--ca-bundle-data=${server.caBase64}`,
      "--request-audience=cluster-1",
    ]);
    for (const want of [
      "discovered CredentialIssuer c",
      /^found CredentialIssuer strategy \(type: ImpersonationProxy, status: Error, reason: Pending, message: lb\)$/,
      /^waiting for CredentialIssuer pending strategies to finish \(attempts: 1, remaining: \d+s\)$/,
      "discovered jwt authenticator oidc",
      "discovered Concierge operating in impersonation proxy mode",
      `discovered Concierge endpoint ${server.base}/proxy`,
      "discovered Concierge certificate authority bundle (roots: 1)",
      `discovered OIDC issuer ${server.base}`,
      "discovered OIDC audience cluster-1",
      "removed scope username from --oidc-scopes because the issuer does not list it in scopes_supported",
      "validated connection to the cluster",
    ]) {
      assert.ok(
        lines.some((l) => (typeof want === "string" ? l === want : want.test(l))),
        `${want}\n${lines.join("\n")}`,
      );
    }
  });

  it("adds the scope an authenticator's claim mappings need when the issuer lists it, and says so", async () => {
    // A generic identity provider: no Supervisor scopes, but email and profile.
    handler = (req, res) => {
      if (req.url === "/.well-known/openid-configuration") {
        res.end(JSON.stringify({ scopes_supported: ["openid", "offline_access", "email", "profile"] }));
        return;
      }
      res.statusCode = 401;
      res.end();
    };
    const spec = {
      ...jwtSpec,
      issuer: server.base,
      claims: { username: "email", groupsExpression: "claims.?roles.orValue([])" },
      claimValidationRules: [{ expression: "claims.email_verified == true" }],
    };
    const client = fakeClient({
      [issuers]: { items: [ci(tcr)] },
      [jwts]: { items: [{ metadata: { name: "corp" }, spec }] },
      [webhooks]: named(),
      [apiservices]: {
        items: [{ spec: { group: "login.concierge.pinniped.dev", service: { namespace: "concierge" } } }],
      },
      "/api/v1/namespaces/concierge/secrets/issuer-ca": { data: { "ca.crt": server.caBase64 } },
    });
    const lines: string[] = [];
    const deps = { kc: kubeconfig(), client, log: (l: string) => lines.push(l), pollMs: 20 };
    const out = await generateKubeconfig(options([]), deps);
    assert.ok(args(out).args.includes("--scopes=offline_access,openid,email"), args(out).args.join(" "));
    assert.ok(
      lines.includes(
        "added scope email to --oidc-scopes because JWTAuthenticator corp reads the email claim (spec.claims.username)",
      ),
      lines.join("\n"),
    );
    // Scopes the user chose are theirs.
    const chosen = await generateKubeconfig(options(["--oidc-scopes=openid"]), deps);
    assert.ok(args(chosen).args.includes("--scopes=openid"));
  });

  it("a webhook with a static token in TCR mode; OIDC without an issuer is a clear error; validation times out", async () => {
    handler = (_req, res) => {
      res.statusCode = 403;
      res.end();
    };
    const client = fakeClient({
      [issuers]: { items: [ci(tcr, proxy("https://proxy", "!!"))] },
      [`${issuers}/c`]: ci(tcr, proxy("https://proxy", "!!")),
      [jwts]: named(),
      [webhooks]: named("corp"),
    });
    const deps = { kc: kubeconfig(), client, log: () => {}, pollMs: 20 };
    const out = await generateKubeconfig(
      options(["--static-token=tok", "--concierge-credential-issuer=c"]),
      deps,
    );
    assert.deepEqual(cluster(out), { server: server.base, "certificate-authority-data": server.caBase64 });
    assert.deepEqual(args(out).args.slice(0, 2), ["login", "static"]);
    assert.equal(args(out).args.at(-1), "--token=tok");
    await assert.rejects(
      generateKubeconfig(options(["--skip-validation"]), deps),
      /WebhookAuthenticator corp.*pass --static-token or --static-token-env .* or --oidc-issuer/,
    );
    await assert.rejects(
      generateKubeconfig(options(["--static-token=t", "--concierge-mode=ImpersonationProxy"]), deps),
      /autodiscovered Concierge CA bundle is invalid: illegal base64 data/,
    );
    await assert.rejects(
      generateKubeconfig(
        options([
          "--static-token=t",
          "--concierge-mode=ImpersonationProxy",
          "--concierge-endpoint=https://x",
        ]),
        deps,
      ),
      /autodiscovered Concierge CA bundle is invalid/,
    );
    // --no-concierge never asks the Concierge anything.
    const before = client.paths.length;
    const direct = await generateKubeconfig(options(["--no-concierge", "--static-token=tok"]), deps);
    assert.equal(client.paths.length, before);
    assert.deepEqual(args(direct).args, ["login", "static", "--token=tok"]);
    handler = (_req, res) => {
      res.statusCode = 503;
      res.end();
    };
    await assert.rejects(
      generateKubeconfig(options(["--no-concierge", "--static-token=tok", "--timeout=3s"]), deps),
      /could not validate connection to the cluster at https:\/\/127\.0\.0\.1:\d+ within --timeout=3s: unexpected status code 503/,
    );
  });

  it("a CredentialIssuer that stays Pending fails at --timeout unless --concierge-skip-wait", async () => {
    const pending = { ...tcr, status: "Error", reason: "Pending", message: "starting" };
    const client = fakeClient({
      [issuers]: { items: [ci(pending, tcr)] },
      [jwts]: named(),
      [webhooks]: named("corp"),
    });
    const deps = { kc: kubeconfig(), client, log: () => {}, pollMs: 20 };
    await assert.rejects(
      generateKubeconfig(options(["--static-token=t", "--timeout=100ms"]), deps),
      /timed out waiting for CredentialIssuer c to have no Pending strategies/,
    );
    const out = await generateKubeconfig(
      options(["--static-token=t", "--concierge-skip-wait", "--skip-validation"]),
      deps,
    );
    assert.ok(args(out).args.includes("--concierge-authenticator-name=corp"));
  });
});

describe("get kubeconfig command", () => {
  it("talks to the API server with the admin kubeconfig and writes the output 0600", async () => {
    const api: Record<string, unknown> = {
      [issuers]: { items: [ci(tcr)] },
      [jwts]: named(),
      [webhooks]: named("corp"),
    };
    handler = (req, res) => {
      const path = req.url?.split("?")[0] ?? "";
      res.setHeader("Content-Type", "application/json");
      if (path in api) res.end(JSON.stringify(api[path]));
      else {
        res.statusCode = path === "/" ? 403 : 404;
        res.end("{}");
      }
    };
    const admin = join(dir, "admin.kubeconfig");
    await writeFile(
      admin,
      `apiVersion: v1
kind: Config
clusters: [{name: kind, cluster: {server: "${server.base}", certificate-authority-data: "${server.caBase64}"}}]
users: [{name: admin, user: {token: admin-token}}]
contexts: [{name: admin@kind, context: {cluster: kind, user: admin}}]
current-context: admin@kind
`,
    );
    const output = join(dir, "out.kubeconfig");
    const lines: string[] = [];
    const o = options([`--kubeconfig=${admin}`, "--static-token=secret-token", "-o", output]);
    assert.equal(await getKubeconfig(o, (l) => lines.push(l)), undefined);
    assert.equal((await stat(output)).mode & 0o777, 0o600);
    assert.match(await readFile(output, "utf8"), /--token=secret-token/);
    assert.ok(lines.includes("validated connection to the cluster"), lines.join("\n"));
    assert.ok(!lines.some((l) => l.includes("secret-token")));
  });
});
