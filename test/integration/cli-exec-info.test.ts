// `pinniped whoami` runs the kubeconfig's exec plugin as kubectl does: a plugin that records its
// KUBERNETES_EXEC_INFO sees the same text from real kubectl and from the CLI's runner, for a
// cluster entry with every field client-go passes on (so `pinniped login oidc`, which keys its
// credential cache by that cluster info, finds kubectl's credential).
import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import {
  execCluster,
  execInfoJSON,
  findEntry,
  type RawCluster,
  runExecPlugin,
} from "../../cli/exec-plugin.ts";
import { newCA } from "../../hack/pki.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const address = server.address();
  await new Promise((done) => server.close(done));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("the exec plugin's KUBERNETES_EXEC_INFO", () => {
  let c: TestCluster;
  let dir: string;

  before(async () => {
    c = await testCluster();
    dir = await mkdtemp(join(tmpdir(), "cli-exec-info-"));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("is the same from pinniped's runner as from kubectl, cluster info and exec config extension included", async () => {
    const ca = await newCA(dir, "ca", "exec info test CA");
    const recorded = join(dir, "info.json");
    const plugin = join(dir, "plugin.sh");
    await writeFile(
      plugin,
      `#!/bin/sh\nprintf '%s' "$KUBERNETES_EXEC_INFO" > "$RECORD_TO"\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}}'\n`,
    );
    await chmod(plugin, 0o700);
    const port = await closedPort();
    const cluster: RawCluster = {
      server: `https://127.0.0.1:${port}/`,
      "tls-server-name": "concierge.example.com",
      "certificate-authority": ca.cert,
      "disable-compression": true,
      extensions: [{ name: "client.authentication.k8s.io/exec", extension: { audience: "x", count: 1 } }],
    };
    const exec = {
      apiVersion: "client.authentication.k8s.io/v1",
      command: plugin,
      args: ["login", "oidc"],
      env: [{ name: "RECORD_TO", value: recorded }],
      provideClusterInfo: true,
      interactiveMode: "IfAvailable",
    };
    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(
      kubeconfig,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster }],
        users: [{ name: "u", user: { exec } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    // The request itself fails (nothing listens); the plugin has run by then.
    await c.kubectl(["--cache-dir", join(dir, "cache"), "get", "--raw", "/version"], { kubeconfig });
    const fromKubectl = await readFile(recorded, "utf8");
    await rm(recorded);

    const entry = findEntry<RawCluster>([kubeconfig], "clusters", "c");
    assert.ok(entry);
    const execInfo = execInfoJSON(exec, execCluster(entry.entry, entry.dir), false);
    const credential = await runExecPlugin(exec, { execInfo, interactive: false, dir, env: process.env });
    assert.deepEqual(credential, { token: "t" });
    assert.equal(await readFile(recorded, "utf8"), fromKubectl);
    assert.match(fromKubectl, /"config":\{"audience":"x","count":1\}/);
  });

  it("has no cluster without provideClusterInfo, and `config: null` without the extension", () => {
    const exec = { apiVersion: "client.authentication.k8s.io/v1", command: "x" };
    assert.equal(
      execInfoJSON(exec, { server: "https://a" }, false),
      '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}\n',
    );
    assert.deepEqual(execCluster({ server: "https://a" }, dir), { server: "https://a", config: null });
  });
});
