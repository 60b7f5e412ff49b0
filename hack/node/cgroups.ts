// kubelet's cgroup root. cgroups are machine-wide (not per namespace), so every node gets a root
// of its own in every hierarchy, made before kubelet starts and removed, deepest first, after.
import { mkdir, readdir, readFile, rmdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

const cgroupMount = "/sys/fs/cgroup";

/** The mounted hierarchies kubelet uses (cgroup v1 controllers, or the v2 unified root). */
async function hierarchies(): Promise<string[]> {
  const mounts = await readFile("/proc/self/mounts", "utf8");
  const dirs = new Set<string>();
  for (const line of mounts.split("\n")) {
    const [, where, type] = line.split(" ");
    if (!where || !(type === "cgroup" || type === "cgroup2")) continue;
    if (!where.startsWith(`${cgroupMount}/`) && where !== cgroupMount) continue;
    dirs.add(where);
  }
  return [...dirs];
}

/** Makes `root` in every hierarchy; a new cpuset cgroup is unusable until it has cpus and mems. */
export async function createCgroupRoot(root: string): Promise<void> {
  for (const hierarchy of await hierarchies()) {
    const dir = join(hierarchy, root);
    await mkdir(dir, { recursive: true });
    for (const file of ["cpuset.cpus", "cpuset.mems"]) {
      const parent = await readFile(join(hierarchy, file), "utf8").catch(() => undefined);
      if (parent !== undefined && (await readFile(join(dir, file), "utf8")).trim() === "")
        await writeFile(join(dir, file), parent);
    }
  }
}

/** Every folder under `dir`, deepest first, `dir` last. */
async function treeDeepestFirst(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory()) out.push(...(await treeDeepestFirst(join(dir, e.name))));
  out.push(dir);
  return out;
}

/** Pids still in `root` or below, in any hierarchy (the containers of a node). */
export async function pidsInCgroupTree(root: string): Promise<number[]> {
  const pids = new Set<number>();
  for (const hierarchy of await hierarchies()) {
    const top = join(hierarchy, root);
    if (!(await stat(top).catch(() => undefined))) continue;
    for (const dir of await treeDeepestFirst(top)) {
      const procs = await readFile(join(dir, "cgroup.procs"), "utf8").catch(() => "");
      for (const p of procs.split("\n")) if (p) pids.add(Number(p));
    }
  }
  return [...pids];
}

/** Removes `root` from every hierarchy; its processes must be gone. */
export async function removeCgroupTree(root: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (const hierarchy of await hierarchies()) {
    for (const dir of await treeDeepestFirst(join(hierarchy, root))) {
      for (;;) {
        try {
          await rmdir(dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") break;
          // EBUSY while the kernel finishes tearing down the last exited task.
          if (code !== "EBUSY" || Date.now() > deadline)
            throw new Error(`removing cgroup ${dir} failed: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  }
}
