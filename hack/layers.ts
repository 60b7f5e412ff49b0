// The layering of the codebase, and a reader that checks every production file's imports against
// it. Run `node hack/layers.ts [root]` for the room graph in numbers; hack/layers.test.ts fails the
// suite on any import that points up a floor.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Production rooms from the ground up. A file may import its own room and any room on a lower
 * floor; rooms that share a floor stay out of each other's way, so every floor can be read
 * without the ones beside it.
 */
export const floors: readonly (readonly string[])[] = [
  ["apis", "kube", "observability"],
  ["certs", "authenticators", "cli"],
  ["webhooks", "impersonator", "issuers"],
  ["controllers"],
  ["server"],
];

/** Tools on top of everything: they may import any room and the test harness. */
export const tools: readonly string[] = ["hack", "bench"];

const floorOf = new Map(floors.flatMap((rooms, floor) => rooms.map((room) => [room, floor] as const)));

/** The top-level folder of a repository path (`controllers/runtime/informer.ts` → `controllers`). */
export function roomOf(path: string): string {
  return path.split("/")[0] ?? path;
}

const isTest = (path: string) => path.endsWith(".test.ts") || roomOf(path) === "test";
/** `testing.ts` modules are fakes and fixtures that live beside the code they stand in for. */
const isTestSupport = (path: string) => path.endsWith("/testing.ts");

/**
 * Why an import from one repository file to another breaks the layering, or undefined when it
 * does not. Tests may import anything; tools anything but each other's tests.
 */
export function checkImport(from: string, to: string): string | undefined {
  if (isTest(from)) return undefined;
  const fromRoom = roomOf(from);
  const toRoom = roomOf(to);
  if (tools.includes(fromRoom)) return undefined;
  const fromFloor = floorOf.get(fromRoom);
  if (fromFloor === undefined) return `${fromRoom}/ is in no layer; add it to hack/layers.ts`;
  if (toRoom === "test") {
    if (isTestSupport(from) && to.startsWith("test/harness/")) return undefined;
    return "production code imports a test";
  }
  if (tools.includes(toRoom)) return `production code imports ${toRoom}/`;
  if (isTestSupport(to) && !isTestSupport(from)) return "production code imports test support";
  if (fromRoom === toRoom) return undefined;
  const toFloor = floorOf.get(toRoom);
  if (toFloor === undefined) return `${toRoom}/ is in no layer; add it to hack/layers.ts`;
  if (toFloor > fromFloor)
    return `${fromRoom}/ (floor ${fromFloor}) imports up to ${toRoom}/ (floor ${toFloor})`;
  if (toFloor === fromFloor) return `${fromRoom}/ and ${toRoom}/ share floor ${fromFloor}`;
  return undefined;
}

// Static imports and re-exports (`import … from`, `export … from`, side-effect `import "x"`) and
// dynamic `import("x")` with a literal specifier. Type-only imports count: they couple the rooms too.
const importPattern =
  /(?:^|[\n;])\s*(?:import|export)\s(?:[^;"'`]*?\sfrom\s*)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The module specifiers a TypeScript source imports. */
export function importsOf(source: string): string[] {
  const withoutComments = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  return [...withoutComments.matchAll(importPattern)].map((m) => (m[1] ?? m[2]) as string);
}

export interface Edge {
  from: string;
  to: string;
}

export interface Violation extends Edge {
  reason: string;
}

const skipped = new Set(["node_modules", ".cache", ".git", "crds"]);

function sourceFiles(root: string, dir = ""): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    if (skipped.has(entry.name) || entry.name.startsWith(".")) continue;
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...sourceFiles(root, path));
    else if (entry.name.endsWith(".ts") && dir !== "") out.push(path);
  }
  return out;
}

/** Every relative import between the repository's TypeScript files, and those that break the layering. */
export function scan(root: string): { files: number; edges: Edge[]; violations: Violation[] } {
  const files = sourceFiles(root);
  const edges: Edge[] = [];
  for (const from of files) {
    for (const specifier of importsOf(readFileSync(join(root, from), "utf8"))) {
      if (!specifier.startsWith(".")) continue;
      edges.push({ from, to: normalize(join(dirname(from), specifier)) });
    }
  }
  const violations = edges.flatMap((e) => {
    const reason = checkImport(e.from, e.to);
    return reason === undefined ? [] : [{ ...e, reason }];
  });
  return { files: files.length, edges, violations };
}

/**
 * The room graph of production code and tools: arrows between rooms (tests left out), the cycles
 * among them, and how many floors they stack into when each room sits just above the highest
 * room it imports.
 */
export function roomGraph(edges: readonly Edge[]): {
  rooms: string[];
  arrows: string[];
  cycles: string[];
  floors: string[][];
} {
  const arrows = new Set<string>();
  const rooms = new Set<string>();
  const below = new Map<string, Set<string>>();
  for (const { from, to } of edges) {
    if (isTest(from) || isTestSupport(from) || isTest(to)) continue;
    const [a, b] = [roomOf(from), roomOf(to)];
    rooms.add(a).add(b);
    if (a === b) continue;
    arrows.add(`${a} → ${b}`);
    below.set(a, (below.get(a) ?? new Set()).add(b));
  }
  const cycles = new Set<string>();
  // A dozen rooms: walking every path is cheap and keeps cycles visible.
  const heightOf = (room: string, path: string[]): number => {
    const seen = path.indexOf(room);
    if (seen >= 0) {
      const ring = path.slice(seen);
      const start = ring.indexOf([...ring].sort()[0] as string);
      const rotated = [...ring.slice(start), ...ring.slice(0, start)];
      cycles.add([...rotated, rotated[0]].join(" → "));
      return -1;
    }
    let h = 0;
    for (const b of below.get(room) ?? []) h = Math.max(h, heightOf(b, [...path, room]) + 1);
    return h;
  };
  const stacked: string[][] = [];
  for (const room of [...rooms].sort()) {
    const h = heightOf(room, []);
    stacked[h] = [...(stacked[h] ?? []), room];
  }
  return {
    rooms: [...rooms].sort(),
    arrows: [...arrows].sort(),
    cycles: [...cycles].sort(),
    floors: stacked.filter(Boolean),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..");
  const { files, edges, violations } = scan(root);
  const graph = roomGraph(edges);
  console.log(`${files} files, ${edges.length} relative imports`);
  console.log(`${graph.rooms.length} rooms, ${graph.arrows.length} arrows between them`);
  console.log(`${graph.cycles.length} cycles between rooms${graph.cycles.map((c) => `\n  ${c}`).join("")}`);
  if (graph.cycles.length === 0) {
    console.log(`${graph.floors.length} floors when each room sits just above the highest room it imports:`);
    graph.floors.forEach((rooms, i) => {
      console.log(`  ${i}: ${rooms.join(", ")}`);
    });
  }
  const upward = new Set(violations.map((v) => `${roomOf(v.from)} → ${roomOf(v.to)}`));
  console.log(`${violations.length} imports break the layering (${upward.size} arrows):`);
  for (const v of violations) console.log(`  ${v.from} → ${v.to}: ${v.reason}`);
  process.exitCode = violations.length === 0 ? 0 : 1;
}
