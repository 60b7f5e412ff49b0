import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { ClusterAccess } from "./kubeconfig.ts";
import { execInPod, execPath, FrameReader } from "./podexec.ts";

/** A server frame: unmasked, as RFC 6455 wants from a server. */
function serverFrame(op: number, payload: Buffer, fin = true): Buffer {
  const length = payload.length;
  const header =
    length < 126
      ? Buffer.from([(fin ? 0x80 : 0) | op, length])
      : length < 65536
        ? Buffer.from([(fin ? 0x80 : 0) | op, 126, length >> 8, length & 0xff])
        : Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | op, 127]), Buffer.alloc(8)]);
  if (length >= 65536) header.writeBigUInt64BE(BigInt(length), 2);
  return Buffer.concat([header, payload]);
}
const onChannel = (ch: number, text: string) => Buffer.concat([Buffer.from([ch]), Buffer.from(text)]);

type Script = (socket: Duplex, frames: FrameReader, req: IncomingMessage) => void;

describe("execInPod", () => {
  let server: Server;
  let script: Script;
  let protocol = "v5.channel.k8s.io";
  let refuse = false;
  const sockets = new Set<Duplex>();
  const seen: { url: string; protocols: string; authorization: string }[] = [];
  let access: ClusterAccess;

  before(async () => {
    server = createServer();
    server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
      // Upgraded sockets are the server's no more: closed here in after().
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
      socket.resume();
      if (refuse) {
        const body = JSON.stringify({
          kind: "Status",
          status: "Failure",
          message: 'pods "p" is forbidden',
          code: 403,
        });
        socket.end(
          "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n" +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
      seen.push({
        url: req.url ?? "",
        protocols: String(req.headers["sec-websocket-protocol"]),
        authorization: String(req.headers.authorization),
      });
      const accept = createHash("sha1")
        .update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
        .digest("base64");
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
      );
      script(socket, new FrameReader(), req);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    access = {
      getCurrentCluster: () => ({ server: `http://127.0.0.1:${port}/`, skipTLSVerify: false }),
      applyToHTTPSOptions: async (options) => {
        options.headers = { ...options.headers, Authorization: "Bearer t" };
      },
    };
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const call = (signal = new AbortController().signal) =>
    execInPod(access, { namespace: "ns", pod: "p", container: "c", command: ["print", "-x"], signal });

  it("collects stdout and stderr, split over fragments, answers a ping, and returns the Status", async () => {
    let pong: Buffer | undefined;
    let closeAnswered = false;
    script = (socket, frames) => {
      socket.on("data", (chunk: Buffer) => {
        for (const f of frames.push(chunk)) {
          if (f.op === 10) pong = f.payload;
          if (f.op === 8) {
            closeAnswered = true;
            socket.end();
          }
        }
      });
      const big = "k".repeat(70_000);
      const stdout = onChannel(1, `{"key":"${big}"}`);
      socket.write(
        Buffer.concat([
          serverFrame(2, Buffer.from([1])), // the empty first message of each channel
          serverFrame(9, Buffer.from("hi")),
          serverFrame(2, stdout.subarray(0, 10), false),
          serverFrame(0, stdout.subarray(10)),
          serverFrame(2, onChannel(2, "warn\n")),
          serverFrame(2, onChannel(3, '{"metadata":{},"status":"Success"}')),
        ]),
      );
      setTimeout(() => socket.write(serverFrame(8, Buffer.from([0x03, 0xe8]))), 10);
    };
    const result = await call();
    assert.equal(result.stdout, `{"key":"${"k".repeat(70_000)}"}`);
    assert.equal(result.stderr, "warn\n");
    assert.deepEqual(result.status, { metadata: {}, status: "Success" });
    assert.equal(pong?.toString(), "hi");
    assert.equal(closeAnswered, true);
    const last = seen.at(-1)!;
    assert.equal(last.url, execPath({ namespace: "ns", pod: "p", container: "c", command: ["print", "-x"] }));
    assert.equal(
      last.url,
      "/api/v1/namespaces/ns/pods/p/exec?command=print&command=-x&container=c&stdout=true&stderr=true",
    );
    assert.equal(last.protocols, "v5.channel.k8s.io, v4.channel.k8s.io");
    assert.equal(last.authorization, "Bearer t");
  });

  it("returns a failed command's Status", async () => {
    script = (socket) => {
      socket.on("data", () => socket.end());
      const status = { status: "Failure", reason: "NonZeroExitCode", message: "exit code 1" };
      socket.write(serverFrame(2, onChannel(3, JSON.stringify(status))));
      socket.write(serverFrame(8, Buffer.alloc(0)));
    };
    assert.deepEqual((await call()).status, {
      status: "Failure",
      reason: "NonZeroExitCode",
      message: "exit code 1",
    });
  });

  it("fails when the connection drops before the server closes the websocket", async () => {
    script = (socket) => socket.end(serverFrame(2, onChannel(1, "partial")));
    await assert.rejects(call(), /the connection closed before the server closed the websocket/);
  });

  it("fails with the API server's Status when it refuses the upgrade", async () => {
    refuse = true;
    try {
      await assert.rejects(call(), (err: Error & { code?: number }) => {
        assert.equal(err.code, 403);
        assert.equal(err.message, 'exec into ns/p: pods "p" is forbidden (HTTP 403)');
        return true;
      });
    } finally {
      refuse = false;
    }
  });

  it("refuses a protocol it does not speak", async () => {
    protocol = "channel.k8s.io";
    script = () => {};
    try {
      await assert.rejects(call(), /unsupported protocol "channel.k8s.io"/);
    } finally {
      protocol = "v5.channel.k8s.io";
    }
  });

  it("stops when aborted, closing the connection", async () => {
    let upgraded: () => void = () => {};
    const upgrade = new Promise<void>((resolve) => {
      upgraded = resolve;
    });
    let closed: Promise<unknown> = Promise.resolve();
    script = (socket) => {
      // Not once(): a reset connection's 'error' would reject it.
      closed = new Promise((resolve) => socket.on("close", resolve));
      upgraded();
    };
    const abort = new AbortController();
    const pending = call(abort.signal);
    await upgrade;
    abort.abort();
    await assert.rejects(pending, /exec into ns\/p was aborted/);
    await closed;
  });

  it("refuses more output than it keeps", async () => {
    script = (socket) => {
      const frame = serverFrame(2, onChannel(1, "x".repeat(65_000)));
      for (let i = 0; i < 70; i++) socket.write(frame);
    };
    await assert.rejects(call(), /more than 4194304 bytes of output/);
  });
});
