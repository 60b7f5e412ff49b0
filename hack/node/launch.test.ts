// The launcher gives a command a node of its own and leaves nothing behind. Run from inside a
// node (as npm test is), it makes a second one nested in the first.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { nodeDirVariable } from "./namespaces.ts";

const run = promisify(execFile);
const launcher = join(import.meta.dirname, "launch.ts");

async function launch(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env[nodeDirVariable];
  try {
    const { stdout, stderr } = await run(process.execPath, [launcher, "bash", "-euc", script], {
      env,
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("node launcher", () => {
  it("runs a command in namespaces of its own, with the bridge up and kubelet's sysctls as plain files", async () => {
    const outsideNet = (await stat("/proc/self/ns/net")).ino;
    const panic = await readFile("/proc/sys/kernel/panic", "utf8");
    const res = await launch(
      [
        'echo "dir=$CONCIERGE_NODE_DIR"',
        "stat -L -c 'net=%i' /proc/self/ns/net",
        "ip -o -4 addr show cni0",
        "echo 10 > /proc/sys/kernel/panic",
        "mkdir -p /var/log/containers /etc/kubernetes",
        "touch /var/log/containers/left-behind /etc/kubernetes/left-behind",
        "pwd",
      ].join("\n"),
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /inet 10\.88\.0\.1\/16/);
    assert.doesNotMatch(res.stdout, new RegExp(`^net=${outsideNet}$`, "m"));
    assert.match(
      res.stdout,
      new RegExp(`^${process.cwd()}$`, "m"),
      "the command starts in the caller's folder",
    );
    const dir = /^dir=(.+)$/m.exec(res.stdout)?.[1] ?? "";
    assert.ok(dir.startsWith(join(tmpdir(), "concierge-node-")), dir);
    // Nothing is left: the state directory, the node's cgroups, what it wrote to /var/log and /etc.
    assert.equal(await stat(dir).catch(() => undefined), undefined);
    const id = dir.slice(join(tmpdir(), "concierge-node-").length).toLowerCase();
    for (const hierarchy of await readdir("/sys/fs/cgroup"))
      assert.equal(
        await stat(join("/sys/fs/cgroup", hierarchy, `concierge-node-${id}`)).catch(() => undefined),
        undefined,
      );
    assert.equal(await readFile("/proc/sys/kernel/panic", "utf8"), panic);
    assert.equal(await stat("/var/log/containers/left-behind").catch(() => undefined), undefined);
    assert.equal(await stat("/etc/kubernetes/left-behind").catch(() => undefined), undefined);
  });

  it("passes the command's exit code on and kills what the command left running", async () => {
    const res = await launch("sleep 600 & echo $! ; exit 7");
    assert.equal(res.code, 7);
    const pid = Number(res.stdout.trim());
    const state = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    assert.ok(state === "" || / Z /.test(state), `sleep ${pid} still runs: ${state}`);
  });
});
