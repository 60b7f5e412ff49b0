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

/** Runs `script` through the launcher, with `prefix` (e.g. a taskset) in front of the launcher. */
async function launch(
  script: string,
  prefix: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env[nodeDirVariable];
  const argv = [...prefix, process.execPath, launcher, "bash", "-euc", script];
  try {
    const { stdout, stderr } = await run(argv[0] as string, argv.slice(1), { env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The CPUs in a list such as `0-1,4`. */
function cpuList(list: string): number[] {
  return list.split(",").flatMap((part) => {
    const [from, to = from] = part.split("-").map(Number) as [number, number?];
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
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

  // Since Linux 6.18 namespace ids come from per-CPU batches, so a namespace made later on one CPU
  // can have a smaller id than one made earlier on the other. The kernel refuses to bind a mount
  // namespace whose id is not larger than the caller's to a file (mnt_ns_loop: EINVAL), which
  // broke a node made inside a node (npm test's) whenever the two came from different CPUs in the
  // wrong order. Here the caller is in a mount namespace of its own made on one CPU, and the
  // launcher makes its node on the other, both ways round.
  it("makes a node from inside another mount namespace, whichever CPU each was made on", async () => {
    const status = await readFile("/proc/self/status", "utf8");
    const cpus = cpuList(/^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1] ?? "0").slice(0, 2);
    const pairs = cpus.length === 2 ? [cpus, [...cpus].reverse()] : [[cpus[0], cpus[0]]];
    for (const [outer, inner] of pairs) {
      const res = await launch("ip -o -4 addr show cni0", [
        ...["taskset", "-c", String(outer), "unshare", "--mount", "--propagation", "private", "--"],
        ...["taskset", "-c", String(inner)],
      ]);
      assert.equal(
        res.code,
        0,
        `caller's namespace made on CPU ${outer}, the node's on ${inner}: ${res.stderr}`,
      );
      assert.match(res.stdout, /inet 10\.88\.0\.1\/16/);
    }
  });

  it("passes the command's exit code on and kills what the command left running", async () => {
    const res = await launch("sleep 600 & echo $! ; exit 7");
    assert.equal(res.code, 7);
    const pid = Number(res.stdout.trim());
    const state = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    assert.ok(state === "" || / Z /.test(state), `sleep ${pid} still runs: ${state}`);
  });
});
