import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import type https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadInClusterConfig, loadKubeConfigFile } from "./kubeconfig.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("kubeconfig", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kubeconfig-test-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const write = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };
  const apply = async (path: string) => {
    const options: https.RequestOptions = { headers: { Accept: "application/json" } };
    await loadKubeConfigFile(path).applyToHTTPSOptions(options);
    return options;
  };

  it("reads the current context's cluster and client certificate data", async () => {
    const path = await write(
      "certs.yaml",
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        "current-context": "admin",
        contexts: [
          { name: "other", context: { cluster: "nope", user: "nope" } },
          { name: "admin", context: { cluster: "local", user: "admin" } },
        ],
        clusters: [
          {
            name: "local",
            cluster: {
              server: "https://127.0.0.1:6443",
              "certificate-authority-data": b64("CA PEM"),
              "tls-server-name": "kubernetes",
            },
          },
        ],
        users: [
          { name: "admin", user: { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") } },
        ],
      }),
    );
    const access = loadKubeConfigFile(path);
    assert.deepEqual(
      { ...access.getCurrentCluster() },
      {
        server: "https://127.0.0.1:6443",
        caData: b64("CA PEM"),
        caFile: undefined,
        tlsServerName: "kubernetes",
        skipTLSVerify: false,
      },
    );
    const options = await apply(path);
    assert.equal(String(options.ca), "CA PEM");
    assert.equal(String(options.cert), "CERT");
    assert.equal(String(options.key), "KEY");
    assert.equal(options.servername, "kubernetes");
    assert.equal(options.rejectUnauthorized, undefined);
    assert.deepEqual(options.headers, { Accept: "application/json" });
  });

  it("reads files relative to the kubeconfig, a token, and insecure-skip-tls-verify", async () => {
    await write("ca.crt", "CA FROM FILE");
    await write("token", "file-token\n");
    const yaml = (user: string) => `
apiVersion: v1
kind: Config
current-context: c
contexts:
- name: c
  context: {cluster: k, user: u}
clusters:
- name: k
  cluster: {server: "https://10.0.0.1", certificate-authority: ca.crt, insecure-skip-tls-verify: true}
users:
- name: u
  user: ${user}
`;
    const tokenFile = await apply(await write("tokenfile.yaml", yaml("{tokenFile: token}")));
    assert.equal(String(tokenFile.ca), "CA FROM FILE");
    assert.equal(tokenFile.rejectUnauthorized, false);
    assert.deepEqual(tokenFile.headers, { Accept: "application/json", Authorization: "Bearer file-token" });
    const token = await apply(await write("token.yaml", yaml("{token: abc}")));
    assert.deepEqual(token.headers, { Accept: "application/json", Authorization: "Bearer abc" });
    const basic = await apply(await write("basic.yaml", yaml("{username: u, password: p}")));
    assert.deepEqual(basic.headers, { Accept: "application/json", Authorization: `Basic ${b64("u:p")}` });
    assert.equal(
      loadKubeConfigFile(join(dir, "token.yaml")).getCurrentCluster()?.caFile,
      join(dir, "ca.crt"),
    );
  });

  it("refuses what it cannot use, naming it", async () => {
    const base = (cluster: object, user: object, current = "c") =>
      JSON.stringify({
        "current-context": current,
        contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
        clusters: [{ name: "k", cluster }],
        users: [{ name: "u", user }],
      });
    const cases: [string, string, RegExp][] = [
      [
        "exec.yaml",
        base({ server: "https://x" }, { exec: { command: "aws" } }),
        /user u: exec credentials are not supported/,
      ],
      [
        "missing.yaml",
        base({ server: "https://x" }, {}, "elsewhere"),
        /context "elsewhere" is not in the kubeconfig/,
      ],
      ["noserver.yaml", base({}, {}), /cluster k has no server/],
      [
        "proxy.yaml",
        base({ server: "https://x", "proxy-url": "http://p" }, {}),
        /proxy-url is not supported/,
      ],
      [
        "halfcert.yaml",
        base({ server: "https://x" }, { "client-certificate-data": b64("C") }),
        /needs its key/,
      ],
      ["empty.yaml", "", /is not a kubeconfig/],
    ];
    for (const [name, text, error] of cases) {
      const path = await write(name, text);
      assert.throws(() => loadKubeConfigFile(path), error, name);
    }
  });

  it("reads the in-cluster ServiceAccount and the Service's address", async () => {
    const sa = join(dir, "sa");
    await rm(sa, { recursive: true, force: true });
    await mkdir(sa);
    await writeFile(join(sa, "token"), "sa-token");
    await writeFile(join(sa, "ca.crt"), "CLUSTER CA");
    const access = loadInClusterConfig(
      { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" },
      sa,
    );
    assert.equal(access.getCurrentCluster()?.server, "https://[fd00::1]:443");
    const options: https.RequestOptions = {};
    await access.applyToHTTPSOptions(options);
    assert.equal(String(options.ca), "CLUSTER CA");
    assert.deepEqual(options.headers, { Authorization: "Bearer sa-token" });
    assert.equal(
      loadInClusterConfig(
        { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" },
        sa,
      ).getCurrentCluster()?.server,
      "https://10.96.0.1:443",
    );
    assert.throws(
      () => loadInClusterConfig({}, sa),
      /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined/,
    );
    assert.throws(
      () =>
        loadInClusterConfig(
          { KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "1" },
          join(dir, "nope"),
        ),
      /ENOENT/,
    );
  });
});
