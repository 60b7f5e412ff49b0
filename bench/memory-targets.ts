// The Concierge bench/memory.ts measures: a local process from the image's bundle against a
// dedicated control plane, or the image's container in a pod on the real node (`--pod`, run inside
// the node's namespaces by hack/node/launch.ts). Either way the bench gets the process's pid as
// this process sees it (/proc figures), where to reach kube-apiserver, the proxy and /metrics, and
// in a pod the container's cgroup memory, what a memory limit and the kubelet's eviction count.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { get as httpGet } from "node:http";
import { join } from "node:path";
import { parse as parseYAML } from "yaml";
import { freePorts, startControlPlane } from "../hack/controlplane.ts";
import { bundleServer } from "../hack/image/build-concierge.ts";
import { startNodeCluster } from "../hack/node/cluster.ts";
import { conciergeNamespace, conciergeServing, installConcierge } from "../hack/node/install-concierge.ts";
import { installLocal } from "../hack/run-local.ts";
import { createLogger } from "../observability/logger.ts";
import { runKubectl } from "../test/harness/cluster.ts";
import { startTokenReviewWebhook, type TokenReviewWebhook } from "../test/harness/tokenreview-webhook.ts";

export interface CgroupMemory {
  /** memory.current (v2) or memory.usage_in_bytes (v1): what the limit is enforced against. */
  usage: number;
  /** usage − inactive file pages: the kubelet's working set, what `kubectl top` shows and eviction uses. */
  workingSet: number;
}

export interface Target {
  /** What runs, for the report's first line. */
  what: string;
  pid: number;
  readySeconds: number;
  server: string;
  pem: { ca: string; caKey: string; adminCert: string; adminKey: string };
  webhook: TokenReviewWebhook;
  kubectl(args: string[], input?: string): Promise<string>;
  /** Where the impersonation proxy listens, as its externalEndpoint names it. */
  proxyEndpoint: string;
  /** Where /metrics is served (HTTPS, the aggregated API's port). */
  metrics: { host: string; port: number };
  /** In a pod: the container's memory from its cgroup, and its high-water mark since the last reset. */
  cgroup?: { memory(): Promise<CgroupMemory>; peak(): Promise<number>; resetPeak(): Promise<void> };
  logTail(): Promise<string>;
  stop(): Promise<void>;
}

export interface TargetOptions {
  log: (message: string) => void;
  /** The directory for the bundle, config and log of a local process. */
  dir: string;
  root: string;
  env: Record<string, string>;
  /** Local process: the Deployment's literal environment left out. */
  bare: boolean;
  sources: boolean;
  bundle: string | undefined;
  nodeFlags: string[];
  /** Local process: written into this directory on SIGUSR2. */
  snapshotDir: string | undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** The Deployment's container's environment variables with a literal value. */
export async function deploymentEnv(root: string): Promise<Record<string, string>> {
  const deployment = parseYAML(await readFile(join(root, "config", "07-deployment.yaml"), "utf8")) as {
    spec: {
      template: { spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } };
    };
  };
  const container = deployment.spec.template.spec.containers.find((c) => c.name === "pinniped-concierge");
  return Object.fromEntries(
    (container?.env ?? []).filter((e) => typeof e.value === "string").map((e) => [e.name, e.value!]),
  );
}

/** The Concierge as a child process, installed from config/ against a control plane of its own. */
export async function localTarget(o: TargetOptions): Promise<Target> {
  const cp = await startControlPlane({ name: "bench-memory", log: o.log });
  const webhook = await startTokenReviewWebhook();
  let child: ChildProcess | undefined;
  const logPath = join(o.dir, "concierge.log");
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child!.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child!.kill("SIGKILL"), 20_000);
      await gone;
      clearTimeout(timer);
    }
    await webhook.close();
    await cp.stop();
  };
  try {
    const [proxyPort] = (await freePorts(1)) as [number];
    const install = await installLocal({
      kubeconfigPath: cp.kubeconfigPath,
      binDir: cp.binDir,
      log: createLogger({ level: "error" }),
      configOverrides: { impersonationProxyServerPort: proxyPort },
    });
    const configPath = join(o.dir, "pinniped.yaml");
    // JSON is YAML.
    await writeFile(configPath, JSON.stringify(install.settings));
    let entry = join(o.root, "server", "main.ts");
    if (o.bundle !== undefined) entry = o.bundle;
    else if (!o.sources) {
      entry = join(o.dir, "server.mjs");
      await writeFile(entry, await bundleServer(o.root));
    }
    const logFile = createWriteStream(logPath);
    const env = { ...(o.bare ? {} : await deploymentEnv(o.root)), ...o.env };
    child = spawn(
      process.execPath,
      [
        ...o.nodeFlags,
        ...(o.snapshotDir === undefined ? [] : ["--heapsnapshot-signal=SIGUSR2"]),
        entry,
        "--config",
        configPath,
        "--kubeconfig",
        install.kubeconfigPath,
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ...env },
        ...(o.snapshotDir === undefined ? {} : { cwd: o.snapshotDir }),
      },
    );
    child.stdout!.pipe(logFile);
    child.stderr!.pipe(logFile);
    const exited = new Promise<never>((_, reject) =>
      child!.once("exit", (code, signal) =>
        reject(new Error(`the Concierge exited (${code ?? signal}); its log is ${logPath}`)),
      ),
    );
    exited.catch(() => {});
    const startedAt = performance.now();
    await Promise.race([
      exited,
      until("the Concierge to be ready", async () => {
        const status = await new Promise<number>((resolve, reject) =>
          httpGet({ host: "127.0.0.1", port: install.config.healthPort, path: "/readyz" }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          }).on("error", reject),
        );
        return status === 200;
      }),
    ]);
    const what = o.bundle ?? (o.sources ? "server/main.ts (sources)" : "the image's bundle (server.mjs)");
    const envText = Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    const [ca, caKey, adminCert, adminKey] = await Promise.all(
      [cp.pki.ca.cert, cp.pki.ca.key, cp.pki.admin.cert, cp.pki.admin.key].map((f) => readFile(f, "utf8")),
    );
    return {
      what: `a local process from ${what}, node flags: ${o.nodeFlags.join(" ") || "none"}; environment: ${envText || "none"}`,
      pid: child.pid!,
      readySeconds: (performance.now() - startedAt) / 1000,
      server: cp.server,
      pem: { ca: ca!, caKey: caKey!, adminCert: adminCert!, adminKey: adminKey! },
      webhook,
      kubectl: async (args, input) => {
        const res = await runKubectl(
          cp.binDir,
          cp.kubeconfigPath,
          args,
          input === undefined ? {} : { input },
        );
        if (res.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${res.stderr}`);
        return res.stdout;
      },
      proxyEndpoint: `127.0.0.1:${proxyPort}`,
      metrics: { host: "127.0.0.1", port: install.config.aggregatedAPIServerPort },
      logTail: async () =>
        (await readFile(logPath, "utf8").catch(() => "")).split("\n").slice(-30).join("\n"),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The cgroup v1 memory controller's or the v2 unified hierarchy's directory of a container. */
async function containerCgroup(cgroupRoot: string, containerID: string): Promise<string> {
  for (const top of [`/sys/fs/cgroup/memory/${cgroupRoot}`, `/sys/fs/cgroup/${cgroupRoot}`]) {
    const found = await findDir(top, containerID, 4);
    if (found) return found;
  }
  throw new Error(`no memory cgroup of container ${containerID} under ${cgroupRoot}`);
}

async function findDir(dir: string, suffix: string, depth: number): Promise<string | undefined> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    if (e.name.endsWith(suffix)) return join(dir, e.name);
    if (depth > 0) {
      const found = await findDir(join(dir, e.name), suffix, depth - 1);
      if (found) return found;
    }
  }
  return undefined;
}

function cgroupReader(dir: string): NonNullable<Target["cgroup"]> {
  const read = (file: string) => readFile(join(dir, file), "utf8");
  const v1 = read("memory.usage_in_bytes").then(
    () => true,
    () => false,
  );
  const stat = (text: string, field: string) =>
    Number(new RegExp(`^${field} (\\d+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return {
    async memory() {
      const [usage, statText] = (await v1)
        ? await Promise.all([read("memory.usage_in_bytes"), read("memory.stat")])
        : await Promise.all([read("memory.current"), read("memory.stat")]);
      const inactiveFile = stat(statText, (await v1) ? "total_inactive_file" : "inactive_file");
      return { usage: Number(usage), workingSet: Math.max(0, Number(usage) - inactiveFile) };
    },
    async peak() {
      return Number(await read((await v1) ? "memory.max_usage_in_bytes" : "memory.peak"));
    },
    async resetPeak() {
      // v1 resets on any write; v2's memory.peak is per opener on 6.12+ kernels and read-only before.
      if (await v1) await writeFile(join(dir, "memory.max_usage_in_bytes"), "0");
    },
  };
}

/**
 * The Concierge from its image on the real node (`kubectl apply -f crds/ -f config/`), scaled to one
 * replica so that the whole load lands on the pod measured, and the container's environment
 * changed by `env` (`kubectl set env`) first.
 */
export async function podTarget(o: TargetOptions): Promise<Target> {
  const n = await startNodeCluster({ log: o.log });
  let webhook: TokenReviewWebhook | undefined;
  const stop = async () => {
    await webhook?.close();
    await n.stop();
  };
  try {
    await installConcierge(n, { log: o.log });
    const deployment = ["-n", conciergeNamespace, "deployment/pinniped-concierge"];
    const pairs = Object.entries(o.env).map(([k, v]) => `${k}=${v}`);
    if (pairs.length > 0) await n.kubectl(["set", "env", ...deployment, ...pairs]);
    await n.kubectl(["scale", ...deployment, "--replicas=1"]);
    await n.kubectl(["rollout", "status", ...deployment, "--timeout=300s"]);
    type Pod = {
      metadata: { name: string; deletionTimestamp?: string };
      status: {
        podIP?: string;
        containerStatuses?: { name: string; containerID?: string; ready: boolean }[];
      };
    };
    const pods = async () =>
      (
        JSON.parse(
          await n.kubectl([
            "get",
            "pods",
            "-n",
            conciergeNamespace,
            "-l",
            "app=pinniped-concierge",
            "-o",
            "json",
          ]),
        ) as { items: Pod[] }
      ).items;
    // A replica on its way out drains for up to 100 s: not a part of what is measured.
    for (const pod of (await pods()).filter((p) => p.metadata.deletionTimestamp))
      await n.kubectl([
        "delete",
        "pod",
        "-n",
        conciergeNamespace,
        pod.metadata.name,
        "--grace-period=0",
        "--force",
      ]);
    let pod: Pod | undefined;
    await until("one ready Concierge pod", async () => {
      const all = await pods();
      pod = all[0];
      return all.length === 1 && pod?.status.containerStatuses?.every((c) => c.ready) === true;
    });
    await conciergeServing(n);
    const containerID = pod!.status
      .containerStatuses!.find((c) => c.name === "pinniped-concierge")!
      .containerID!.replace(/^[a-z]+:\/\//, "");
    const dir = await containerCgroup(n.node.cgroupRoot, containerID);
    const procs = (await readFile(join(dir, "cgroup.procs"), "utf8")).split("\n").filter(Boolean).map(Number);
    if (procs.length !== 1) throw new Error(`the Concierge's container runs ${procs.length} processes`);
    webhook = await startTokenReviewWebhook({ host: n.node.bridgeIP });
    const pki = "/etc/kubernetes/pki";
    const [ca, caKey, adminCert, adminKey] = await Promise.all(
      ["ca.crt", "ca.key", "admin.crt", "admin.key"].map((f) => readFile(join(pki, f), "utf8")),
    );
    const env = await n.kubectl(["set", "env", ...deployment, "--list"]);
    const podIP = pod!.status.podIP!;
    return {
      what: `the image's container in pod ${pod!.metadata.name} on the real node (${n.kubernetesVersion}); environment: ${env
        .split("\n")
        .filter((l) => /^[A-Z_]+=/.test(l) && !l.startsWith("POD_"))
        .join(" ")}`,
      pid: procs[0]!,
      readySeconds: Number.NaN,
      server: n.server,
      pem: { ca: ca!, caKey: caKey!, adminCert: adminCert!, adminKey: adminKey! },
      webhook,
      kubectl: (args, input) => n.kubectl(args, input),
      proxyEndpoint: `${podIP}:8444`,
      metrics: { host: podIP, port: 10250 },
      cgroup: cgroupReader(dir),
      logTail: async () =>
        n
          .kubectl(["logs", "-n", conciergeNamespace, pod!.metadata.name, "--tail=30"])
          .catch((err: Error) => err.message),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
