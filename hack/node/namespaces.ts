// The network and mount namespaces a real node lives in. Everything the cluster touches that
// would otherwise land on the host (addresses, routes, iptables rules, the bridge, /run, /var/lib,
// /var/log, /etc, the sysctls kubelet writes) stays inside them; see
// ../../../shared/reference/real-node.md.
//
// A holder process sits in both namespaces for the node's life and everything enters through
// /proc/<holder>/ns/*. The network namespace is also bound to a file in the state directory, which
// pins it (so a sweep of an abandoned node finds its processes by that file, never by an inode
// number the kernel may have handed to a newer namespace). The mount namespace is not bound to a
// file: the kernel refuses that bind (EINVAL, mnt_ns_loop) unless the caller's mount namespace has
// a smaller id than the target's, and since Linux 6.18 namespace ids come from per-CPU batches, so
// a node made inside another node on the other CPU can get the smaller id. Entering with setns has
// no such rule.
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { pidsInCgroupTree, removeCgroupTree } from "./cgroups.ts";

const run = promisify(execFile);

/** What the processes inside need to know about their node; written to `node.json`. */
export interface NodeNamespaces {
  /** Unique per run: names the cgroup root, so parallel clusters on one machine never share one. */
  id: string;
  /** The state directory: the network namespace file, overlay upper layers, the cluster's own files. */
  dir: string;
  /** The network namespace, bound to a file: it stays while the file is mounted. */
  netns: string;
  /** The holder: in both namespaces from creation to removal; its stdin closing ends it. */
  holderPid: number;
  /** The bridge `cni0`: node IP, kube-apiserver's address, the pods' gateway. */
  bridgeName: string;
  bridgeIP: string;
  podCIDR: string;
  /** kubelet's cgroupRoot (the same path in every cgroup hierarchy). */
  cgroupRoot: string;
  /** The network namespace's inode: the namespace files are not visible inside the namespaces. */
  netnsInode?: number;
}

/** Set for every process the launcher starts inside the namespaces: the state directory. */
export const nodeDirVariable = "CONCIERGE_NODE_DIR";
const statePrefix = "concierge-node-";
const bridgeIP = "10.88.0.1";
const podCIDR = "10.88.0.0/16";
/** Machine-wide sysctls kubelet sets; inside the mount namespace they are ordinary files. */
const kubeletSysctls = [
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
];
/** Folders kubelet, containerd and CNI hard-code; each gets an overlay private to the node. */
const overlaid = ["/run", "/var/lib", "/var/log", "/etc"];

async function sh(script: string, what: string): Promise<void> {
  try {
    await run("bash", ["-euo", "pipefail", "-c", script], { maxBuffer: 4 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${what} failed: ${e.stderr?.trim() || e.message}`);
  }
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The command prefix that runs a program inside the node's namespaces, in folder `cwd`. */
export function enterCommand(ns: NodeNamespaces, cwd: string): string[] {
  return ["nsenter", `--net=${ns.netns}`, `--mount=/proc/${ns.holderPid}/ns/mnt`, `--wd=${cwd}`, "--"];
}

/**
 * Starts the holder in new network and mount namespaces and resolves once it is inside them. It
 * waits for its stdin to close, so it also ends when this process dies.
 */
function startHolder(): Promise<number> {
  const holder = spawn(
    "unshare",
    ["--net", "--mount", "--propagation", "private", "--", "sh", "-c", "echo inside; exec cat >/dev/null"],
    // A session of its own: a Ctrl-C meant for the command does not reach the holder.
    { stdio: ["pipe", "pipe", "pipe"], detached: true },
  );
  let stderr = "";
  holder.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    const failed = () => reject(new Error(`unshare failed: ${stderr.trim() || `exit ${holder.exitCode}`}`));
    holder.once("error", reject);
    holder.once("exit", failed);
    holder.stdout.once("data", () => {
      holder.off("exit", failed);
      holder.stdout.destroy();
      // The launcher's event loop must not wait for the holder; removeNodeNamespaces ends it.
      holder.unref();
      (holder.stdin as unknown as { unref(): void }).unref();
      (holder.stderr as unknown as { unref(): void }).unref();
      resolve(holder.pid as number);
    });
  });
}

/** The node this process runs inside, or undefined when it runs on the host. */
export async function currentNode(): Promise<NodeNamespaces | undefined> {
  const dir = process.env[nodeDirVariable];
  if (!dir) return undefined;
  const ns = JSON.parse(await readFile(join(dir, "node.json"), "utf8")) as NodeNamespaces;
  const mine = await stat("/proc/self/ns/net");
  if (mine.ino !== ns.netnsInode)
    throw new Error(`${nodeDirVariable} names ${dir}, but this process is not inside its network namespace`);
  return ns;
}

export async function createNodeNamespaces(): Promise<NodeNamespaces> {
  if (process.getuid?.() !== 0)
    throw new Error("a real node needs root (namespaces, mounts, cgroups, iptables); run as root");
  await sweepAbandonedNodes();
  const dir = await mkdtemp(join(tmpdir(), statePrefix));
  const id = basename(dir).slice(statePrefix.length).toLowerCase();
  const ns: NodeNamespaces = {
    id,
    dir,
    netns: join(dir, "ns", "net"),
    holderPid: 0,
    bridgeName: "cni0",
    bridgeIP,
    podCIDR,
    cgroupRoot: `/concierge-node-${id}`,
  };
  await writeFile(join(dir, "owner.pid"), `${process.pid}\n`);
  const save = () => writeFile(join(dir, "node.json"), `${JSON.stringify(ns, null, 2)}\n`);
  await save();
  try {
    ns.holderPid = await startHolder();
    await save();
    // The namespace file goes on a private mount so that its bind propagates nowhere.
    await sh(
      [
        `mkdir -p ${q(join(dir, "ns"))}`,
        `mount --bind ${q(join(dir, "ns"))} ${q(join(dir, "ns"))}`,
        `mount --make-private ${q(join(dir, "ns"))}`,
        `touch ${q(ns.netns)}`,
        `mount --bind /proc/${ns.holderPid}/ns/net ${q(ns.netns)}`,
      ].join("\n"),
      "creating the node's namespaces",
    );
    ns.netnsInode = (await stat(ns.netns)).ino;
    await save();
    const inside: string[] = [
      "ip link set lo up",
      `ip link add ${ns.bridgeName} type bridge`,
      `ip addr add ${bridgeIP}/16 dev ${ns.bridgeName}`,
      `ip link set ${ns.bridgeName} up`,
    ];
    for (const folder of overlaid) {
      const layer = join(dir, "overlay", folder.slice(1).replace(/\//g, "-"));
      inside.push(
        `mkdir -p ${q(`${layer}/upper`)} ${q(`${layer}/work`)}`,
        `mount -t overlay overlay -o lowerdir=${folder},upperdir=${q(`${layer}/upper`)},workdir=${q(`${layer}/work`)} ${folder}`,
      );
    }
    // What a cluster leaves in these folders (the host's, if it ever ran one, or the enclosing
    // node's when nodes nest, as the demo's test does) must not leak into this node.
    inside.push(
      "rm -rf /etc/cni/net.d /etc/kubernetes /var/lib/kubelet /var/lib/cni /var/lib/etcd /var/log/pods /var/log/containers",
    );
    for (const sysctl of kubeletSysctls) {
      const file = join(dir, "sysctl", sysctl.replace(/\//g, "."));
      inside.push(
        `mkdir -p ${q(join(dir, "sysctl"))}`,
        `cat /proc/sys/${sysctl} > ${q(file)}`,
        `mount --bind ${q(file)} /proc/sys/${sysctl}`,
      );
    }
    await sh(
      `${enterCommand(ns, "/").map(q).join(" ")} bash -euo pipefail -c ${q(inside.join("\n"))}`,
      "setting up the node's namespaces",
    );
  } catch (err) {
    if (ns.holderPid) kill(ns.holderPid);
    await removeNodeNamespaces(ns);
    throw err;
  }
  return ns;
}

/** Pids of every process whose network namespace is the node's. */
async function processesInside(netns: string): Promise<number[]> {
  const target = await stat(netns).catch(() => undefined);
  if (!target) return [];
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const mine = await stat(`/proc/${pid}/ns/net`).catch(() => undefined);
    if (mine?.ino === target.ino && mine.dev === target.dev) pids.push(pid);
  }
  return pids;
}

async function isZombieOrGone(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return status === "" || /^\d+ \(.*\) Z/.test(status);
}

/**
 * Kills what is left of a node (processes in its network namespace, containers in its cgroups),
 * removes its cgroups, unmounts its namespace files and deletes its state directory. Safe to
 * call twice and on a half-made node.
 */
export async function removeNodeNamespaces(ns: NodeNamespaces): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const pids = [...(await processesInside(ns.netns)), ...(await pidsInCgroupTree(ns.cgroupRoot))];
    const alive: number[] = [];
    for (const pid of pids) if (!(await isZombieOrGone(pid))) alive.push(pid);
    if (alive.length === 0) break;
    for (const pid of alive) kill(pid);
    if (Date.now() > deadline)
      throw new Error(`processes of node ${ns.id} would not die: ${alive.join(", ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await removeCgroupTree(ns.cgroupRoot);
  await sh(
    [
      `for f in ${q(ns.netns)} ${q(join(ns.dir, "ns"))}; do`,
      '  if mountpoint -q "$f"; then umount "$f"; fi',
      "done",
    ].join("\n"),
    "unmounting the node's namespaces",
  );
  await rm(ns.dir, { recursive: true, force: true });
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes nodes whose launcher died without cleaning up (SIGKILL, a crash). */
async function sweepAbandonedNodes(): Promise<void> {
  for (const entry of await readdir(tmpdir()).catch(() => [])) {
    if (!entry.startsWith(statePrefix)) continue;
    const dir = join(tmpdir(), entry);
    const pid = Number.parseInt(await readFile(join(dir, "owner.pid"), "utf8").catch(() => ""), 10);
    if (!Number.isInteger(pid) || isAlive(pid)) continue;
    const ns = JSON.parse(
      await readFile(join(dir, "node.json"), "utf8").catch(() => "null"),
    ) as NodeNamespaces | null;
    if (ns) await removeNodeNamespaces(ns).catch(() => {});
  }
}
