import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { parsePrintOutput } from "../../controllers/kubecertagent/agent.ts";

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "../..");

describe("pinniped-concierge-kube-cert-agent", { timeout: 120_000 }, () => {
  let work: string;
  let agent: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "kube-cert-agent-"));
    agent = join(work, "agent");
    await run("go", ["build", "-trimpath", "-buildvcs=false", "-o", agent, "."], {
      cwd: join(root, "cmd/pinniped-concierge-kube-cert-agent"),
      env: { ...process.env, CGO_ENABLED: "0", GOTOOLCHAIN: "local" },
    });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  const key = "-----BEGIN EC PRIVATE KEY-----\nMHc+/=\n-----END EC PRIVATE KEY-----\n";

  it("prints the files named by CERT_PATH and KEY_PATH exactly as upstream's agent does", async () => {
    writeFileSync(join(work, "ca.crt"), cert);
    writeFileSync(join(work, "ca.key"), key);
    const { stdout } = await run(agent, ["print"], {
      env: { CERT_PATH: join(work, "ca.crt"), KEY_PATH: join(work, "ca.key") },
    });
    // Go's encoding/json: compact, in field order, one trailing newline.
    assert.equal(
      stdout,
      `{"tls.crt":"${Buffer.from(cert).toString("base64")}","tls.key":"${Buffer.from(key).toString("base64")}"}\n`,
    );
    assert.deepEqual(parsePrintOutput(stdout, "ns/pod"), { certPEM: cert, keyPEM: key });
  });

  it("prints the files named by its arguments, which win over the environment", async () => {
    const { stdout } = await run(agent, ["print", join(work, "ca.crt"), join(work, "ca.key")], {
      env: { CERT_PATH: "/nonexistent", KEY_PATH: "/nonexistent" },
    });
    assert.deepEqual(parsePrintOutput(stdout, "ns/pod"), { certPEM: cert, keyPEM: key });
  });

  it("fails with upstream's message and nothing on stdout when a file cannot be read", async () => {
    const err = await run(agent, ["print"], {
      env: { CERT_PATH: join(work, "ca.crt"), KEY_PATH: "/nonexistent" },
    }).then(
      () => assert.fail("print succeeded"),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.equal(err.code, 1);
    assert.equal(err.stdout, "");
    assert.match(err.stderr, /^could not read KEY_PATH: open \/nonexistent: no such file or directory$/m);
  });

  it("refuses a missing or unknown subcommand with usage", async () => {
    for (const args of [[], ["wait"], ["print", "only-one"]]) {
      const err = await run(agent, args).then(
        () => assert.fail(`${args.join(" ")} succeeded`),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(err.code, 2);
      assert.match(err.stderr, /usage:/);
    }
  });

  it("sleeps until SIGTERM, then exits 0", async () => {
    const child = spawn(agent, ["sleep"], { stdio: ["ignore", "pipe", "pipe"] });
    await new Promise((resolve) => child.once("spawn", resolve));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    // Still running after a moment: sleep does not return on its own.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(child.exitCode, null);
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  });
});
