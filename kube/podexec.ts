// `kubectl exec` without stdin or a TTY, over kube-apiserver's websocket exec protocol
// (v5.channel.k8s.io, or v4 from an older server): a GET upgraded to a websocket whose binary
// messages start with their channel (1 stdout, 2 stderr, 3 the command's v1 Status). Only the client
// side of RFC 6455 this needs is here (no extensions, no text messages); it replaces client-node's
// Exec, which brings the `ws` package and the rest of client-node with it.
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import type { ClusterAccess } from "./kubeconfig.ts";
import { ApiError, type KubeStatus } from "./rest.ts";

export const execProtocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"] as const;
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** What one exec may send back in all; the agent's `print` is a few KiB. */
const maxOutputBytes = 4 << 20;

const opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;
const channel = { stdout: 1, stderr: 2, error: 3 } as const;

export interface PodExec {
  namespace: string;
  pod: string;
  container: string;
  command: readonly string[];
  signal: AbortSignal;
}

export interface PodExecResult {
  stdout: string;
  stderr: string;
  /** The command's outcome as the error channel reported it; absent when the server sent none. */
  status?: KubeStatus;
}

/** One frame from client to server: always masked (RFC 6455 5.3), payloads here are small. */
export function clientFrame(op: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const mask = randomBytes(4);
  const length = payload.length;
  const header =
    length < 126
      ? Buffer.from([0x80 | op, 0x80 | length])
      : Buffer.from([0x80 | op, 0x80 | 126, length >> 8, length & 0xff]);
  const body = Buffer.alloc(length);
  for (let i = 0; i < length; i++) body[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([header, mask, body]);
}

/** Splits a byte stream into complete websocket frames, unmasking any masked one. */
export class FrameReader {
  #pending: Buffer = Buffer.alloc(0);

  /** Returns the frames `chunk` completes; throws on a frame longer than `maxOutputBytes`. */
  push(chunk: Buffer): { fin: boolean; op: number; payload: Buffer }[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: { fin: boolean; op: number; payload: Buffer }[] = [];
    for (;;) {
      const buf = this.#pending;
      if (buf.length < 2) break;
      const masked = (buf[1]! & 0x80) !== 0;
      let length = buf[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buf.length < 4) break;
        length = buf.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buf.length < 10) break;
        const long = buf.readBigUInt64BE(2);
        if (long > BigInt(maxOutputBytes)) throw new Error(`a websocket frame of ${long} bytes is too large`);
        length = Number(long);
        offset = 10;
      }
      if (length > maxOutputBytes) throw new Error(`a websocket frame of ${length} bytes is too large`);
      const maskAt = offset;
      if (masked) offset += 4;
      if (buf.length < offset + length) break;
      const payload = Buffer.from(buf.subarray(offset, offset + length));
      if (masked) for (let i = 0; i < length; i++) payload[i]! ^= buf[maskAt + (i % 4)]!;
      frames.push({ fin: (buf[0]! & 0x80) !== 0, op: buf[0]! & 0x0f, payload });
      this.#pending = buf.subarray(offset + length);
    }
    return frames;
  }
}

/** The path and query of an exec with stdout and stderr, no stdin, no TTY. */
export function execPath(exec: Pick<PodExec, "namespace" | "pod" | "container" | "command">): string {
  const query = new URLSearchParams();
  for (const arg of exec.command) query.append("command", arg);
  query.set("container", exec.container);
  query.set("stdout", "true");
  query.set("stderr", "true");
  return `/api/v1/namespaces/${encodeURIComponent(exec.namespace)}/pods/${encodeURIComponent(exec.pod)}/exec?${query}`;
}

/** Runs a command in a pod's container and collects what it writes and its Status. */
export async function execInPod(access: ClusterAccess, exec: PodExec): Promise<PodExecResult> {
  const cluster = access.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const url = new URL(cluster.server.replace(/\/+$/, "") + execPath(exec));
  const key = randomBytes(16).toString("base64");
  const options: https.RequestOptions = {
    method: "GET",
    headers: {
      Connection: "Upgrade",
      Upgrade: "websocket",
      "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": key,
      "Sec-WebSocket-Protocol": execProtocols.join(", "),
      "User-Agent": "concierge",
    },
    agent: false,
    signal: exec.signal,
  };
  await access.applyToHTTPSOptions(options);
  const transport = url.protocol === "http:" ? http : https;
  const where = `exec into ${exec.namespace}/${exec.pod}`;
  const handshake = new Promise<{ socket: Duplex; head: Buffer }>((resolve, reject) => {
    const req = transport.request(url, options);
    req.on("upgrade", (res: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const accept = createHash("sha1")
        .update(key + websocketGUID)
        .digest("base64");
      const protocol = String(res.headers["sec-websocket-protocol"] ?? "");
      if (res.statusCode !== 101 || res.headers["sec-websocket-accept"] !== accept) {
        socket.destroy();
        return reject(new Error(`${where}: the server's websocket handshake is invalid`));
      }
      if (!(execProtocols as readonly string[]).includes(protocol)) {
        socket.destroy();
        return reject(new Error(`${where}: the server chose the unsupported protocol "${protocol}"`));
      }
      // Nothing reads it until readExec's listener is on.
      socket.pause();
      resolve({ socket, head });
    });
    req.on("response", (res: http.IncomingMessage) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (text.length < 64 * 1024) text += chunk;
      });
      res.on("end", () => {
        const code = res.statusCode ?? 0;
        let status: KubeStatus | undefined;
        try {
          const parsed = JSON.parse(text) as KubeStatus;
          if (parsed?.kind === "Status") status = parsed;
        } catch {
          // Not a Status: the code alone has to do.
        }
        const detail = status?.message ?? (http.STATUS_CODES[code] || "unexpected response");
        reject(new ApiError(code, `${where}: ${detail} (HTTP ${code})`, status));
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
  const upgraded = await handshake.catch((err: unknown) => {
    if (exec.signal.aborted) throw new Error(`${where} was aborted`, { cause: exec.signal.reason });
    throw err;
  });
  return readExec(upgraded.socket, upgraded.head, exec.signal, where);
}

/** Reads the upgraded connection until the server closes it. */
function readExec(socket: Duplex, head: Buffer, signal: AbortSignal, where: string): Promise<PodExecResult> {
  const out: Record<number, Buffer[]> = { [channel.stdout]: [], [channel.stderr]: [], [channel.error]: [] };
  let total = 0;
  const reader = new FrameReader();
  let message: Buffer[] = [];
  let closing = false;
  return new Promise<PodExecResult>((resolve, reject) => {
    const fail = (err: Error) => {
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(err);
    };
    const onAbort = () => fail(new Error(`${where} was aborted`, { cause: signal.reason }));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    const onData = (chunk: Buffer) => {
      let frames: ReturnType<FrameReader["push"]>;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        return fail(new Error(`${where}: ${(err as Error).message}`));
      }
      for (const frame of frames) {
        if (frame.op === opcode.ping) socket.write(clientFrame(opcode.pong, frame.payload));
        else if (frame.op === opcode.close) {
          if (!closing) socket.write(clientFrame(opcode.close, frame.payload.subarray(0, 2)));
          closing = true;
          socket.end();
        } else if (
          frame.op === opcode.binary ||
          frame.op === opcode.continuation ||
          frame.op === opcode.text
        ) {
          message.push(frame.payload);
          total += frame.payload.length;
          if (total > maxOutputBytes)
            return fail(new Error(`${where}: more than ${maxOutputBytes} bytes of output`));
          if (!frame.fin) continue;
          const whole = Buffer.concat(message);
          message = [];
          const target = whole.length > 0 ? out[whole[0]!] : undefined;
          target?.push(whole.subarray(1));
        }
      }
    };
    socket.on("data", onData);
    socket.on("error", (err: Error) => fail(err));
    if (head.length > 0) onData(head);
    socket.resume();
    socket.on("close", () => {
      signal.removeEventListener("abort", onAbort);
      const text = (ch: number) => Buffer.concat(out[ch]!).toString("utf8");
      const errorText = text(channel.error);
      const result: PodExecResult = { stdout: text(channel.stdout), stderr: text(channel.stderr) };
      if (errorText !== "") {
        try {
          result.status = JSON.parse(errorText) as KubeStatus;
        } catch {
          return reject(new Error(`${where}: the error channel holds no Status: ${errorText.slice(0, 200)}`));
        }
      }
      if (!closing)
        return reject(new Error(`${where}: the connection closed before the server closed the websocket`));
      resolve(result);
    });
  });
}
