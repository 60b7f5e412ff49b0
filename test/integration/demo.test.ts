// The demo (hack/demo.ts, the README's first command) passes as a test too: it starts its own
// control plane, the Concierge and everything else it shows, and exits non-zero if a step fails.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";

const demo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "hack", "demo.ts");

it("hack/demo.ts runs to the end: the user logs in with a browser through the exec plugin and RBAC refuses secrets", async () => {
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile(
      process.execPath,
      [demo],
      // The environment is inherited: CONCIERGE_K8S_BIN, when set, names prebuilt binaries.
      { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof err.code === "number" ? err.code : 1) : 0,
          output: stdout + stderr,
        });
      },
    );
  });
  assert.equal(code, 0, output);
  assert.match(output, /^Username\s+pinny$/m, "kubectl auth whoami as the user");
  assert.match(
    output,
    /KubeClusterSigningCertificate,ImpersonationProxy\s+FetchedKey,Listening/,
    "both strategies",
  );
  assert.equal(
    output.match(/^Username\s+pinny$/gm)?.length,
    2,
    "kubectl auth whoami directly and through the proxy",
  );
  assert.match(output, /^Username: pinny\nGroups: sea-lions, system:authenticated$/m, "pinniped whoami");
  assert.match(
    output,
    /Error from server \(Forbidden\): secrets is forbidden: User "pinny" cannot list resource "secrets"/,
  );
  assert.match(output, /Log in by visiting this link:\n\n {4}https:\/\/127\.0\.0\.1:\d+\//, "the login link");
  assert.match(output, /headless Chromium\) opens the link/, "the browser plays the user");
});
