// Real kubectl → real kube-apiserver → the stand-in kubelet and a played pod, with no proxy in
// between: exec, attach, logs, port-forward and cp, each over kubectl's SPDY client protocols
// (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, KUBECTL_PORT_FORWARD_WEBSOCKETS=false) and its
// websocket ones (the 1.34 default). The stand-in serves only SPDY/3.1 upgrades, so every
// success also shows kube-apiserver speaking SPDY to the kubelet whatever kubectl spoke.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ControlPlane } from "../../hack/controlplane.ts";
import { startTestControlPlane, uniqueName } from "../harness/cluster.ts";
import { type PlayedNode, type PlayedPod, playNode, playPod } from "../harness/play-pod.ts";

const protocols = {
  websocket: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "true", KUBECTL_PORT_FORWARD_WEBSOCKETS: "true" },
  spdy: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false", KUBECTL_PORT_FORWARD_WEBSOCKETS: "false" },
} as const;
type Protocol = keyof typeof protocols;

/** A kubectl left running, with its output so far. */
interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves once stdout matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
}

describe("the stand-in kubelet through real kubectl and kube-apiserver", { timeout: 120_000 }, () => {
  let cp: ControlPlane;
  let node: PlayedNode;
  let pod: PlayedPod;
  let echoServer: Server;
  let dir: string;
  const namespace = "default";
  const running = new Set<ChildProcess>();

  const start = (protocol: Protocol, args: string[]): Running => {
    const child = spawn(join(cp.binDir, "kubectl"), ["--kubeconfig", cp.kubeconfigPath, ...args], {
      env: { ...process.env, ...protocols[protocol] },
      stdio: ["pipe", "pipe", "pipe"],
    });
    running.add(child);
    let out = "";
    let err = "";
    const wakers = new Set<() => void>();
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      for (const wake of wakers) wake();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) =>
      child.once("close", (code) => {
        running.delete(child);
        for (const wake of wakers) wake();
        resolve(code);
      }),
    );
    return {
      child,
      stdout: () => out,
      stderr: () => err,
      exited,
      waitFor: (pattern, timeoutMs = 15_000) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            wakers.delete(check);
            reject(new Error(`no ${pattern} in ${JSON.stringify(out)} (stderr ${JSON.stringify(err)})`));
          }, timeoutMs);
          const check = () => {
            const match = out.match(pattern);
            if (!match) return;
            clearTimeout(timer);
            wakers.delete(check);
            resolve(match);
          };
          wakers.add(check);
          check();
        }),
    };
  };

  /** Runs kubectl to completion with `input` as its stdin. */
  const run = async (protocol: Protocol, args: string[], input: string | Buffer = "") => {
    const kubectl = start(protocol, args);
    kubectl.child.stdin?.end(input);
    const code = await kubectl.exited;
    return { code, stdout: kubectl.stdout(), stderr: kubectl.stderr() };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kubelet-standin-kubectl-"));
    cp = await startTestControlPlane("kubelet-kubectl");
    node = await playNode({ kubeconfigPath: cp.kubeconfigPath, nodeName: uniqueName("played-node") });
    echoServer = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echoServer.listen(0, "127.0.0.1", resolve));
    const echoPort = (echoServer.address() as { port: number }).port;
    pod = await playPod({
      kubeconfigPath: cp.kubeconfigPath,
      kubelet: node.kubelet,
      nodeName: node.nodeName,
      namespace,
      name: "played",
      containers: ["main", "sidecar"],
      ports: { 7000: echoPort },
    });
  });

  after(async () => {
    for (const child of running) child.kill();
    await pod?.stop();
    await node?.stop();
    echoServer?.close();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const protocol of ["websocket", "spdy"] as const) {
    describe(`over ${protocol}`, () => {
      it("execs a command and reports its exit code", async () => {
        const echo = await run(protocol, ["exec", "played", "--", "echo", "hello", "world"]);
        assert.equal(echo.stdout, "hello world\n", echo.stderr);
        assert.equal(echo.code, 0);
        const missing = await run(protocol, ["exec", "played", "-c", "sidecar", "--", "test", "-d", "/nope"]);
        assert.equal(missing.code, 1, missing.stderr);
        assert.match(missing.stderr, /command terminated with exit code 1/);
      });

      it("streams stdin and output well past the 64 KiB flow-control window", async () => {
        const input = `${randomBytes(300 * 1024).toString("base64")}\n`;
        const cat = await run(protocol, ["exec", "-i", "played", "--", "cat"], input);
        assert.equal(cat.code, 0, cat.stderr);
        assert.equal(cat.stdout.length, input.length);
        assert.equal(cat.stdout, input);
      });

      it("keeps a quiet interactive exec open until input comes, then until stdin closes", async () => {
        const cat = start(protocol, ["exec", "-i", "played", "--", "cat"]);
        await new Promise((resolve) => setTimeout(resolve, 10_000));
        assert.equal(cat.child.exitCode, null, cat.stderr());
        cat.child.stdin?.write("late input\n");
        await cat.waitFor(/late input\n/);
        cat.child.stdin?.end("last line\n");
        assert.equal(await cat.exited, 0, cat.stderr());
        assert.equal(cat.stdout(), "late input\nlast line\n");
      });

      it("follows a container's log as lines are appended", async () => {
        const marker = randomBytes(4).toString("hex");
        pod.log(`before ${marker}`);
        const follow = start(protocol, ["logs", "-f", "played", "-c", "main"]);
        await follow.waitFor(new RegExp(`before ${marker}\n`));
        pod.log(`after ${marker}`);
        await follow.waitFor(new RegExp(`after ${marker}\n`), 5_000);
        follow.child.kill();
        const tail = await run(protocol, ["logs", "played", "--tail=1"]);
        assert.equal(tail.stdout, `after ${marker}\n`, tail.stderr);
      });

      it("attaches to the container's stdin and stdout", async () => {
        const attach = start(protocol, ["attach", "-i", "played", "-c", "sidecar"]);
        const typed = `typed ${randomBytes(4).toString("hex")}`;
        // Only output written after the attach began reaches it: keep typing until it shows.
        const typing = setInterval(() => attach.child.stdin?.write(`${typed}\n`), 500);
        try {
          await attach.waitFor(new RegExp(typed));
        } finally {
          clearInterval(typing);
        }
        attach.child.stdin?.end();
        assert.equal(await attach.exited, 0, attach.stderr());
        assert.ok(pod.logs("sidecar").includes(typed));
      });

      it("forwards a local port to the pod's port", async () => {
        const forward = start(protocol, ["port-forward", "pod/played", ":7000"]);
        const [, local] = (await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+) -> 7000/)) ?? [];
        for (const size of [5, 200 * 1024]) {
          const socket = connect({ host: "127.0.0.1", port: Number(local) });
          const sent = randomBytes(size);
          const chunks: Buffer[] = [];
          socket.on("data", (chunk: Buffer) => chunks.push(chunk));
          socket.write(sent);
          while (Buffer.concat(chunks).length < size) await once(socket, "data");
          assert.ok(Buffer.concat(chunks).equals(sent));
          socket.end();
          await once(socket, "close");
        }
        forward.child.kill();
        await forward.exited;
      });

      it("copies files into the pod and out of it", async () => {
        const local = join(dir, protocol);
        await mkdir(join(local, "up", "nested"), { recursive: true });
        await writeFile(join(local, "up", "nested", "file.txt"), `uploaded over ${protocol}\n`);
        // --no-preserve makes kubectl run `tar --no-same-permissions --no-same-owner -xmf - -C /tmp`.
        const preserve = protocol === "spdy" ? ["--no-preserve"] : [];
        const up = await run(protocol, ["cp", ...preserve, join(local, "up"), `played:/tmp/${protocol}-up`]);
        assert.equal(up.code, 0, up.stderr);
        assert.equal(
          await readFile(join(pod.filesDir, "tmp", `${protocol}-up`, "nested", "file.txt"), "utf8"),
          `uploaded over ${protocol}\n`,
        );

        await mkdir(join(pod.filesDir, "data"), { recursive: true });
        const big = randomBytes(256 * 1024);
        await writeFile(join(pod.filesDir, "data", `${protocol}.bin`), big);
        const down = await run(protocol, ["cp", `played:/data/${protocol}.bin`, join(local, "down.bin")]);
        assert.equal(down.code, 0, down.stderr);
        assert.ok((await readFile(join(local, "down.bin"))).equals(big));
      });
    });
  }

  it("was reached only with kube-apiserver's SPDY upgrades and log requests", () => {
    assert.deepEqual(node.kubelet.rejected, []);
    const commands = node.kubelet.execs.map((e) => e.command.join(" "));
    assert.ok(
      commands.includes("tar --no-same-permissions --no-same-owner -xmf - -C /tmp"),
      commands.join("\n"),
    );
    assert.ok(commands.includes("tar -xmf - -C /tmp"));
    assert.ok(commands.includes("tar cf - /data/spdy.bin"));
  });
});
