// `npm test`: every test file, in two node:test processes side by side inside the launcher's
// namespaces (hack/node/launch.ts), instead of one after the other in one process:
//
//   real node  the end-to-end files on the run's shared real node (they import
//              test/harness/node.ts), and the files that run `npm run build:cli`, which rewrites
//              the .build/cli executables the CLI's end-to-end files run
//   local      everything else: unit tests, the suites on the run's loopback control plane, and
//              the suites that start control planes or nodes of their own
//
// The two share nothing but the machine (and the launcher's network namespace: every address a
// suite listens on is its own). The real node's files take longest, so the run takes about as long
// as they do rather than the sum. Each process starts only what its files share (global-setup.ts
// reads sharedVariable); their lines carry the group's name; the exit code is non-zero when either
// failed.
//
//   node hack/node/launch.ts node hack/test-run.ts [node --test flags ...] <file or glob> ...
import { spawn } from "node:child_process";
import { glob, readFile } from "node:fs/promises";
import { createInterface } from "node:readline";

/** global-setup.ts starts only what this names ("node" or "control-plane"), both when unset. */
export const sharedVariable = "CONCIERGE_TEST_SHARED";

export type Group = "real node" | "local";

/** The group a test file runs in, from its source. */
export function groupOf(source: string): Group {
  const importsSharedNode = /from\s+["'][./]*(?:test\/)?harness\/node\.ts["']/.test(source);
  const buildsCLI = /\bbuildCLI\(/.test(source);
  return importsSharedNode || buildsCLI ? "real node" : "local";
}

/** Runs one group's files; resolves to its exit code. */
function runGroup(group: Group, files: string[], flags: string[]): Promise<number> {
  const began = Date.now();
  const child = spawn(
    process.execPath,
    [
      "--test",
      "--test-isolation=none",
      "--test-global-setup=test/harness/global-setup.ts",
      ...flags,
      ...files,
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        [sharedVariable]: group === "real node" ? "node" : "control-plane",
        // The reporters colour only a terminal; ours is one when the user's is.
        ...(process.stdout.isTTY ? { FORCE_COLOR: "1" } : {}),
      },
    },
  );
  const prefix = `[${group}] `;
  for (const [from, to] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ] as const)
    createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) =>
      to.write(`${prefix}${line}\n`),
    );
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  return new Promise((resolve) => {
    child.once("error", (err) => {
      process.stderr.write(`${prefix}starting node --test failed: ${err.message}\n`);
      resolve(1);
    });
    child.once("close", (code, signal) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      const seconds = ((Date.now() - began) / 1000).toFixed(0);
      process.stderr.write(
        `# ${group}: ${files.length} files ${code === 0 ? "passed" : "FAILED"} after ${seconds} s\n`,
      );
      resolve(code ?? (signal === "SIGINT" ? 130 : 143));
    });
  });
}

async function main(args: string[]): Promise<number> {
  const flags = args.filter((a) => a.startsWith("--"));
  const patterns = args.filter((a) => !a.startsWith("--"));
  const files = new Set<string>();
  for (const pattern of patterns) for await (const file of glob(pattern)) files.add(file);
  const groups = new Map<Group, string[]>([
    ["real node", []],
    ["local", []],
  ]);
  for (const file of [...files].sort()) groups.get(groupOf(await readFile(file, "utf8")))!.push(file);
  const codes = await Promise.all(
    [...groups].filter(([, f]) => f.length > 0).map(([group, f]) => runGroup(group, f, flags)),
  );
  return codes.find((c) => c !== 0) ?? 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
