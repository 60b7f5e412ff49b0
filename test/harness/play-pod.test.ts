// A played pod without a cluster: the Pod it writes, and what its handlers in the stand-in
// kubelet do (test/integration/kubelet-standin-kubectl.test.ts drives them with real kubectl).
import assert from "node:assert/strict";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { RequestOptions, RestClient } from "../../kube/rest.ts";
import type { ExecIO, KubeletStandIn, PodHandlers } from "./kubelet-standin.ts";
import { type PlayedPod, playPod } from "./play-pod.ts";

/** A Writable that keeps what it is given. */
function sink(): Writable & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  return Object.assign(out, { bytes: () => Buffer.concat(chunks) });
}

function io(stdin?: Readable, signal = new AbortController().signal) {
  const stdout = sink();
  const stderr = sink();
  const streams: ExecIO = { stdin, stdout, stderr, tty: false, signal };
  return { io: streams, stdout, stderr };
}

describe("playPod", () => {
  const calls: RequestOptions[] = [];
  const client: RestClient = {
    async request<T>(options: RequestOptions): Promise<T> {
      calls.push(options);
      return {} as T;
    },
    stream: () => Promise.reject(new Error("not used")),
  };
  const added = new Map<string, PodHandlers>();
  const kubelet: KubeletStandIn = {
    port: 10250,
    execs: [],
    rejected: [],
    addPod: (ns, pod, handlers) => void added.set(`${ns}/${pod}`, handlers),
    removePod: (ns, pod) => void added.delete(`${ns}/${pod}`),
    close: async () => undefined,
  };
  const echo = createServer((socket) => socket.pipe(socket));
  let pod: PlayedPod;
  let handlers: PodHandlers;
  const request = (command: string[], container = "main") => ({
    namespace: "ns",
    pod: "p",
    container,
    command,
  });

  before(async () => {
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    pod = await playPod({
      client,
      kubelet,
      nodeName: "node-1",
      namespace: "ns",
      name: "p",
      containers: ["main", "side"],
      ports: { 8080: (echo.address() as AddressInfo).port },
    });
    handlers = added.get("ns/p")!;
  });

  after(() => {
    echo.close();
  });

  it("creates the Pod bound to the node and reports it Running with a pod IP", () => {
    const [create, status] = calls;
    assert.ok(create && status);
    assert.equal(create.method, "POST");
    assert.equal(create.path, "/api/v1/namespaces/ns/pods");
    const spec = (create.body as { spec: Record<string, unknown> }).spec;
    assert.equal(spec.nodeName, "node-1");
    assert.deepEqual(
      (spec.containers as { name: string; ports?: unknown }[]).map((c) => [c.name, c.ports]),
      [
        ["main", [{ containerPort: 8080, protocol: "TCP" }]],
        ["side", undefined],
      ],
    );
    assert.equal(status.path, "/api/v1/namespaces/ns/pods/p/status");
    const reported = (status.body as { status: Record<string, unknown> }).status;
    assert.equal(reported.phase, "Running");
    assert.equal(reported.podIP, pod.podIP);
    assert.match(pod.podIP, /^10\.244\.\d+\.\d+$/);
    assert.deepEqual(
      (reported.containerStatuses as { name: string; ready: boolean }[]).map((c) => [c.name, c.ready]),
      [
        ["main", true],
        ["side", true],
      ],
    );
    assert.ok(handlers.exec && handlers.attach && handlers.logs && handlers.portForward);
  });

  it("runs echo, cat, test and reports an unknown command as not found", async () => {
    const run = async (command: string[], stdin?: Readable) => {
      const streams = io(stdin);
      const result = await handlers.exec!(request(command), streams.io);
      return { ...result, out: streams.stdout.bytes().toString(), err: streams.stderr.bytes().toString() };
    };
    assert.deepEqual(await run(["echo", "a", "b"]), { stdout: "a b\n", out: "", err: "" });
    assert.equal((await run(["cat"], Readable.from([Buffer.from("in"), Buffer.from("put")]))).out, "input");
    await writeFile(join(pod.filesDir, "tmp", "f"), "file text");
    assert.equal((await run(["cat", "/tmp/f"])).out, "file text");
    assert.equal((await run(["test", "-d", "/tmp"])).exitCode, 0);
    assert.equal((await run(["test", "-d", "/tmp/f"])).exitCode, 1);
    assert.equal((await run(["test", "-f", "/tmp/f"])).exitCode, 0);
    assert.deepEqual(await run(["ls"]), {
      stderr: "ls: executable file not found in $PATH\n",
      exitCode: 127,
      out: "",
      err: "",
    });
    await assert.rejects(
      async () => handlers.exec!(request(["echo"], "nope"), io().io),
      /container nope is not valid for pod p/,
    );
  });

  it("keeps a quiet cat running until the connection ends", async () => {
    const stdin = new PassThrough();
    const aborted = new AbortController();
    const streams = io(stdin, aborted.signal);
    let done = false;
    const running = Promise.resolve(handlers.exec!(request(["cat"]), streams.io)).then(() => {
      done = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(done, false);
    aborted.abort();
    await running;
  });

  it("tars pod paths out of and into the pod's files as kubectl cp does", async () => {
    await mkdir(join(pod.filesDir, "data", "sub"), { recursive: true });
    await writeFile(join(pod.filesDir, "data", "sub", "x.txt"), "x");
    const out = io();
    assert.equal((await handlers.exec!(request(["tar", "cf", "-", "/data"]), out.io)).exitCode, 0);
    const archive = out.stdout.bytes();
    const extract = io(Readable.from([archive]));
    const result = await handlers.exec!(
      request(["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "/tmp"]),
      extract.io,
    );
    assert.equal(result.exitCode, 0, extract.stderr.bytes().toString());
    assert.equal(await readFile(join(pod.filesDir, "tmp", "data", "sub", "x.txt"), "utf8"), "x");
  });

  it("serves each container's log, with a tail, timestamps and following", async () => {
    pod.log("one");
    pod.log("two");
    pod.log("side line", "side");
    const logs = async (options: { tailLines?: number; timestamps?: boolean; container?: string }) => {
      const out = sink();
      const req = {
        ...request([], options.container ?? "main"),
        follow: false,
        timestamps: false,
        ...options,
      };
      await handlers.logs!({ tailLines: undefined, ...req }, out, new AbortController().signal);
      return out.bytes().toString();
    };
    assert.equal(await logs({}), "one\ntwo\n");
    assert.equal(await logs({ tailLines: 1 }), "two\n");
    assert.equal(await logs({ tailLines: 0 }), "");
    assert.equal(await logs({ container: "side" }), "side line\n");
    assert.match(await logs({ tailLines: 1, timestamps: true }), /^\d{4}-\d\d-\d\dT[\d:.]+Z two\n$/);

    const out = sink();
    const gone = new AbortController();
    const following = handlers.logs!(
      { ...request([]), follow: true, tailLines: 0, timestamps: false },
      out,
      gone.signal,
    );
    pod.log("three");
    assert.equal(out.bytes().toString(), "three\n");
    gone.abort();
    await following;
    assert.deepEqual(pod.logs(), ["one", "two", "three"]);
  });

  it("attaches to the container's stdout and echoes its stdin until stdin closes", async () => {
    const stdin = new PassThrough();
    const streams = io(stdin);
    const attached = Promise.resolve(handlers.attach!(request([], "side"), streams.io));
    await new Promise((resolve) => setImmediate(resolve));
    pod.log("from the test", "side");
    stdin.end("typed\n");
    assert.deepEqual(await attached, {});
    assert.equal(streams.stdout.bytes().toString(), "from the test\ntyped\n");
    assert.deepEqual(pod.logs("side").slice(-2), ["from the test", "typed"]);
  });

  it("forwards a declared port to the test's server and refuses any other", async () => {
    const socket = await handlers.portForward!(8080);
    socket.end("round trip");
    assert.equal(Buffer.concat(await socket.toArray()).toString(), "round trip");
    await assert.rejects(async () => handlers.portForward!(9090), /nothing listens on port 9090 in pod p/);
  });

  it("stops: unregisters its handlers, deletes the Pod at once and removes its files", async () => {
    await pod.stop();
    assert.equal(added.has("ns/p"), false);
    assert.deepEqual(calls.at(-1), {
      method: "DELETE",
      path: "/api/v1/namespaces/ns/pods/p",
      query: { gracePeriodSeconds: "0" },
    });
    await assert.rejects(stat(pod.filesDir), { code: "ENOENT" });
  });
});
