// The stand-in kubelet without a cluster: its SPDY/3.1 codec, and its endpoints driven by a
// tiny SPDY client (and an HTTPS client for logs) playing kube-apiserver (test/integration/kubecertagent.test.ts drives it
// through the real kube-apiserver).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, type TLSSocket } from "node:tls";
import { newCA, newCert } from "../../hack/pki.ts";
import { ApiError, type RequestOptions, type RestClient } from "../../kube/rest.ts";
import {
  apiServerKubeletClientCN,
  type ControlFrame,
  decodeHeaders,
  type ExecHandler,
  type ExecRequest,
  type ExecResult,
  encodeControlFrame,
  encodeDataFrame,
  encodeHeaders,
  type Frame,
  FrameReader,
  flagFin,
  frameType,
  HeaderCodec,
  idAndStatus,
  initialWindow,
  type KubeletStandIn,
  parseSynStream,
  refusedStream,
  registerNode,
  spdyDictionary,
  startKubeletStandIn,
  synReplyPayload,
  synStreamPayload,
  windowUpdatePayload,
} from "./kubelet-standin.ts";

interface ClientIdentity {
  cert: string;
  key: string;
}

/** The client half of one exec connection, as kube-apiserver would drive it. */
class SpdyClient {
  readonly frames: Frame[] = [];
  /** The streamtype of each stream the stand-in answered with SYN_REPLY, decoded in order. */
  readonly replies = new Map<number, Record<string, string>>();
  readonly closed: Promise<void>;
  readonly #socket: TLSSocket;
  readonly #codec = new HeaderCodec();
  readonly #reader = new FrameReader();
  #nextStreamId = 1;
  #received: Promise<void> = Promise.resolve();
  #waiters: (() => void)[] = [];

  constructor(socket: TLSSocket, rest: Buffer) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => this.#receive(chunk));
    this.#receive(rest);
  }

  #receive(chunk: Buffer): void {
    for (const frame of this.#reader.push(chunk)) {
      this.#received = this.#received.then(async () => {
        if (frame.control && frame.type === frameType.synReply) {
          const id = frame.data.readUInt32BE(0);
          this.replies.set(id, await this.#codec.decompress(frame.data.subarray(4)));
        }
        this.frames.push(frame);
        for (const wake of this.#waiters.splice(0)) wake();
      });
    }
  }

  /** Resolves with the first received frame that matches, waiting for it if need be. */
  async frame(matches: (f: Frame) => boolean): Promise<Frame> {
    for (;;) {
      const found = this.frames.find(matches);
      if (found) return found;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async open(streamType: string, extra: Record<string, string> = {}): Promise<number> {
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    const headers = await this.#codec.compress({ streamType, ...extra });
    this.send(encodeControlFrame(frameType.synStream, 0, synStreamPayload(id, headers)));
    return id;
  }

  send(frame: Buffer): void {
    this.#socket.write(frame);
  }

  /** Everything the stand-in wrote on a stream, once it finished the stream. */
  async streamText(id: number): Promise<string> {
    return (await this.streamBytes(id)).toString("utf8");
  }

  async streamBytes(id: number): Promise<Buffer> {
    await this.frame((f) => !f.control && f.streamId === id && (f.flags & flagFin) !== 0);
    return this.received(id);
  }

  /** What the stand-in wrote on a stream so far. */
  received(id: number): Buffer {
    return Buffer.concat(this.frames.filter((f) => !f.control && f.streamId === id).map((f) => f.data));
  }

  close(): void {
    this.#codec.close();
    this.#socket.destroy();
  }
}

/** Sends the upgrade request; resolves with the status line, headers and (on 101) a client. */
async function upgrade(
  port: number,
  identity: ClientIdentity | undefined,
  path: string,
  headers: Record<string, string> = {
    Upgrade: "SPDY/3.1",
    "X-Stream-Protocol-Version": "v4.channel.k8s.io",
  },
): Promise<{ head: string; body: string; client?: SpdyClient }> {
  const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...identity });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", resolve);
    socket.once("error", reject);
  });
  const lines = [`POST ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: Upgrade"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  let buffered = Buffer.alloc(0);
  for (;;) {
    const end = buffered.indexOf("\r\n\r\n");
    if (end >= 0) {
      const head = buffered.subarray(0, end).toString("latin1");
      const rest = buffered.subarray(end + 4);
      if (head.startsWith("HTTP/1.1 101 ")) return { head, body: "", client: new SpdyClient(socket, rest) };
      const chunks: Buffer[] = [rest];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      await new Promise((resolve) => socket.once("close", resolve));
      return { head, body: Buffer.concat(chunks).toString("utf8") };
    }
    const chunk = await new Promise<Buffer>((resolve, reject) => {
      socket.once("data", resolve);
      socket.once("close", () => reject(new Error(`connection closed after ${buffered.length} bytes`)));
    });
    buffered = Buffer.concat([buffered, chunk]);
  }
}

const isControl = (type: number, id?: number) => (f: Frame) =>
  f.control && f.type === type && (id === undefined || f.data.readUInt32BE(0) === id);

describe("the stand-in kubelet's SPDY/3.1 codec", () => {
  it("primes zlib with the SPDY/3 dictionary (the bytes of moby/spdystream's headerDictionary)", () => {
    assert.equal(spdyDictionary.length, 1423);
    assert.equal(
      createHash("sha256").update(spdyDictionary).digest("hex"),
      "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02",
    );
  });

  it("frames control and data frames, and reads them back however the bytes are split", () => {
    const wire = Buffer.concat([
      encodeControlFrame(frameType.ping, 0, Buffer.from([0, 0, 0, 7])),
      encodeDataFrame(5, flagFin, Buffer.from("hello")),
      encodeControlFrame(frameType.goAway, 0, idAndStatus(5, 0)),
    ]);
    assert.equal(wire.subarray(0, 8).toString("hex"), "8003000600000004");
    assert.equal(wire.subarray(12, 20).toString("hex"), "0000000501000005");
    for (const step of [1, 3, 7, wire.length]) {
      const reader = new FrameReader();
      const frames: Frame[] = [];
      for (let i = 0; i < wire.length; i += step) frames.push(...reader.push(wire.subarray(i, i + step)));
      assert.deepEqual(frames, [
        { control: true, type: frameType.ping, flags: 0, data: Buffer.from([0, 0, 0, 7]) },
        { control: false, streamId: 5, flags: flagFin, data: Buffer.from("hello") },
        { control: true, type: frameType.goAway, flags: 0, data: idAndStatus(5, 0) },
      ]);
    }
  });

  it("refuses a control frame of another SPDY version", () => {
    const v2 = encodeControlFrame(frameType.ping, 0, Buffer.alloc(4));
    v2.writeUInt16BE(0x8002, 0);
    assert.throws(() => new FrameReader().push(v2), /unsupported SPDY version 2/);
  });

  it("encodes header blocks as length-prefixed pairs and parses SYN_STREAM and SYN_REPLY", () => {
    const block = encodeHeaders({ streamType: "error" });
    assert.equal(
      block.toString("hex"),
      `00000001${"0000000a"}${Buffer.from("streamType").toString("hex")}${"00000005"}${Buffer.from("error").toString("hex")}`,
    );
    assert.deepEqual(decodeHeaders(block), { streamtype: "error" });
    assert.deepEqual(parseSynStream(synStreamPayload(3, block)), { streamId: 3, headerBlock: block });
    assert.deepEqual(synReplyPayload(3, block).subarray(4), block);
  });

  it("keeps one compression context per direction across header blocks", async () => {
    const sender = new HeaderCodec();
    const receiver = new HeaderCodec();
    try {
      const sent: Record<string, string>[] = [
        { streamtype: "stdout" },
        { streamtype: "stdout" },
        { streamtype: "error", extra: "x" },
      ];
      const blocks = await Promise.all(sent.map((h) => sender.compress(h)));
      // The second, identical block is mostly a back-reference into the first.
      assert.ok(blocks[1]!.length < blocks[0]!.length);
      const received = [];
      for (const block of blocks) received.push(await receiver.decompress(block));
      assert.deepEqual(received, sent);
    } finally {
      sender.close();
      receiver.close();
    }
  });
});

describe("the stand-in kubelet's endpoints (the test plays kube-apiserver)", () => {
  let dir: string;
  let apiServer: ClientIdentity;
  let wrongCN: ClientIdentity;
  let otherCA: ClientIdentity;
  let kubelet: KubeletStandIn;
  const ran: ExecRequest[] = [];
  const results = new Map<string, ExecResult>();
  /** Commands that read stdin or write as they run, by name. */
  const programs = new Map<string, ExecHandler>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kubelet-standin-"));
    const ca = await newCA(dir, "ca", "kubernetes", "ec");
    const other = await newCA(dir, "other", "some other CA", "ec");
    const read = async (files: { cert: string; key: string }) => ({
      cert: await readFile(files.cert, "utf8"),
      key: await readFile(files.key, "utf8"),
    });
    apiServer = await read(
      await newCert(dir, ca, {
        name: "apiserver-kubelet-client",
        cn: apiServerKubeletClientCN,
        usage: "client",
      }),
    );
    wrongCN = await read(await newCert(dir, ca, { name: "someone", cn: "someone", usage: "client" }));
    otherCA = await read(
      await newCert(dir, other, { name: "impostor", cn: apiServerKubeletClientCN, usage: "client" }),
    );
    kubelet = await startKubeletStandIn({
      clientCAPEM: await readFile(ca.cert, "utf8"),
      streamTimeoutMs: 1_000,
      exec(request, io) {
        const program = programs.get(request.command[0] ?? "");
        if (program) return program(request, io);
        ran.push(request);
        const result = results.get(request.command[0] ?? "");
        if (!result) throw new Error(`no such command ${request.command[0]}`);
        return result;
      },
    });
  });

  after(async () => {
    await kubelet?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const execPath = (command: string[], query = "output=1&error=1") =>
    `/exec/ns-1/pod-1/sleeper?${command.map((c) => `command=${encodeURIComponent(c)}`).join("&")}&${query}`;

  it("runs the command once error, stdout and stderr are open, answering pings meanwhile", async () => {
    results.set("print", { stdout: '{"tls.crt":"Y2VydA=="}', stderr: "warning\n" });
    const { head, client } = await upgrade(kubelet.port, apiServer, execPath(["print", "--all"]));
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.match(head, /X-Stream-Protocol-Version: v4\.channel\.k8s\.io/i);
    assert.ok(client);
    try {
      const error = await client.open("error");
      const stdout = await client.open("stdout");
      client.send(encodeControlFrame(frameType.ping, 0, Buffer.from([0, 0, 0, 1])));
      const pong = (await client.frame(isControl(frameType.ping))) as ControlFrame;
      assert.deepEqual(pong.data, Buffer.from([0, 0, 0, 1]));
      await client.frame(isControl(frameType.synReply, stdout));
      assert.equal(ran.length, 0, "the command must wait for the stderr stream");
      const stderr = await client.open("stderr");

      assert.equal(await client.streamText(stdout), '{"tls.crt":"Y2VydA=="}');
      assert.equal(await client.streamText(stderr), "warning\n");
      assert.deepEqual(JSON.parse(await client.streamText(error)), { metadata: {}, status: "Success" });
      assert.deepEqual([...client.replies.keys()], [error, stdout, stderr]);
      assert.deepEqual(ran, [
        { namespace: "ns-1", pod: "pod-1", container: "sleeper", command: ["print", "--all"] },
      ]);
      assert.deepEqual(kubelet.execs.at(-1), ran.at(-1));

      // kube-apiserver hangs up with GOAWAY once it has the Status.
      client.send(encodeControlFrame(frameType.goAway, 0, idAndStatus(0, 0)));
      await client.closed;
    } finally {
      client.close();
    }
  });

  it("reports a non-zero exit the way the kubelet does, with the exit code as the cause", async () => {
    results.set("false", { exitCode: 2 });
    const { client } = await upgrade(kubelet.port, apiServer, execPath(["false"], "output=1"));
    assert.ok(client);
    try {
      const error = await client.open("error");
      const stdout = await client.open("stdout");
      assert.equal(await client.streamText(stdout), "");
      assert.deepEqual(JSON.parse(await client.streamText(error)), {
        metadata: {},
        status: "Failure",
        message: "command terminated with non-zero exit code: exit status 2",
        reason: "NonZeroExitCode",
        details: { causes: [{ reason: "ExitCode", message: "2" }] },
      });
    } finally {
      client.close();
    }
  });

  it("reports a handler that throws as an internal error", async () => {
    const { client } = await upgrade(kubelet.port, apiServer, execPath(["missing"], ""));
    assert.ok(client);
    try {
      const error = await client.open("error");
      assert.deepEqual(JSON.parse(await client.streamText(error)), {
        metadata: {},
        status: "Failure",
        message: "Internal error occurred: no such command missing",
        reason: "InternalError",
        code: 500,
      });
    } finally {
      client.close();
    }
  });

  it("resets a stream of an unknown type", async () => {
    const { client } = await upgrade(kubelet.port, apiServer, execPath(["print"]));
    assert.ok(client);
    try {
      const odd = await client.open("video");
      const reset = (await client.frame(isControl(frameType.rstStream, odd))) as ControlFrame;
      assert.deepEqual(reset.data, idAndStatus(odd, refusedStream));
    } finally {
      client.close();
    }
  });

  it("hangs up with GOAWAY when the requested streams do not all open in time", async () => {
    const { client } = await upgrade(kubelet.port, apiServer, execPath(["print"]));
    assert.ok(client);
    try {
      const error = await client.open("error");
      const goAway = (await client.frame(isControl(frameType.goAway))) as ControlFrame;
      assert.deepEqual(goAway.data, idAndStatus(error, 0));
      await client.closed;
    } finally {
      client.close();
    }
  });

  it("answers only kube-apiserver's kubelet client certificate, signed by the cluster CA", async () => {
    const before = kubelet.execs.length;
    for (const identity of [undefined, wrongCN, otherCA]) {
      const { head, body } = await upgrade(kubelet.port, identity, execPath(["print"]));
      assert.match(head, /^HTTP\/1\.1 401 /);
      assert.equal(body, kubelet.rejected.at(-1));
    }
    assert.equal(kubelet.execs.length, before);
    assert.equal(kubelet.rejected.length, 3);
    assert.match(kubelet.rejected[0]!, /not verified/);
    assert.match(kubelet.rejected[1]!, /CN someone is not the API server's/);
    assert.match(kubelet.rejected[2]!, /not verified/);
  });

  it("serves only SPDY/3.1 upgrades of /exec with the v4 stream protocol", async () => {
    const before = kubelet.rejected.length;
    const notExec = await upgrade(kubelet.port, apiServer, "/attach/ns-1/pod-1/sleeper?output=1");
    assert.match(notExec.head, /^HTTP\/1\.1 404 /);
    const websocket = await upgrade(kubelet.port, apiServer, execPath(["print"]), {
      Upgrade: "websocket",
      "X-Stream-Protocol-Version": "v4.channel.k8s.io",
    });
    assert.match(websocket.head, /^HTTP\/1\.1 400 /);
    const v1 = await upgrade(kubelet.port, apiServer, execPath(["print"]), {
      Upgrade: "SPDY/3.1",
      "X-Stream-Protocol-Version": "channel.k8s.io",
    });
    assert.match(v1.head, /^HTTP\/1\.1 400 /);
    assert.equal(kubelet.rejected.length, before + 3);
  });

  it("streams stdin to a running command, and output past the 64 KiB window to a peer without flow control", async () => {
    programs.set("cat", async (_request, io) => {
      for await (const chunk of io.stdin ?? []) io.stdout.write(chunk);
      return {};
    });
    const { client } = await upgrade(
      kubelet.port,
      apiServer,
      "/exec/ns-1/cat/c?command=cat&input=1&output=1",
    );
    assert.ok(client);
    try {
      const error = await client.open("error");
      const stdin = await client.open("stdin");
      const stdout = await client.open("stdout");
      await client.frame(isControl(frameType.synReply, stdout));
      const input = randomBytes(200 * 1024);
      for (let i = 0; i < input.length; i += 16_384) {
        client.send(encodeDataFrame(stdin, 0, input.subarray(i, i + 16_384)));
      }
      client.send(encodeDataFrame(stdin, flagFin, Buffer.alloc(0)));
      assert.ok((await client.streamBytes(stdout)).equals(input));
      assert.deepEqual(JSON.parse(await client.streamText(error)), { metadata: {}, status: "Success" });
      // Every byte of stdin was given back to the stream's and the session's windows.
      const given = (id: number) =>
        client.frames
          .filter(isControl(frameType.windowUpdate, id))
          .reduce((sum, f) => sum + (f as ControlFrame).data.readUInt32BE(4), 0);
      assert.equal(given(stdin), input.length);
      assert.equal(given(0), input.length);
    } finally {
      client.close();
    }
  });

  it("stops at a closed window of a peer that sends WINDOW_UPDATE, and goes on when it opens", async () => {
    const output = randomBytes(100 * 1024);
    programs.set("big", (_request, io) => {
      io.stdout.write(output);
      return {};
    });
    const { client } = await upgrade(kubelet.port, apiServer, "/exec/ns-1/big/c?command=big&output=1");
    assert.ok(client);
    try {
      const error = await client.open("error");
      client.send(encodeControlFrame(frameType.windowUpdate, 0, windowUpdatePayload(0, 1 << 20)));
      const stdout = await client.open("stdout");
      await client.frame(isControl(frameType.synReply, stdout));
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.equal(client.received(stdout).length, initialWindow);
      client.send(encodeControlFrame(frameType.windowUpdate, 0, windowUpdatePayload(stdout, 1 << 20)));
      assert.ok((await client.streamBytes(stdout)).equals(output));
      assert.deepEqual(JSON.parse(await client.streamText(error)), { metadata: {}, status: "Success" });
    } finally {
      client.close();
    }
  });
});

describe("registerNode", () => {
  /** Records requests; POST answers as the API server does for a Node that already exists. */
  function fakeClient(nodeExists: boolean): { client: RestClient; calls: RequestOptions[] } {
    const calls: RequestOptions[] = [];
    const client: RestClient = {
      async request<T>(options: RequestOptions): Promise<T> {
        calls.push(options);
        if (options.method === "POST" && nodeExists) {
          throw new ApiError(409, 'nodes "n" already exists', { reason: "AlreadyExists", code: 409 });
        }
        return {} as T;
      },
      stream: () => Promise.reject(new Error("not used")),
    };
    return { client, calls };
  }

  const statusPatch: RequestOptions = {
    method: "PATCH",
    path: "/api/v1/nodes/n/status",
    contentType: "application/merge-patch+json",
    body: {
      status: {
        addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
        daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      },
    },
  };

  it("creates a missing Node, then points its status at 127.0.0.1 and the stand-in's port", async () => {
    const { client, calls } = fakeClient(false);
    await registerNode(client, "n", 10250, { role: "worker" });
    assert.deepEqual(calls, [
      {
        method: "POST",
        path: "/api/v1/nodes",
        body: { apiVersion: "v1", kind: "Node", metadata: { name: "n", labels: { role: "worker" } } },
      },
      statusPatch,
    ]);
  });

  it("patches the status of a Node that already exists", async () => {
    const { client, calls } = fakeClient(true);
    await registerNode(client, "n", 10250);
    assert.deepEqual(calls.at(-1), statusPatch);
  });
});
