// The pinniped CLI as kubectl runs it: whole processes, wall time and peak RSS, medians of many
// runs, against upstream's Go CLI in the same run. Printed, never asserted (the machine is shared).
//
//   npm run bench:cli     (builds .build/cli first: npm run build:cli -- --only=npm,x64)
//
// The cached path: `login static` with a certificate in its credential cache, which is what
// every kubectl command but the first costs. A local HTTPS server plays the Concierge's
// TokenCredentialRequest API for the one exchange that fills each CLI's cache.
import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CredentialCache } from "../cli/cache.ts";
import { oidcCredentialKey } from "../cli/login-oidc.ts";
import { startHTTPSServer } from "../test/harness/tls.ts";
import { percentile } from "./lib.ts";
import { quickOr } from "./quick.ts";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(repoRoot, ".build", "cli");
const runs = Number(process.env.BENCH_CLI_RUNS ?? quickOr(15, 3));

function upstreamCLI(): string {
  const path = join(repoRoot, ".cache", "upstream", "pinniped");
  if (!existsSync(path)) {
    execFileSync("mkdir", ["-p", dirname(path)]);
    execFileSync("bash", [
      "-c",
      `xz -dc "$1" > "$2" && chmod +x "$2"`,
      "_",
      join(repoRoot, "..", "shared", "upstream", "pinniped.xz"),
      path,
    ]);
  }
  return path;
}

interface Sample {
  wallMs: number;
  /** User plus system CPU time: steadier than wall time on a shared machine. */
  cpuMs: number;
  rssMiB: number;
}

/**
 * One run under /usr/bin/time, which reports the child's peak RSS. Asynchronous: the fake
 * Concierge answers from this process.
 */
function runOnce(argv: string[]): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    execFile("/usr/bin/time", ["-f", "%M %U %S", ...argv], (err, _stdout, stderr) => {
      const wallMs = performance.now() - started;
      if (err) return reject(new Error(`${argv[0]} ${argv[1] ?? ""} failed: ${stderr}`));
      const [kb, user, sys] = stderr.trim().split("\n").at(-1)!.split(" ").map(Number);
      resolve({ wallMs, cpuMs: (user! + sys!) * 1000, rssMiB: kb! / 1024 });
    });
  });
}

async function measure(argv: string[]) {
  await runOnce(argv);
  await runOnce(argv);
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) samples.push(await runOnce(argv));
  const med = (xs: number[]) =>
    percentile(
      [...xs].sort((a, b) => a - b),
      50,
    );
  return {
    wallMs: med(samples.map((s) => s.wallMs)),
    cpuMs: med(samples.map((s) => s.cpuMs)),
    rssMiB: med(samples.map((s) => s.rssMiB)),
  };
}

async function main() {
  if (!existsSync("/usr/bin/time")) throw new Error("bench:cli needs /usr/bin/time (Debian package time)");
  execFileSync(process.execPath, [join(repoRoot, "hack", "build-cli.ts"), "--only=npm,x64"], {
    stdio: "inherit",
  });
  const upstream = upstreamCLI();
  const dir = await mkdtemp(join(tmpdir(), "bench-cli-"));
  const expires = new Date(Date.now() + 60 * 60_000).toISOString();
  const credential = {
    expirationTimestamp: expires,
    clientCertificateData: "-----BEGIN CERTIFICATE-----\nbench\n-----END CERTIFICATE-----\n",
    clientKeyData: "-----BEGIN PRIVATE KEY-----\nbench\n-----END PRIVATE KEY-----\n",
  };
  const concierge = await startHTTPSServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(201, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({
          apiVersion: "login.concierge.pinniped.dev/v1alpha1",
          kind: "TokenCredentialRequest",
          status: { credential },
        }),
      );
    });
  });
  try {
    const loginArgs = (cache: string) => [
      "login",
      "static",
      "--enable-concierge",
      `--concierge-endpoint=${concierge.base}`,
      `--concierge-ca-bundle-data=${concierge.caBase64}`,
      "--concierge-authenticator-type=webhook",
      "--concierge-authenticator-name=bench",
      "--token=bench-token",
      `--credential-cache=${cache}`,
    ];
    const node24 = process.execPath;
    const variants: [string, string[]][] = [
      ["upstream Go CLI", [upstream]],
      ["ours, single executable (linux-x64)", [join(dist, "pinniped-linux-x64")]],
      ["ours, npm package (Node 24, bundle)", [node24, join(dist, "pinniped.cjs")]],
      ["ours, clone's bin/pinniped (type stripping)", [join(repoRoot, "bin", "pinniped")]],
    ];
    const rows: [string, Sample][] = [];
    rows.push(["node -e 0 (Node 24, the floor)", await measure([node24, "-e", "0"])]);
    let i = 0;
    for (const [name, cmd] of variants) {
      const args = loginArgs(join(dir, `credentials-${i++}.yaml`));
      await runOnce([...cmd, ...args]); // fills the cache: one exchange
      rows.push([`login static, cached: ${name}`, await measure([...cmd, ...args])]);
    }
    // login oidc with a cached cluster credential: the issuer is never asked.
    const oidcCache = join(dir, "credentials-oidc.yaml");
    const oidcArgs = [
      "login",
      "oidc",
      "--issuer=https://127.0.0.1:1/unused",
      "--enable-concierge",
      `--concierge-endpoint=${concierge.base}`,
      `--concierge-ca-bundle-data=${concierge.caBase64}`,
      "--concierge-authenticator-type=jwt",
      "--concierge-authenticator-name=bench",
      `--credential-cache=${oidcCache}`,
    ];
    await new CredentialCache(oidcCache).getOrCreate(
      oidcCredentialKey(oidcArgs, { interactive: false }),
      async () => credential,
    );
    rows.push([
      "login oidc, cached: ours, single executable",
      await measure([join(dist, "pinniped-linux-x64"), ...oidcArgs]),
    ]);
    rows.push(["--help: upstream Go CLI", await measure([upstream, "--help"])]);
    rows.push([
      "--help: ours, single executable",
      await measure([join(dist, "pinniped-linux-x64"), "--help"]),
    ]);
    rows.push([
      "--help: ours, npm package (Node 24)",
      await measure([node24, join(dist, "pinniped.cjs"), "--help"]),
    ]);

    const up = rows.find(([n]) => n === "login static, cached: upstream Go CLI")![1];
    const upHelp = rows.find(([n]) => n === "--help: upstream Go CLI")![1];
    console.log(
      `\npinniped CLI, whole process, medians of ${runs} runs (goal: cached ≤ 80 ms and ≤ 70 MiB; --help ≤ 100 ms)\n`,
    );
    const cols = ["wall ms", "× Go", "CPU ms", "× Go", "RSS MiB", "× Go"];
    console.log(`${"".padEnd(66)} ${cols.map((c) => c.padStart(8)).join(" ")}`);
    for (const [name, m] of rows) {
      const ref = name.startsWith("--help") ? upHelp : up;
      const cells = [
        m.wallMs.toFixed(1),
        (m.wallMs / ref.wallMs).toFixed(2),
        m.cpuMs.toFixed(0),
        (m.cpuMs / Math.max(ref.cpuMs, 10)).toFixed(2),
        m.rssMiB.toFixed(1),
        (m.rssMiB / ref.rssMiB).toFixed(2),
      ];
      console.log(`${name.padEnd(66)} ${cells.map((c) => c.padStart(8)).join(" ")}`);
    }
    console.log(
      "(CPU time has the kernel's 10 ms accounting resolution; a ratio's divisor is at least 10 ms)",
    );
  } finally {
    await concierge.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
