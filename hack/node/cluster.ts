// A one-node Kubernetes cluster with a real kubelet, run inside a node's namespaces (see
// namespaces.ts and launch.ts): etcd, kube-apiserver (on the bridge address) and kube-scheduler
// as processes; containerd, kubelet and kube-proxy as the node; kube-controller-manager as a
// static pod from a locally built image, with the PKI on hostPath where kubeadm puts it, so
// kube-cert-agent finds it the way it does on a kubeadm cluster.
import { execFile } from "node:child_process";
import { mkdir, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import {
  apiServerFlags,
  freePorts,
  kubernetesBinDir,
  publishClusterInfo,
  serviceClusterIPRange,
  writeKubeconfig,
} from "../controlplane.ts";
import { newCA, newCert, newServiceAccountKeyPair } from "../pki.ts";
import { SupervisedProcess, startBoundMs, waitUntil } from "../supervisor.ts";
import { createCgroupRoot, pidsInCgroupTree } from "./cgroups.ts";
import { controllerManagerImage, importImage, nodeImageArchives, pauseImage } from "./images.ts";
import { currentNode, type NodeNamespaces, nodeDirVariable } from "./namespaces.ts";

const run = promisify(execFile);

/** Where kubeadm lays out a control-plane node (inside the node's mount namespace). */
const kubernetesDir = "/etc/kubernetes";
const pkiDir = `${kubernetesDir}/pki`;
const manifestsDir = `${kubernetesDir}/manifests`;
export const nodeName = "concierge-control-plane";
export const controlPlaneLabel = "node-role.kubernetes.io/control-plane";
/**
 * Addresses a test may write into a LoadBalancer Service's `status.loadBalancer.ingress` (playing
 * the cloud): routed to the bridge like the Service range, so kube-proxy's rules catch them.
 */
export const loadBalancerCIDR = "10.89.0.0/24";
const apiserverStopGraceMs = 3000;

export interface NodeCluster {
  readonly node: NodeNamespaces;
  readonly nodeName: string;
  readonly binDir: string;
  readonly kubernetesVersion: string;
  /** `https://<bridge IP>:<port>`: reachable from pods and from every process inside the node. */
  readonly server: string;
  readonly kubeconfigPath: string;
  readonly caCertPath: string;
  readonly containerdSocket: string;
  readonly logDir: string;
  kubeConfig(): KubeConfig;
  /** Runs the pinned kubectl as the cluster admin; rejects on a non-zero exit. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** Imports an OCI or docker archive into containerd, for pods with imagePullPolicy Never/IfNotPresent. */
  importImage(archive: string): Promise<void>;
  /** Stops kubelet as a reboot would (containers keep running under containerd). */
  stopKubelet(): Promise<void>;
  startKubelet(): Promise<void>;
  /**
   * Stops etcd or kube-apiserver with no grace period (SIGTERM, then SIGKILL at once) and starts
   * it again; resolves once kube-apiserver is ready. For the fault bench (bench/faults.ts).
   */
  restartControlPlane(component: "etcd" | "kube-apiserver"): Promise<void>;
  stop(): Promise<void>;
}

/** The release the binaries were built from (hack/build-k8s.sh stamps it), e.g. `v1.37.2`. */
async function kubernetesVersion(binDir: string): Promise<string> {
  const { stdout } = await run(join(binDir, "kubelet"), ["--version"]);
  const version = /^Kubernetes (v\d+\.\d+\.\d+)$/m.exec(stdout)?.[1];
  if (!version) throw new Error(`${binDir}/kubelet --version printed no release: ${stdout.trim()}`);
  return version;
}

async function makePKI(node: NodeNamespaces) {
  await mkdir(pkiDir, { recursive: true });
  const ca = await newCA(pkiDir, "ca", "kubernetes");
  const frontProxyCA = await newCA(pkiDir, "front-proxy-ca", "front-proxy-ca");
  const client = (name: string, cn: string, organizations?: string[]) =>
    newCert(pkiDir, ca, { name, cn, usage: "client", ...(organizations ? { organizations } : {}) });
  const [apiserver, apiserverKubeletClient, admin, controllerManager, scheduler, kubeProxy, kubeletClient] =
    await Promise.all([
      newCert(pkiDir, ca, {
        name: "apiserver",
        cn: "kube-apiserver",
        usage: "server",
        dnsNames: [
          "localhost",
          nodeName,
          "kubernetes",
          "kubernetes.default",
          "kubernetes.default.svc",
          "kubernetes.default.svc.cluster.local",
        ],
        ips: ["127.0.0.1", node.bridgeIP, "10.96.0.1"],
      }),
      client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["kubeadm:cluster-admins"]),
      client("admin", "kubernetes-admin", ["system:masters"]),
      client("controller-manager", "system:kube-controller-manager"),
      client("scheduler", "system:kube-scheduler"),
      client("kube-proxy", "system:kube-proxy"),
      client("kubelet-client", `system:node:${nodeName}`, ["system:nodes"]),
    ]);
  const [kubeletServing, frontProxyClient, sa] = await Promise.all([
    newCert(pkiDir, ca, {
      name: "kubelet",
      cn: nodeName,
      usage: "server",
      dnsNames: [nodeName],
      ips: [node.bridgeIP],
    }),
    newCert(pkiDir, frontProxyCA, { name: "front-proxy-client", cn: "front-proxy-client", usage: "client" }),
    newServiceAccountKeyPair(pkiDir),
  ]);
  return {
    ca,
    frontProxyCA,
    frontProxyClient,
    apiserver,
    apiserverKubeletClient,
    admin,
    controllerManager,
    scheduler,
    kubeProxy,
    kubeletClient,
    kubeletServing,
    sa,
  };
}

async function writeFileAtomically(file: string, content: string): Promise<void> {
  await writeFile(`${file}.partial`, content);
  await rename(`${file}.partial`, file);
}

function containerdConfig(node: NodeNamespaces, dir: string, socket: string, cniConfDir: string): string {
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  # root lacks CAP_SYS_RESOURCE here, so the sandbox's oom_score_adj of -998 would fail.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConfDir}"
# node ${node.id}
`;
}

function cniConfig(node: NodeNamespaces): string {
  return JSON.stringify(
    {
      cniVersion: "0.4.0",
      name: "concierge",
      plugins: [
        {
          type: "bridge",
          bridge: node.bridgeName,
          isGateway: true,
          hairpinMode: true,
          // Pods have no way out of the node: nothing to masquerade for.
          ipMasq: false,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: node.podCIDR, gateway: node.bridgeIP, rangeStart: "10.88.1.1" }]],
            // No default route (pods cannot leave the node), only one to the Services, which
            // kube-proxy's rules on the node then send on to their endpoints.
            routes: [{ dst: serviceClusterIPRange }],
          },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

function controllerManagerManifest(version: string, server: string, port: number): string {
  // kubeadm's flags and volumes, so kube-cert-agent reads the signing key paths from them.
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "kube-controller-manager",
      namespace: "kube-system",
      labels: { component: "kube-controller-manager", tier: "control-plane" },
    },
    spec: {
      hostNetwork: true,
      priorityClassName: "system-node-critical",
      containers: [
        {
          name: "kube-controller-manager",
          image: controllerManagerImage(version),
          imagePullPolicy: "Never",
          command: [
            "kube-controller-manager",
            `--authentication-kubeconfig=${kubernetesDir}/controller-manager.conf`,
            `--authorization-kubeconfig=${kubernetesDir}/controller-manager.conf`,
            "--bind-address=127.0.0.1",
            `--secure-port=${port}`,
            `--client-ca-file=${pkiDir}/ca.crt`,
            "--cluster-name=kubernetes",
            `--cluster-signing-cert-file=${pkiDir}/ca.crt`,
            `--cluster-signing-key-file=${pkiDir}/ca.key`,
            "--controllers=*,bootstrapsigner,tokencleaner",
            `--kubeconfig=${kubernetesDir}/controller-manager.conf`,
            "--leader-elect=true",
            `--requestheader-client-ca-file=${pkiDir}/front-proxy-ca.crt`,
            `--root-ca-file=${pkiDir}/ca.crt`,
            `--service-account-private-key-file=${pkiDir}/sa.key`,
            `--service-cluster-ip-range=${serviceClusterIPRange}`,
            "--use-service-account-credentials=true",
            "--v=1",
          ],
          resources: { requests: { cpu: "200m" } },
          volumeMounts: [
            { name: "k8s-certs", mountPath: pkiDir, readOnly: true },
            { name: "kubeconfig", mountPath: `${kubernetesDir}/controller-manager.conf`, readOnly: true },
          ],
        },
      ],
      volumes: [
        { name: "k8s-certs", hostPath: { path: pkiDir, type: "DirectoryOrCreate" } },
        {
          name: "kubeconfig",
          hostPath: { path: `${kubernetesDir}/controller-manager.conf`, type: "FileOrCreate" },
        },
      ],
    },
  };
  // The server address is baked into the kubeconfig; named here so a reader of the manifest sees it.
  return `# kube-controller-manager talks to ${server}\n${JSON.stringify(pod, null, 2)}\n`;
}

function kubeletConfig(node: NodeNamespaces, ports: { kubelet: number; healthz: number }, socket: string) {
  return JSON.stringify(
    {
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      address: node.bridgeIP,
      port: ports.kubelet,
      readOnlyPort: 0,
      healthzBindAddress: "127.0.0.1",
      healthzPort: ports.healthz,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: `${pkiDir}/ca.crt` },
      },
      authorization: { mode: "Webhook" },
      tlsCertFile: `${pkiDir}/kubelet.crt`,
      tlsPrivateKeyFile: `${pkiDir}/kubelet.key`,
      containerRuntimeEndpoint: `unix://${socket}`,
      cgroupDriver: "cgroupfs",
      cgroupRoot: node.cgroupRoot,
      // Machines here mount cgroup v1 hierarchies, which kubelet 1.35 and newer refuse by default
      // (1.37 still runs on them when asked). kubelet 1.30 lacks the field and decodes it leniently.
      failCgroupV1: false,
      failSwapOn: false,
      staticPodPath: manifestsDir,
      fileCheckFrequency: "2s",
      clusterDomain: "cluster.local",
      resolvConf: "/etc/resolv.conf",
      serializeImagePulls: false,
      // The disk is shared by everyone on the machine: never evict or collect our images for it.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: {
        "memory.available": "1Mi",
        "nodefs.available": "1%",
        "imagefs.available": "1%",
        "nodefs.inodesFree": "1%",
      },
      // A protected kernel default would make kubelet refuse to start; ours are files anyway.
      protectKernelDefaults: false,
    },
    null,
    2,
  );
}

function kubeProxyConfig(
  node: NodeNamespaces,
  kubeconfig: string,
  ports: { healthz: number; metrics: number },
) {
  return JSON.stringify(
    {
      apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
      kind: "KubeProxyConfiguration",
      mode: "iptables",
      clientConnection: { kubeconfig },
      clusterCIDR: node.podCIDR,
      bindAddress: node.bridgeIP,
      healthzBindAddress: `127.0.0.1:${ports.healthz}`,
      metricsBindAddress: `127.0.0.1:${ports.metrics}`,
      hostnameOverride: nodeName,
      // The conntrack table is machine-wide: leave its size alone.
      conntrack: { maxPerCore: 0 },
    },
    null,
    2,
  );
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

export async function startNodeCluster(options: { log?: (m: string) => void } = {}): Promise<NodeCluster> {
  const log = options.log ?? ((m: string) => process.stderr.write(`[node] ${m}\n`));
  const node = await currentNode();
  if (!node)
    throw new Error(
      `a real node runs only inside its namespaces (${nodeDirVariable} is unset): run this through ` +
        "node hack/node/launch.ts <command>",
    );
  if (await exists(pkiDir))
    throw new Error(`${pkiDir} exists: this node already runs a cluster (one per launch)`);
  const began = Date.now();
  const elapsed = () => `${((Date.now() - began) / 1000).toFixed(1)}s`;
  const binDir = await kubernetesBinDir();
  const version = await kubernetesVersion(binDir);
  const logDir = join(node.dir, "logs");
  const containerdDir = join(node.dir, "containerd");
  const containerdSocket = join(containerdDir, "containerd.sock");
  const cniConfDir = "/etc/cni/net.d";
  await Promise.all([
    mkdir(logDir, { recursive: true }),
    mkdir(containerdDir, { recursive: true }),
    mkdir(cniConfDir, { recursive: true }),
    mkdir(manifestsDir, { recursive: true }),
  ]);
  const images = nodeImageArchives(binDir, version);
  const pki = await makePKI(node);
  const [
    etcdClientPort,
    etcdPeerPort,
    apiPort,
    kubeletPort,
    kubeletHealthz,
    proxyHealthz,
    proxyMetrics,
    kcmPort,
    schedulerPort,
  ] = await freePorts(9);
  const server = `https://${node.bridgeIP}:${apiPort}`;
  const conf = (name: string) => join(kubernetesDir, `${name}.conf`);
  const kubeconfigPath = conf("admin");
  await Promise.all([
    writeKubeconfig(kubeconfigPath, server, pki.ca.cert, "kubernetes-admin", pki.admin),
    writeKubeconfig(
      conf("controller-manager"),
      server,
      pki.ca.cert,
      "system:kube-controller-manager",
      pki.controllerManager,
    ),
    writeKubeconfig(conf("scheduler"), server, pki.ca.cert, "system:kube-scheduler", pki.scheduler),
    writeKubeconfig(conf("kubelet"), server, pki.ca.cert, `system:node:${nodeName}`, pki.kubeletClient),
    writeKubeconfig(conf("kube-proxy"), server, pki.ca.cert, "system:kube-proxy", pki.kubeProxy),
    writeFile(join(cniConfDir, "10-concierge.conflist"), cniConfig(node)),
    writeFile(
      join(containerdDir, "config.toml"),
      containerdConfig(node, containerdDir, containerdSocket, cniConfDir),
    ),
    writeFile(
      join(kubernetesDir, "kubelet-config.json"),
      kubeletConfig(node, { kubelet: kubeletPort!, healthz: kubeletHealthz! }, containerdSocket),
    ),
    writeFile(
      join(kubernetesDir, "kube-proxy-config.json"),
      kubeProxyConfig(node, conf("kube-proxy"), { healthz: proxyHealthz!, metrics: proxyMetrics! }),
    ),
    createCgroupRoot(node.cgroupRoot),
  ]);

  const proc = (name: string, command: string, args: string[]) =>
    new SupervisedProcess({ name, command, args, logFile: join(logDir, `${name}.log`) });
  const etcdURL = `http://127.0.0.1:${etcdClientPort}`;
  const etcd = proc("etcd", join(binDir, "etcd"), [
    "--name=node",
    `--data-dir=${join(node.dir, "etcd")}`,
    `--listen-client-urls=${etcdURL}`,
    `--advertise-client-urls=${etcdURL}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-cluster=node=http://127.0.0.1:${etcdPeerPort}`,
    "--unsafe-no-fsync",
    "--log-level=warn",
  ]);
  const apiserver = proc("kube-apiserver", join(binDir, "kube-apiserver"), [
    ...apiServerFlags({
      etcdURL,
      address: node.bridgeIP,
      port: apiPort!,
      ca: pki.ca,
      serving: pki.apiserver,
      kubeletClient: pki.apiserverKubeletClient,
      serviceAccount: pki.sa,
      frontProxyCA: pki.frontProxyCA,
      frontProxyClient: pki.frontProxyClient,
    }),
    // A real kubelet: its serving certificate is checked, and it is reached at the node's address.
    `--kubelet-certificate-authority=${pki.ca.cert}`,
    "--kubelet-preferred-address-types=InternalIP",
    "--enable-admission-plugins=NodeRestriction",
  ]);
  const scheduler = proc("kube-scheduler", join(binDir, "kube-scheduler"), [
    `--kubeconfig=${conf("scheduler")}`,
    `--authentication-kubeconfig=${conf("scheduler")}`,
    `--authorization-kubeconfig=${conf("scheduler")}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${schedulerPort}`,
    "--leader-elect=false",
    "--v=1",
  ]);
  const containerd = proc("containerd", "containerd", ["--config", join(containerdDir, "config.toml")]);
  const kubelet = proc("kubelet", join(binDir, "kubelet"), [
    `--config=${join(kubernetesDir, "kubelet-config.json")}`,
    `--kubeconfig=${conf("kubelet")}`,
    `--root-dir=${join(node.dir, "kubelet")}`,
    `--hostname-override=${nodeName}`,
    `--node-ip=${node.bridgeIP}`,
    "--v=1",
  ]);
  const kubeProxy = proc("kube-proxy", join(binDir, "kube-proxy"), [
    `--config=${join(kubernetesDir, "kube-proxy-config.json")}`,
    "--v=1",
  ]);
  const processes = [etcd, apiserver, scheduler, containerd, kubelet, kubeProxy];

  const kubectl = async (args: string[], input?: string) => {
    try {
      // The discovery cache stays inside the node's state directory, not in ~/.kube/cache.
      const global = ["--kubeconfig", kubeconfigPath, "--cache-dir", join(node.dir, "kube-cache")];
      const child = run(join(binDir, "kubectl"), [...global, ...args], {
        maxBuffer: 64 * 1024 * 1024,
        // Longer than any `kubectl wait --timeout` a caller passes.
        timeout: 300_000,
      });
      if (input !== undefined) child.child.stdin?.end(input);
      return (await child).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`kubectl ${args.join(" ")} failed: ${e.stderr?.trim() || e.message}`);
    }
  };
  const succeeds = (args: string[]) => () => kubectl(args).then(() => true);

  const stopContainers = async () => {
    // The containers outlive containerd (their shims are daemons): end them by cgroup.
    for (const pid of await pidsInCgroupTree(node.cgroupRoot)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", killOnExit);
    await Promise.all([kubeProxy.stop(), scheduler.stop(), kubelet.stop()]);
    await stopContainers();
    await containerd.stop();
    await apiserver.stop(apiserverStopGraceMs);
    await etcd.stop();
  };
  const killOnExit = () => {
    for (const p of processes) if (p.pid !== undefined && p.running) process.kill(p.pid, "SIGKILL");
  };
  process.on("exit", killOnExit);

  const nodeReady = () =>
    waitUntil(
      `node ${nodeName} to be Ready`,
      kubelet,
      async () =>
        (await kubectl([
          "get",
          "node",
          nodeName,
          "-o",
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ])) === "True",
      90_000,
    );

  try {
    // The node has no default route: without these, connecting to a ClusterIP (kube-apiserver's
    // aggregator does) fails before kube-proxy's rules see the packet.
    for (const cidr of [serviceClusterIPRange, loadBalancerCIDR])
      await run("ip", ["route", "add", cidr, "dev", node.bridgeName]);
    etcd.start();
    containerd.start();
    await waitUntil("etcd /health", etcd, async () => (await fetch(`${etcdURL}/health`)).ok, startBoundMs);
    apiserver.start();
    await waitUntil("kube-apiserver /readyz", apiserver, succeeds(["get", "--raw=/readyz"]), startBoundMs);
    log(`control plane ready after ${elapsed()}: ${server}`);
    // kubeadm binds the API server's kubelet client to this role; exec, logs and port-forward need it.
    await kubectl([
      "create",
      "clusterrolebinding",
      "kube-apiserver-kubelet-api-admin",
      "--clusterrole=system:kubelet-api-admin",
      "--user=kube-apiserver-kubelet-client",
    ]);
    await publishClusterInfo(kubeconfigPath, join(binDir, "kubectl"), server, pki.ca.cert);
    scheduler.start();
    await waitUntil("containerd's socket", containerd, () => exists(containerdSocket), startBoundMs);
    const archives = await images;
    await Promise.all([
      importImage(containerdSocket, archives.pause),
      importImage(containerdSocket, archives.controllerManager),
      importImage(containerdSocket, archives.busybox),
    ]);
    log(`images imported after ${elapsed()}`);
    await writeFileAtomically(
      join(manifestsDir, "kube-controller-manager.yaml"),
      controllerManagerManifest(version, server, kcmPort!),
    );
    kubelet.start();
    kubeProxy.start();
    await nodeReady();
    await kubectl(["label", "node", nodeName, `${controlPlaneLabel}=`, "--overwrite"]);
    log(`node Ready after ${elapsed()}`);
    await waitUntil(
      "the kube-controller-manager static pod to run and create the default ServiceAccount",
      kubelet,
      succeeds(["get", "serviceaccount", "default", "-n", "default"]),
      startBoundMs,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  log(`cluster ready after ${elapsed()}; kubeconfig ${kubeconfigPath}, logs ${logDir}`);

  return {
    node,
    nodeName,
    binDir,
    kubernetesVersion: version,
    server,
    kubeconfigPath,
    caCertPath: pki.ca.cert,
    containerdSocket,
    logDir,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      return kc;
    },
    kubectl,
    importImage: (archive) => importImage(containerdSocket, archive),
    async stopKubelet() {
      await kubelet.stop();
    },
    async startKubelet() {
      kubelet.start();
      await nodeReady();
    },
    async restartControlPlane(component) {
      if (component === "etcd") {
        await etcd.stop(0);
        etcd.start();
        await waitUntil(
          "etcd /health",
          etcd,
          async () => (await fetch(`${etcdURL}/health`)).ok,
          startBoundMs,
        );
      } else {
        await apiserver.stop(0);
        apiserver.start();
      }
      await waitUntil("kube-apiserver /readyz", apiserver, succeeds(["get", "--raw=/readyz"]), startBoundMs);
    },
    stop,
  };
}
