// The demo (hack/demo.ts, the README's first command) passes as a test too: it starts its own
// node (nested in the test run's, through the launcher), installs the Concierge and everything
// else it shows, and exits non-zero if a step fails.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { selectedVersion } from "../../hack/k8s/releases.ts";
import { nodeDirVariable } from "../../hack/node/namespaces.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const demo = join(root, "hack", "demo.ts");
const launcher = join(root, "hack", "node", "launch.ts");

it("hack/demo.ts runs to the end on a real node: the Concierge's pods Running, the user logs in with a browser through the exec plugin and RBAC refuses secrets", async () => {
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
    // The environment is inherited (CONCIERGE_K8S_BIN, when set, names prebuilt binaries), but not
    // the test run's node: the demo gets one of its own.
    const env = { ...process.env };
    delete env[nodeDirVariable];
    execFile(
      process.execPath,
      [launcher, process.execPath, demo],
      { timeout: 400_000, maxBuffer: 16 * 1024 * 1024, env },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof err.code === "number" ? err.code : 1) : 0,
          output: stdout + stderr,
        });
      },
    );
  });
  assert.equal(code, 0, output);
  assert.match(
    output,
    new RegExp(
      `^concierge-control-plane\\s+Ready\\s+control-plane\\s+\\S+\\s+v${(await selectedVersion()).replaceAll(".", "\\.")}\\s`,
      "m",
    ),
    "kubectl get nodes",
  );
  assert.equal(
    output.match(/^pinniped-concierge\s+pinniped-concierge-[a-z0-9]+-[a-z0-9]+\s+1\/1\s+Running/gm)?.length,
    2,
  );
  assert.match(output, /^pinniped-concierge\s+pinniped-concierge-kube-cert-agent-\S+\s+1\/1\s+Running/m);
  assert.match(output, /^kube-system\s+kube-controller-manager-concierge-control-plane\s+1\/1\s+Running/m);
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
  assert.match(output, /Log in by visiting this link:\n\n {4}https:\/\/10\.88\.0\.1:\d+\//, "the login link");
  assert.match(output, /headless Chromium\) opens the link/, "the browser plays the user");
});
