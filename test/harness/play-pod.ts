// Plays pods on a played node, so that kubectl's exec, attach, port-forward, logs and cp can run
// against them through the real kube-apiserver, which has no kubelet or container runtime behind
// it. A played pod is a Pod object bound to the node (spec.nodeName) with the status a kubelet
// would report for running containers, and handlers in the node's stand-in kubelet
// (test/harness/kubelet-standin.ts) for what "runs" in it:
// - exec runs a few ready-made commands (echo, cat, tar, test; kubectl cp needs tar and test),
//   with a temporary directory as the filesystem every container of the pod shares;
// - each container's main process writes its log (pod.log) to its stdout and echoes what an
//   attached client types, so attach and logs have something to show;
// - port-forward to a containerPort reaches a TCP server the test runs on 127.0.0.1.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { KubeConfig } from "@kubernetes/client-node";
import { isApiError, KubeRestClient, type RestClient } from "../../kube/rest.ts";
import {
  type ExecHandler,
  type ExecIO,
  type ExecRequest,
  type ExecResult,
  type KubeletStandIn,
  type LogRequest,
  registerNode,
  startKubeletStandIn,
} from "./kubelet-standin.ts";

function adminClient(kubeconfigPath: string): KubeRestClient {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return new KubeRestClient(kc);
}

export interface PlayedNode {
  readonly nodeName: string;
  readonly kubelet: KubeletStandIn;
  /** Stops the stand-in; the Node object stays, as Nodes are cluster-scoped and cheap. */
  stop(): Promise<void>;
}

/**
 * A Node whose kubelet is a stand-in with no pods yet. `kubeconfigPath` is the control plane's
 * admin kubeconfig, next to pki/ca.crt, the CA of kube-apiserver's kubelet client certificate.
 */
export async function playNode(options: { kubeconfigPath: string; nodeName: string }): Promise<PlayedNode> {
  const ca = await readFile(join(dirname(options.kubeconfigPath), "pki", "ca.crt"), "utf8");
  const kubelet = await startKubeletStandIn({ clientCAPEM: ca });
  const admin = adminClient(options.kubeconfigPath);
  try {
    await registerNode(admin, options.nodeName, kubelet.port);
  } catch (err) {
    await kubelet.close();
    throw err;
  } finally {
    admin.close();
  }
  return { nodeName: options.nodeName, kubelet, stop: () => kubelet.close() };
}

export interface PlayPodOptions {
  /** How to reach the API server: a client (left open) or the admin kubeconfig. */
  client?: RestClient;
  kubeconfigPath?: string;
  /** The stand-in of the node the pod runs on. */
  kubelet: KubeletStandIn;
  nodeName: string;
  namespace: string;
  name: string;
  /** Container names; default ["main"]. The first is the default container. */
  containers?: string[];
  /** containerPort (declared on the first container) → port of a TCP server on 127.0.0.1. */
  ports?: Readonly<Record<number, number>>;
  /** Further commands for exec, by argv[0]; they take precedence over the built-in ones. */
  commands?: Readonly<Record<string, ExecHandler>>;
}

export interface PlayedPod {
  readonly namespace: string;
  readonly name: string;
  readonly podIP: string;
  /** The containers' filesystem root: pod path /x/y is `${filesDir}/x/y`. */
  readonly filesDir: string;
  readonly ports: Readonly<Record<number, number>>;
  /** Writes a line to a container's stdout (default: the first): its log and its attached clients. */
  log(line: string, container?: string): void;
  /** What a container has logged so far, a line each. */
  logs(container?: string): string[];
  /** Ends followers and attachers, deletes the Pod and its files. */
  stop(): Promise<void>;
}

/** A container's stdout: kept as its log and copied to attached clients. */
class PlayedContainer {
  readonly entries: { time: Date; line: string }[] = [];
  readonly followers = new Set<(entry: { time: Date; line: string }) => void>();
  readonly attached = new Set<Writable>();
  #partial = "";

  write(text: string): void {
    for (const out of this.attached) out.write(text);
    const lines = (this.#partial + text).split("\n");
    this.#partial = lines.pop() ?? "";
    for (const line of lines) {
      const entry = { time: new Date(), line };
      this.entries.push(entry);
      for (const follow of this.followers) follow(entry);
    }
  }
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** Pod paths are absolute; the pod's files live under `root`. */
function inPod(root: string, path: string): string {
  return join(root, path);
}

/**
 * GNU tar with pod paths mapped into `root`: `-C <dir>` becomes `root/<dir>`, and an absolute
 * member path becomes relative to `root` (tar's cwd), so that `tar cf - /tmp/x` names its
 * members `tmp/x/...` just as tar in a container does after stripping the leading slash.
 */
async function tar(root: string, args: string[], io: ExecIO): Promise<ExecResult> {
  const mapped: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "-C" && i + 1 < args.length) {
      mapped.push(arg, inPod(root, args[++i] ?? ""));
    } else {
      mapped.push(arg.startsWith("/") ? arg.replace(/^\/+/, "") || "." : arg);
    }
  }
  const child = spawn("tar", mapped, { cwd: root, stdio: [io.stdin ? "pipe" : "ignore", "pipe", "pipe"] });
  if (io.stdin && child.stdin) {
    // tar may finish before reading all of its input; the rest is dropped, as a closed pipe would.
    child.stdin.on("error", () => undefined);
    io.stdin.pipe(child.stdin);
  }
  child.stdout?.pipe(io.stdout, { end: false });
  child.stderr?.pipe(io.stderr, { end: false });
  const kill = () => child.kill();
  io.signal.addEventListener("abort", kill, { once: true });
  const [code] = (await once(child, "close")) as [number | null];
  io.signal.removeEventListener("abort", kill);
  return { exitCode: code ?? 137 };
}

/** The commands every played container has. */
function builtInCommands(root: string): Record<string, ExecHandler> {
  return {
    echo: ({ command }) => ({ stdout: `${command.slice(1).join(" ")}\n` }),
    // Without arguments, stdin to stdout until stdin closes (or the client goes away).
    async cat({ command }, io) {
      const files = command.slice(1);
      if (files.length > 0) {
        for (const file of files) io.stdout.write(await readFile(inPod(root, file)));
        return {};
      }
      if (!io.stdin) return {};
      io.stdin.pipe(io.stdout, { end: false });
      await Promise.race([once(io.stdin, "end"), untilAborted(io.signal)]);
      return {};
    },
    tar: ({ command }, io) => tar(root, command.slice(1), io),
    async test({ command }) {
      const [, flag, path] = command;
      const info = await stat(inPod(root, path ?? "")).catch(() => undefined);
      const ok = flag === "-d" ? info?.isDirectory() : flag === "-f" ? info?.isFile() : info !== undefined;
      return { exitCode: ok ? 0 : 1 };
    },
  };
}

/** A random address in 10.244.0.0/16, the range kubeadm clusters give pods. */
function randomPodIP(): string {
  const byte = () => 1 + Math.floor(Math.random() * 254);
  return `10.244.${byte()}.${byte()}`;
}

export async function playPod(options: PlayPodOptions): Promise<PlayedPod> {
  const { namespace, name, nodeName, kubelet } = options;
  const containerNames = options.containers ?? ["main"];
  const ports = options.ports ?? {};
  if (!options.client && !options.kubeconfigPath)
    throw new Error("playPod needs a client or a kubeconfigPath");
  const client = options.client ?? adminClient(options.kubeconfigPath ?? "");
  const ownsClient = !options.client;
  const podPath = `/api/v1/namespaces/${namespace}/pods/${name}`;
  const podIP = randomPodIP();
  const filesDir = await mkdtemp(join(tmpdir(), `played-pod-${name}-`));
  // The directories kubectl cp and tests expect any container to have.
  await mkdir(join(filesDir, "tmp"));
  const stopped = new AbortController();
  const containers = new Map(containerNames.map((c) => [c, new PlayedContainer()]));
  const container = (c: string | undefined): PlayedContainer => {
    const found = containers.get(c ?? containerNames[0] ?? "");
    if (!found) throw new Error(`container ${c} is not valid for pod ${name}`);
    return found;
  };
  const commands = { ...builtInCommands(filesDir), ...options.commands };

  const exec: ExecHandler = (request: ExecRequest, io: ExecIO) => {
    container(request.container);
    const run = commands[request.command[0] ?? ""];
    if (!run) return { stderr: `${request.command[0]}: executable file not found in $PATH\n`, exitCode: 127 };
    return run(request, io);
  };

  const attach: ExecHandler = async (request, io) => {
    const played = container(request.container);
    const detached = AbortSignal.any([io.signal, stopped.signal]);
    played.attached.add(io.stdout);
    try {
      if (io.stdin) {
        // The container's main process echoes its stdin. The attach ends when the client closes
        // stdin, as for a container with stdinOnce, so that `kubectl attach -i` can finish.
        io.stdin.on("data", (chunk: Buffer) => played.write(chunk.toString()));
        await Promise.race([once(io.stdin, "end"), untilAborted(detached)]);
      } else {
        await untilAborted(detached);
      }
    } finally {
      played.attached.delete(io.stdout);
    }
    return {};
  };

  const logs = async (request: LogRequest, out: Writable, signal: AbortSignal) => {
    const played = container(request.container);
    const format = (entry: { time: Date; line: string }) =>
      `${request.timestamps ? `${entry.time.toISOString()} ` : ""}${entry.line}\n`;
    const { tailLines } = request;
    const existing =
      tailLines === undefined ? played.entries : tailLines === 0 ? [] : played.entries.slice(-tailLines);
    for (const entry of existing) out.write(format(entry));
    if (!request.follow) return;
    const follow = (entry: { time: Date; line: string }) => out.write(format(entry));
    played.followers.add(follow);
    await untilAborted(AbortSignal.any([signal, stopped.signal]));
    played.followers.delete(follow);
  };

  const portForward = async (port: number): Promise<Socket> => {
    const target = ports[port];
    if (target === undefined) throw new Error(`nothing listens on port ${port} in pod ${name}`);
    const socket = connect({ host: "127.0.0.1", port: target });
    await once(socket, "connect");
    return socket;
  };

  kubelet.addPod(namespace, name, { exec, attach, logs, portForward });
  const stop = async () => {
    stopped.abort();
    kubelet.removePod(namespace, name);
    // No kubelet will confirm a graceful deletion: the Pod goes at once.
    await client
      .request({ method: "DELETE", path: podPath, query: { gracePeriodSeconds: "0" } })
      .catch((err: unknown) => {
        if (!isApiError(err, 404)) throw err;
      })
      .finally(async () => {
        if (ownsClient) client.close?.();
        await rm(filesDir, { recursive: true, force: true });
      });
  };

  try {
    const body = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace, labels: { "played-pod": name } },
      spec: {
        nodeName,
        automountServiceAccountToken: false,
        // The played node reports no Ready condition, so it is soon tainted unreachable.
        tolerations: [{ operator: "Exists" }],
        containers: containerNames.map((c, i) => ({
          name: c,
          image: "registry.invalid/played:latest",
          ...(i === 0 && Object.keys(ports).length > 0
            ? { ports: Object.keys(ports).map((p) => ({ containerPort: Number(p), protocol: "TCP" })) }
            : {}),
        })),
      },
    };
    await createPod(client, `/api/v1/namespaces/${namespace}/pods`, body);
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const condition = (type: string) => ({ type, status: "True", lastTransitionTime: now });
    await client.request({
      method: "PATCH",
      path: `${podPath}/status`,
      contentType: "application/merge-patch+json",
      body: {
        status: {
          phase: "Running",
          hostIP: "127.0.0.1",
          hostIPs: [{ ip: "127.0.0.1" }],
          podIP,
          podIPs: [{ ip: podIP }],
          startTime: now,
          conditions: ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map(condition),
          containerStatuses: containerNames.map((c) => ({
            name: c,
            ready: true,
            started: true,
            restartCount: 0,
            image: "registry.invalid/played:latest",
            imageID: "",
            containerID: `played://${namespace}/${name}/${c}`,
            state: { running: { startedAt: now } },
          })),
        },
      },
    });
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }

  return {
    namespace,
    name,
    podIP,
    filesDir,
    ports,
    log: (line, c) => container(c).write(`${line}\n`),
    logs: (c) => container(c).entries.map((e) => e.line),
    stop,
  };
}

/**
 * Creates the Pod, waiting out the moments after a namespace is created in which its default
 * ServiceAccount (which admission requires) does not exist yet.
 */
async function createPod(client: RestClient, path: string, body: object): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await client.request({ method: "POST", path, body });
      return;
    } catch (err) {
      if (!isApiError(err) || !/serviceaccount/i.test(String(err.message)) || Date.now() > deadline)
        throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
