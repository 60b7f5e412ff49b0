// A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)
// on loopback, for tests, the demo and benchmarks. See ../../shared/DESIGN.md.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { type AuthenticationConfigBody, apiServerMinor, writeAuthenticationConfig } from "./authnconfig.ts";
import { type CertFiles, type KeyType, newCA, newCert, newServiceAccountKeyPair } from "./pki.ts";
import { SupervisedProcess, startBoundMs, waitUntil } from "./supervisor.ts";

const execFileAsync = promisify(execFile);
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export const serviceClusterIPRange = "10.96.0.0/12";
export const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local";

/**
 * kube-apiserver stops listening at once on SIGTERM but then lingers for as long as
 * clients hold watches open; nothing in a throwaway cluster is worth waiting for.
 */
const apiserverStopGraceMs = 3000;

export interface ControlPlaneOptions {
  /** Shows in log lines and the state directory name. */
  name?: string;
  /** A fixed state directory (kept after stop); default: a fresh temporary one, removed on stop. */
  dir?: string;
  /** Key type of the cluster CA, which is also the cluster signing CA (k3s uses EC). */
  caKeyType?: KeyType;
  /** More kube-apiserver flags, e.g. `--anonymous-auth=false` (later flags win). */
  apiServerArgs?: readonly string[];
  /**
   * Starts kube-apiserver with `--authentication-config` holding these JWT authenticators (the
   * apiVersion follows the binaries' version); `setAuthenticationConfig` changes them later.
   */
  authenticationConfig?: AuthenticationConfigBody;
  /** More kube-controller-manager flags, e.g. `--controllers=*,-csrsigning` (later flags win). */
  controllerManagerArgs?: readonly string[];
  log?: (message: string) => void;
}

export interface ControlPlanePKI {
  /** Cluster CA: signs serving and client certs, and is kube-controller-manager's signing CA. */
  ca: CertFiles;
  frontProxyCA: CertFiles;
  frontProxyClient: CertFiles;
  admin: CertFiles;
  serviceAccount: { publicKey: string; privateKey: string };
}

export interface ControlPlane {
  readonly name: string;
  readonly dir: string;
  readonly binDir: string;
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  readonly kubeconfigPath: string;
  readonly pki: ControlPlanePKI;
  /** Logs of etcd, kube-apiserver and kube-controller-manager. */
  readonly logFiles: Record<"etcd" | "kube-apiserver" | "kube-controller-manager", string>;
  kubeConfig(): KubeConfig;
  /** Stops only kube-apiserver: etcd keeps the data, so a later start sees the same objects. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port and waits until it is ready. */
  startApiServer(): Promise<void>;
  /**
   * Rewrites the `--authentication-config` file (only for a control plane started with
   * `authenticationConfig`); kube-apiserver reloads it by itself, within about a minute.
   */
  setAuthenticationConfig(body: AuthenticationConfigBody): Promise<void>;
  stop(): Promise<void>;
}

/** Builds the pinned binaries on first use (cached) and returns their directory. */
export async function kubernetesBinDir(): Promise<string> {
  if (process.env.CONCIERGE_K8S_BIN) return process.env.CONCIERGE_K8S_BIN;
  const { stdout } = await execFileAsync(join(repoRoot, "hack", "build-k8s.sh"), {
    maxBuffer: 16 * 1024 * 1024,
  }).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`building the Kubernetes binaries failed:\n${err.stderr ?? err.message}`);
  });
  const dir = stdout.trim().split("\n").at(-1);
  if (!dir) throw new Error("hack/build-k8s.sh printed no bin directory");
  return dir;
}

/** Distinct free loopback ports: all are held open until every one is chosen. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((ok, fail) => {
            server.once("error", fail);
            server.listen(0, "127.0.0.1", () => {
              const address = server.address();
              if (address === null || typeof address === "string")
                fail(new Error("could not allocate a port"));
              else ok(address.port);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise((ok) => server.close(ok))));
  }
}

async function makePKI(dir: string, caKeyType: KeyType): Promise<ControlPlanePKI & Record<string, unknown>> {
  const ca = await newCA(dir, "ca", "kubernetes", caKeyType);
  const frontProxyCA = await newCA(dir, "front-proxy-ca", "front-proxy-ca");
  const [apiserver, kubeletClient, admin, controllerManager, frontProxyClient, serviceAccount] =
    await Promise.all([
      newCert(dir, ca, {
        name: "apiserver",
        cn: "kube-apiserver",
        usage: "server",
        dnsNames: [
          "localhost",
          "kubernetes",
          "kubernetes.default",
          "kubernetes.default.svc",
          "kubernetes.default.svc.cluster.local",
        ],
        ips: ["127.0.0.1", "10.96.0.1"],
      }),
      newCert(dir, ca, {
        name: "apiserver-kubelet-client",
        cn: "kube-apiserver-kubelet-client",
        organizations: ["kubeadm:cluster-admins"],
        usage: "client",
      }),
      newCert(dir, ca, {
        name: "admin",
        cn: "kubernetes-admin",
        organizations: ["system:masters"],
        usage: "client",
      }),
      newCert(dir, ca, { name: "controller-manager", cn: "system:kube-controller-manager", usage: "client" }),
      newCert(dir, frontProxyCA, { name: "front-proxy-client", cn: "front-proxy-client", usage: "client" }),
      newServiceAccountKeyPair(dir),
    ]);
  return {
    ca,
    frontProxyCA,
    frontProxyClient,
    admin,
    serviceAccount,
    apiserver,
    kubeletClient,
    controllerManager,
  };
}

/** What every kube-apiserver here is started with, loopback control plane and real node alike. */
export interface ApiServerInputs {
  etcdURL: string;
  /** Where it listens and what it advertises: 127.0.0.1, or the node's bridge address. */
  address: string;
  port: number;
  ca: CertFiles;
  serving: CertFiles;
  kubeletClient: CertFiles;
  serviceAccount: { publicKey: string; privateKey: string };
  frontProxyCA: CertFiles;
  frontProxyClient: CertFiles;
}

/**
 * kube-apiserver's flags shared by the loopback control plane and the real node (hack/node/),
 * so both clusters authenticate, authorize and aggregate the same way; each adds its own after.
 */
export function apiServerFlags(i: ApiServerInputs): string[] {
  return [
    `--etcd-servers=${i.etcdURL}`,
    `--bind-address=${i.address}`,
    `--advertise-address=${i.address}`,
    `--secure-port=${i.port}`,
    `--tls-cert-file=${i.serving.cert}`,
    `--tls-private-key-file=${i.serving.key}`,
    `--client-ca-file=${i.ca.cert}`,
    `--kubelet-client-certificate=${i.kubeletClient.cert}`,
    `--kubelet-client-key=${i.kubeletClient.key}`,
    `--service-account-issuer=${serviceAccountIssuer}`,
    `--service-account-key-file=${i.serviceAccount.publicKey}`,
    `--service-account-signing-key-file=${i.serviceAccount.privateKey}`,
    `--service-cluster-ip-range=${serviceClusterIPRange}`,
    "--authorization-mode=Node,RBAC",
    "--allow-privileged=true",
    // Aggregation: the API server authenticates to aggregated APIs (ours) with this client cert.
    `--requestheader-client-ca-file=${i.frontProxyCA.cert}`,
    "--requestheader-allowed-names=front-proxy-client",
    "--requestheader-username-headers=X-Remote-User",
    "--requestheader-group-headers=X-Remote-Group",
    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
    `--proxy-client-cert-file=${i.frontProxyClient.cert}`,
    `--proxy-client-key-file=${i.frontProxyClient.key}`,
    "--profiling=false",
    "--v=1",
  ];
}

export async function writeKubeconfig(
  path: string,
  server: string,
  ca: string,
  user: string,
  client: CertFiles,
) {
  const b64 = async (file: string) => (await readFile(file)).toString("base64");
  await writeFile(
    path,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: local",
      "  cluster:",
      `    server: ${server}`,
      `    certificate-authority-data: ${await b64(ca)}`,
      "users:",
      `- name: ${user}`,
      "  user:",
      `    client-certificate-data: ${await b64(client.cert)}`,
      `    client-key-data: ${await b64(client.key)}`,
      "contexts:",
      `- name: ${user}@local`,
      "  context:",
      "    cluster: local",
      `    user: ${user}`,
      `current-context: ${user}@local`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
}

function httpsGet(url: string, agent: Agent): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const req = request(url, { agent, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => ok({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", fail);
    req.end();
  });
}

async function httpGetStatus(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status;
}

/**
 * Removes the state directories of control planes whose owner process is gone
 * (a run killed with SIGKILL cannot clean up after itself; its children died with it).
 */
async function sweepAbandonedStateDirs(): Promise<void> {
  const entries = await readdir(tmpdir()).catch(() => []);
  for (const entry of entries.filter((e) => e.startsWith("concierge-cp-"))) {
    const dir = join(tmpdir(), entry);
    const pid = Number.parseInt(await readFile(join(dir, "owner.pid"), "utf8").catch(() => ""), 10);
    if (!Number.isInteger(pid) || isAlive(pid)) continue;
    await rm(dir, { recursive: true, force: true });
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

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const name = options.name ?? "concierge";
  const log = options.log ?? ((m: string) => process.stderr.write(`[controlplane ${name}] ${m}\n`));
  const began = Date.now();
  const binDir = await kubernetesBinDir();
  await sweepAbandonedStateDirs();
  const temporary = options.dir === undefined;
  // Not $TMPDIR/tsx: tsx deletes that directory (see reference/ecosystem-findings.md).
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), `concierge-cp-${name}-`)));
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, "pki"), { recursive: true });
  await writeFile(join(dir, "owner.pid"), `${process.pid}\n`);

  const pki = await makePKI(join(dir, "pki"), options.caKeyType ?? "rsa");
  const p = pki as unknown as Record<string, CertFiles>;
  const [etcdClientPort, etcdPeerPort, apiPort] = await freePorts(3);
  const server = `https://127.0.0.1:${apiPort}`;
  const kubeconfigPath = join(dir, "admin.kubeconfig");
  const controllerManagerKubeconfig = join(dir, "controller-manager.kubeconfig");
  await writeKubeconfig(kubeconfigPath, server, pki.ca.cert, "kubernetes-admin", pki.admin);
  await writeKubeconfig(
    controllerManagerKubeconfig,
    server,
    pki.ca.cert,
    "kube-controller-manager",
    p.controllerManager!,
  );
  const authenticationConfigPath = join(dir, "authentication-config.json");
  const minor = options.authenticationConfig ? await apiServerMinor(binDir) : 0;
  if (options.authenticationConfig) {
    await writeAuthenticationConfig(authenticationConfigPath, minor, options.authenticationConfig);
  }
  const logFiles = {
    etcd: join(dir, "etcd.log"),
    "kube-apiserver": join(dir, "kube-apiserver.log"),
    "kube-controller-manager": join(dir, "kube-controller-manager.log"),
  };

  const etcdURL = `http://127.0.0.1:${etcdClientPort}`;
  const etcd = new SupervisedProcess({
    name: "etcd",
    command: join(binDir, "etcd"),
    logFile: logFiles.etcd,
    args: [
      `--name=${name}`,
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdURL}`,
      `--advertise-client-urls=${etcdURL}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=${name}=http://127.0.0.1:${etcdPeerPort}`,
      // A throwaway cluster: durability is worth nothing, start-up and test speed a lot.
      "--unsafe-no-fsync",
      "--log-level=warn",
    ],
  });
  const apiserver = new SupervisedProcess({
    name: "kube-apiserver",
    command: join(binDir, "kube-apiserver"),
    logFile: logFiles["kube-apiserver"],
    args: [
      ...apiServerFlags({
        etcdURL,
        address: "127.0.0.1",
        port: apiPort!,
        ca: pki.ca,
        serving: p.apiserver!,
        kubeletClient: p.kubeletClient!,
        serviceAccount: pki.serviceAccount,
        frontProxyCA: pki.frontProxyCA,
        frontProxyClient: pki.frontProxyClient,
      }),
      // Endpoints may not hold loopback addresses, so the kubernetes Service gets none.
      "--endpoint-reconciler-type=none",
      ...(options.authenticationConfig ? [`--authentication-config=${authenticationConfigPath}`] : []),
      ...(options.apiServerArgs ?? []),
    ],
  });
  const controllerManager = new SupervisedProcess({
    name: "kube-controller-manager",
    command: join(binDir, "kube-controller-manager"),
    logFile: logFiles["kube-controller-manager"],
    args: [
      `--kubeconfig=${controllerManagerKubeconfig}`,
      "--bind-address=127.0.0.1",
      "--secure-port=0",
      "--leader-elect=false",
      "--use-service-account-credentials=true",
      `--cluster-signing-cert-file=${pki.ca.cert}`,
      `--cluster-signing-key-file=${pki.ca.key}`,
      `--root-ca-file=${pki.ca.cert}`,
      `--service-account-private-key-file=${pki.serviceAccount.privateKey}`,
      `--service-cluster-ip-range=${serviceClusterIPRange}`,
      "--v=1",
      ...(options.controllerManagerArgs ?? []),
    ],
  });
  const processes = [etcd, apiserver, controllerManager];

  const adminAgent = new Agent({
    ca: await readFile(pki.ca.cert),
    cert: await readFile(pki.admin.cert),
    key: await readFile(pki.admin.key),
    keepAlive: false,
  });
  const kubeConfig = () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    return kc;
  };
  const apiserverReady = () =>
    waitUntil(
      "kube-apiserver /readyz",
      apiserver,
      async () => (await httpsGet(`${server}/readyz`, adminAgent)).status === 200,
      startBoundMs,
    );

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", killOnExit);
    for (const proc of [controllerManager, apiserver, etcd]) await proc.stop(apiserverStopGraceMs);
    adminAgent.destroy();
    if (temporary) await rm(dir, { recursive: true, force: true });
  };
  // Children die with us anyway (parent-death signal); this makes a normal exit quick and tidy.
  const killOnExit = () => {
    for (const proc of processes)
      if (proc.pid !== undefined && proc.running) process.kill(proc.pid, "SIGKILL");
  };
  process.on("exit", killOnExit);

  try {
    etcd.start();
    await waitUntil(
      "etcd /health",
      etcd,
      async () => (await httpGetStatus(`${etcdURL}/health`)) === 200,
      startBoundMs,
    );
    apiserver.start();
    await apiserverReady();
    controllerManager.start();
    // The default ServiceAccount appears only once kube-controller-manager's controllers run.
    await waitUntil(
      "kube-controller-manager to create the default ServiceAccount",
      controllerManager,
      async () =>
        (await httpsGet(`${server}/api/v1/namespaces/default/serviceaccounts/default`, adminAgent)).status ===
        200,
      startBoundMs,
    );
    await publishClusterInfo(kubeconfigPath, join(binDir, "kubectl"), server, pki.ca.cert);
  } catch (err) {
    await stop();
    throw err;
  }
  log(`ready in ${((Date.now() - began) / 1000).toFixed(1)}s: ${server}, kubeconfig ${kubeconfigPath}`);

  return {
    name,
    dir,
    binDir,
    server,
    kubeconfigPath,
    pki,
    logFiles,
    kubeConfig,
    async stopApiServer() {
      await apiserver.stop(apiserverStopGraceMs);
    },
    async startApiServer() {
      apiserver.start();
      await apiserverReady();
    },
    async setAuthenticationConfig(body) {
      if (!options.authenticationConfig)
        throw new Error(`${name} was started without --authentication-config`);
      await writeAuthenticationConfig(authenticationConfigPath, minor, body);
    },
    stop,
  };
}

/**
 * kubeadm publishes `kube-public/cluster-info` (server URL and CA) and clients such as
 * the Concierge read it; a cluster without it would not be realistic.
 */
export async function publishClusterInfo(
  kubeconfig: string,
  kubectl: string,
  server: string,
  caFile: string,
) {
  const ca = (await readFile(caFile)).toString("base64");
  const inner = [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    '- name: ""',
    "  cluster:",
    `    certificate-authority-data: ${ca}`,
    `    server: ${server}`,
    "contexts: null",
    'current-context: ""',
    "preferences: {}",
    "users: null",
    "",
  ].join("\n");
  const manifest = JSON.stringify({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "cluster-info", namespace: "kube-public" },
    data: { kubeconfig: inner },
  });
  await new Promise<void>((ok, fail) => {
    const child = execFile(kubectl, ["--kubeconfig", kubeconfig, "apply", "-f", "-"], (err, _out, stderr) =>
      err ? fail(new Error(`publishing cluster-info failed: ${stderr || err.message}`)) : ok(),
    );
    child.stdin?.end(manifest);
  });
}
