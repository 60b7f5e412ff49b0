// Where a process's memory goes, read from outside it: the kernel's split of its resident pages
// (smaps_rollup), its threads, glibc's malloc arenas, and a V8 heap snapshot summed by
// constructor. bench/memory.ts prints these for the idle Concierge.
import { readdir, readFile } from "node:fs/promises";

export interface Residency {
  /** Resident pages backed by files: the node binary, shared libraries, ICU data. */
  fileBacked: number;
  /** Anonymous resident pages: V8's heap, malloc, stacks, buffers. */
  anonymous: number;
  /** Proportional set size: shared pages divided among the processes that map them. */
  pss: number;
  threads: number;
  /** glibc malloc arenas besides the main one (each a 64 MiB reservation, rw pages touched on demand). */
  arenas: number;
  /** Resident bytes in those arenas. */
  arenaResident: number;
  /**
   * Resident bytes of the brk heap: glibc's main arena, where the main thread's allocations
   * (OpenSSL, nghttp2, the HTTP parser) live. Only its top can be given back, so a load that
   * fragments it leaves pages resident.
   */
  mainArenaResident: number;
}

/** From /proc/<pid>: smaps_rollup, status and smaps (Linux). */
export async function residency(pid: number): Promise<Residency> {
  const read = (file: string) => readFile(`/proc/${pid}/${file}`, "utf8");
  const [rollup, status, smaps] = await Promise.all([read("smaps_rollup"), read("status"), read("smaps")]);
  const kib = (text: string, field: string) =>
    1024 * Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  // An arena is a 64 MiB-aligned heap: an anonymous rw mapping followed by its ---p remainder,
  // together 64 MiB. Node's own 64 MiB reservations (V8's cages) are one mapping, not a pair.
  const mappings: { start: number; end: number; perms: string; path: string; rss: number }[] = [];
  for (const block of smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+[ \t]*(.*)$/m.exec(block);
    if (!header) continue;
    mappings.push({
      start: Number.parseInt(header[1]!, 16),
      end: Number.parseInt(header[2]!, 16),
      perms: header[3]!,
      path: header[4]!.trim(),
      rss: kib(block, "Rss"),
    });
  }
  const arenaSize = 64 * 2 ** 20;
  let arenas = 0;
  let arenaResident = 0;
  for (const [i, m] of mappings.entries()) {
    const next = mappings[i + 1];
    if (m.path !== "" || !m.perms.startsWith("rw") || m.start % arenaSize !== 0) continue;
    if (next && next.start === m.end && next.perms.startsWith("---") && next.end - m.start === arenaSize) {
      arenas++;
      arenaResident += m.rss;
    }
  }
  return {
    fileBacked: kib(rollup, "Rss") - kib(rollup, "Anonymous"),
    anonymous: kib(rollup, "Anonymous"),
    pss: kib(rollup, "Pss"),
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN),
    arenas,
    arenaResident,
    mainArenaResident: mappings.filter((m) => m.path === "[heap]").reduce((sum, m) => sum + m.rss, 0),
  };
}

/** Names of the process's threads (libuv pool, V8 workers, ...) with their counts. */
export async function threadNames(pid: number): Promise<Map<string, number>> {
  const names = new Map<string, number>();
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const name = (await readFile(`/proc/${pid}/task/${tid}/comm`, "utf8").catch(() => "?")).trim();
    names.set(name, (names.get(name) ?? 0) + 1);
  }
  return names;
}

export interface HeapGroup {
  name: string;
  count: number;
  selfSize: number;
}

/**
 * A V8 heap snapshot's objects summed by constructor (objects) or by kind (strings, code, arrays,
 * closures, V8's hidden objects): self sizes, the largest first.
 */
export function summarizeHeapSnapshot(text: string): HeapGroup[] {
  const snapshot = JSON.parse(text) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const groups = new Map<string, HeapGroup>();
  const { nodes, strings } = snapshot;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]!]!;
    const name = type === "object" || type === "native" ? strings[nodes[i + nameAt]!]! : `(${type})`;
    const group = groups.get(name) ?? { name, count: 0, selfSize: 0 };
    group.count++;
    group.selfSize += nodes[i + sizeAt]!;
    groups.set(name, group);
  }
  return [...groups.values()].sort((a, b) => b.selfSize - a.selfSize);
}
