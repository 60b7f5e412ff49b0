// `npm run test:matrix [-- 1.30 1.37 ...]`: for each Kubernetes minor in hack/k8s/versions (all of
// them unless some are named), builds its binaries (hack/build-k8s.sh, cached) and runs the smoke
// (smoke.test.ts) on a real node of its own, then prints a check × minor table with the first
// error line of each failure. Exits non-zero when any check failed on any minor.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { listedVersions, pickVersions } from "../../hack/k8s/releases.ts";
import type { CheckResult } from "./reporter.ts";

const repoRoot = resolve(import.meta.dirname, "..", "..");

interface MinorResult {
  version: string;
  build: { ok: boolean; seconds: number; bin?: string; error?: string };
  checks: CheckResult[];
}

/** Runs a command with the terminal as its stderr; resolves to its exit code and stdout. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, stdout: "pipe" | "inherit") {
  return new Promise<{ code: number; stdout: string }>((done) => {
    const child = spawn(command, args, { cwd: repoRoot, env, stdio: ["ignore", stdout, "inherit"] });
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c;
    });
    child.on("error", () => done({ code: 1, stdout: out }));
    child.on("close", (code) => done({ code: code ?? 1, stdout: out }));
  });
}

async function runMinor(version: string, resultsDir: string): Promise<MinorResult> {
  // A CONCIERGE_K8S_BIN from the caller would make every minor run the same binaries.
  const { CONCIERGE_K8S_BIN: _ignored, ...env } = process.env;
  process.stdout.write(`\n# Kubernetes ${version}: building (cached after the first time)\n`);
  const began = Date.now();
  const built = await run(
    join(repoRoot, "hack", "build-k8s.sh"),
    [],
    { ...env, CONCIERGE_K8S_VERSION: version },
    "pipe",
  );
  const seconds = Math.round((Date.now() - began) / 1000);
  const bin = built.stdout.trim().split("\n").at(-1);
  if (built.code !== 0 || !bin)
    return {
      version,
      build: { ok: false, seconds, error: `hack/build-k8s.sh exited ${built.code}` },
      checks: [],
    };
  process.stdout.write(
    `# Kubernetes ${version}: binaries in ${bin} after ${seconds}s; the smoke on a real node\n`,
  );
  const results = join(resultsDir, `${version}.jsonl`);
  const smoke = await run(
    process.execPath,
    [
      join(repoRoot, "hack", "node", "launch.ts"),
      process.execPath,
      "--test",
      "--test-isolation=none",
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      `--test-reporter=${join(import.meta.dirname, "reporter.ts")}`,
      `--test-reporter-destination=${results}`,
      join(import.meta.dirname, "smoke.test.ts"),
    ],
    { ...env, CONCIERGE_K8S_BIN: bin },
    "inherit",
  );
  const lines = await readFile(results, "utf8").catch(() => "");
  const checks = lines
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as CheckResult);
  if (checks.length === 0) checks.push({ name: "smoke", ok: false, error: "the smoke reported no check" });
  // A run that dies after some checks passed (killed, a failing hook, cleanup that throws) leaves
  // the others unreported; with one minor the table cannot tell they are missing, so the exit code
  // counts as a check of its own.
  else if (smoke.code !== 0 && checks.every((c) => c.ok))
    checks.push({ name: "smoke", ok: false, error: `the smoke's test run exited ${smoke.code}` });
  return { version, build: { ok: true, seconds, bin }, checks };
}

/** The table: one row per check, one column per minor; then each failure's first error line. */
export function table(results: MinorResult[]): string {
  const minors = results.map((r) => r.version.split(".").slice(0, 2).join("."));
  const names = [...new Set(results.flatMap((r) => r.checks.map((c) => c.name)))];
  const rows: string[][] = [
    ["check", ...minors],
    ["build (s)", ...results.map((r) => (r.build.ok ? String(r.build.seconds) : "FAIL"))],
    ...names.map((name) => [
      name,
      ...results.map((r) => {
        const c = r.checks.find((x) => x.name === name);
        return !r.build.ok ? "-" : c === undefined ? "absent" : c.ok ? "pass" : "FAIL";
      }),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ")} |`;
  const out = [
    line(rows[0]!),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...rows.slice(1).map(line),
  ];
  const failures = results.flatMap((r) => [
    ...(r.build.ok ? [] : [`${r.version} build: ${r.build.error}`]),
    ...r.checks.filter((c) => !c.ok).map((c) => `${r.version} ${c.name}: ${c.error}`),
    ...(r.build.ok
      ? names.filter((n) => !r.checks.some((c) => c.name === n)).map((n) => `${r.version} ${n}: not reported`)
      : []),
  ]);
  return [...out, ...(failures.length ? ["", "failures (first error line):", ...failures] : [])].join("\n");
}

/** Every check on every minor, counted: a failed build counts as one failure. */
export function counts(results: MinorResult[]): { passed: number; failed: number } {
  const names = new Set(results.flatMap((r) => r.checks.map((c) => c.name)));
  let passed = 0;
  let failed = 0;
  for (const r of results) {
    if (!r.build.ok) {
      failed += 1;
      continue;
    }
    const ok = r.checks.filter((c) => c.ok).length;
    passed += ok;
    failed += names.size - ok;
  }
  return { passed, failed };
}

async function main(): Promise<void> {
  const versions = pickVersions(await listedVersions(), process.argv.slice(2));
  const resultsDir = await mkdtemp(join(tmpdir(), "concierge-matrix-"));
  const results: MinorResult[] = [];
  try {
    for (const version of versions) results.push(await runMinor(version, resultsDir));
  } finally {
    await rm(resultsDir, { recursive: true, force: true });
  }
  const { passed, failed } = counts(results);
  process.stdout.write(`\n${table(results)}\n\nmatrix: ${passed} passed, ${failed} failed\n`);
  process.exitCode = failed === 0 ? 0 : 1;
}

if (import.meta.main) await main();
