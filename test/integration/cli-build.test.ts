// The built CLI (npm run build:cli) without a cluster: the linux-x64 executable, the npm bundle
// (on this Node 24 and on Node 22, the oldest it supports) and the linux-arm64 executable (run under qemu-user, with Debian's arm64 C libraries) each log
// in through a stand-in TokenCredentialRequest API, serve the next call from the cache, and load
// their on-demand bundle for the commands that need it.
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildCLI, oldestNode } from "../harness/pinniped-cli.ts";
import { runCommand } from "../harness/process.ts";
import { startHTTPSServer, type TestHTTPSServer } from "../harness/tls.ts";

describe("the built pinniped CLI: executables for linux-x64 and linux-arm64, and the npm bundle", () => {
  let dir: string;
  let concierge: TestHTTPSServer;
  let exchanges = 0;
  let cli: Awaited<ReturnType<typeof buildCLI>>;
  let node22: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cli-build-"));
    concierge = await startHTTPSServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        exchanges++;
        const ok = (JSON.parse(body) as { spec: { token: string } }).spec.token === "good-token";
        res.writeHead(201, { "Content-Type": "application/json" });
        res.end(
          JSON.stringify({
            apiVersion: "login.concierge.pinniped.dev/v1alpha1",
            kind: "TokenCredentialRequest",
            status: ok
              ? {
                  credential: {
                    expirationTimestamp: new Date(Date.now() + 10 * 60_000).toISOString(),
                    clientCertificateData: "cert",
                    clientKeyData: "key",
                  },
                }
              : { message: "authentication failed" },
          }),
        );
      });
    });
    cli = await buildCLI();
    node22 = await oldestNode();
  });
  after(async () => {
    await concierge?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const variants = () => [
    { name: "linux-x64 executable", argv: [cli.executable] },
    { name: "npm bundle on this Node", argv: [process.execPath, join(cli.executable, "..", "pinniped.cjs")] },
    { name: "npm bundle on Node 22", argv: [node22, join(cli.executable, "..", "pinniped.cjs")] },
    {
      name: "linux-arm64 executable under qemu-user",
      argv: ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", cli.arm64Executable],
    },
  ];

  it("reports what it built, with sizes", async () => {
    for (const file of [cli.executable, cli.arm64Executable, cli.npmPackage]) {
      assert.ok((await stat(file)).size > 0, file);
      assert.match(cli.report, new RegExp(`${file.replace(/[.]/g, "\\.")}  \\d+\\.\\d MiB`));
    }
  });

  for (const [i, variant] of ["x64", "npm", "npm-node22", "arm64"].entries()) {
    it(`${variant}: login static exchanges once, then serves from its cache; bad input gets one line and exit 1`, async () => {
      const { name, argv } = variants()[i]!;
      const [command, ...pre] = argv as [string, ...string[]];
      const cache = join(dir, `${variant}-credentials.yaml`);
      const login = (token: string) =>
        runCommand(
          command,
          [
            ...pre,
            "login",
            "static",
            "--enable-concierge",
            `--concierge-endpoint=${concierge.base}`,
            `--concierge-ca-bundle-data=${concierge.caBase64}`,
            "--concierge-authenticator-type=webhook",
            "--concierge-authenticator-name=corp",
            `--token=${token}`,
            `--credential-cache=${cache}`,
          ],
          { timeoutMs: 120_000 },
        );
      const before = exchanges;
      for (let n = 0; n < 2; n++) {
        const res = await login("good-token");
        assert.equal(res.code, 0, `${name}: ${res.stderr}`);
        assert.equal(JSON.parse(res.stdout).status.clientCertificateData, "cert");
      }
      assert.equal(exchanges, before + 1, `${name}: the second login did not use the cache`);
      const bad = await login("bad-token");
      assert.equal(bad.code, 1);
      assert.equal(
        bad.stderr,
        "Error: could not complete Concierge credential exchange: login failed: authentication failed\n",
      );
      const flag = await runCommand(command, [...pre, "whoami", "--bogus"], { timeoutMs: 120_000 });
      assert.deepEqual([flag.code, flag.stderr], [1, "Error: unknown flag: --bogus\n"]);
      // whoami and completion live in the on-demand bundle.
      const help = await runCommand(command, [...pre, "whoami", "--help"], { timeoutMs: 120_000 });
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /--timeout duration/);
      const version = await runCommand(command, [...pre, "version", "-o", "json"], { timeoutMs: 120_000 });
      const info = JSON.parse(version.stdout);
      assert.equal(info.platform, variant === "arm64" ? "linux/arm64" : "linux/amd64");
      if (variant === "npm-node22") assert.match(info.nodeVersion, /^v22\./);
      assert.match(info.gitCommit, /^[0-9a-f]{40}$/);
    });
  }
});
