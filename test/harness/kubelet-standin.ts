// A stand-in for the one part of a kubelet that pods/exec needs, so that an exec made through
// the real kube-apiserver ends at code the test controls. kube-apiserver (1.34) turns a client's
// websocket (v5.channel.k8s.io) exec into a SPDY/3.1 upgrade towards the node's kubelet:
// `POST /exec/<ns>/<pod>/<container>?command=...&output=1&error=1`, authenticated with its
// kubelet client certificate. It then opens one SPDY stream per `streamtype` header (error, stdout,
// stderr, plus stdin/resize when asked for) and waits for the v4 Status on the error stream.
//
// Only the SPDY/3.1 subset that exchange uses is implemented: SYN_STREAM, SYN_REPLY, DATA,
// RST_STREAM, PING and GOAWAY; SETTINGS, WINDOW_UPDATE and HEADERS are ignored, so the output
// written per stream must fit the 64 KiB initial flow-control window (the agent's `print` does).

import type { IncomingMessage } from "node:http";
import { createServer } from "node:https";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { constants, createDeflate, createInflate, type Deflate, type Inflate } from "node:zlib";
import { isAlreadyExists, type RestClient } from "../../controllers/runtime/rest.ts";
import { testCA } from "./tls.ts";

/** The identity kube-apiserver's `--kubelet-client-certificate` has in the test cluster's PKI. */
export const apiServerKubeletClientCN = "kube-apiserver-kubelet-client";

// ---------------------------------------------------------------------------------------------
// SPDY/3.1 framing (https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/)

export const spdyVersion = 3;
export const frameType = {
  synStream: 1,
  synReply: 2,
  rstStream: 3,
  settings: 4,
  ping: 6,
  goAway: 7,
  headers: 8,
  windowUpdate: 9,
} as const;
/** The sender's last frame on a stream (DATA, SYN_STREAM, SYN_REPLY). */
export const flagFin = 0x01;
/** RST_STREAM status for a stream the receiver will not serve. */
export const refusedStream = 3;

export interface ControlFrame {
  control: true;
  type: number;
  flags: number;
  data: Buffer;
}
export interface DataFrame {
  control: false;
  streamId: number;
  flags: number;
  data: Buffer;
}
export type Frame = ControlFrame | DataFrame;

function frameHeader(first: number, flags: number, length: number): Buffer {
  if (length > 0xffffff) throw new Error(`SPDY frame payload of ${length} bytes is too long`);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(first >>> 0, 0);
  header.writeUInt32BE(length, 4);
  header.writeUInt8(flags, 4);
  return header;
}

export function encodeControlFrame(type: number, flags: number, data: Buffer): Buffer {
  return Buffer.concat([frameHeader(0x80000000 | (spdyVersion << 16) | type, flags, data.length), data]);
}

export function encodeDataFrame(streamId: number, flags: number, data: Buffer): Buffer {
  return Buffer.concat([frameHeader(streamId & 0x7fffffff, flags, data.length), data]);
}

/** Cuts a byte stream into frames; bytes of an incomplete frame wait for the next chunk. */
export class FrameReader {
  #pending = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#pending = Buffer.concat([this.#pending, chunk]);
    const frames: Frame[] = [];
    while (this.#pending.length >= 8) {
      const length = this.#pending.readUInt32BE(4) & 0xffffff;
      if (this.#pending.length < 8 + length) break;
      const first = this.#pending.readUInt32BE(0);
      const flags = this.#pending.readUInt8(4);
      const data = this.#pending.subarray(8, 8 + length);
      this.#pending = this.#pending.subarray(8 + length);
      if (first & 0x80000000) {
        const version = (first >>> 16) & 0x7fff;
        if (version !== spdyVersion) throw new Error(`unsupported SPDY version ${version}`);
        frames.push({ control: true, type: first & 0xffff, flags, data });
      } else {
        frames.push({ control: false, streamId: first, flags, data });
      }
    }
    return frames;
  }
}

/** A SYN_STREAM's stream id and its (still compressed) header block. */
export function parseSynStream(data: Buffer): { streamId: number; headerBlock: Buffer } {
  // stream id (31 bits), associated stream id (31 bits), priority and slot (2 bytes).
  return { streamId: data.readUInt32BE(0) & 0x7fffffff, headerBlock: data.subarray(10) };
}

export function synStreamPayload(streamId: number, headerBlock: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt32BE(streamId, 0);
  return Buffer.concat([fixed, headerBlock]);
}

export function synReplyPayload(streamId: number, headerBlock: Buffer): Buffer {
  const id = Buffer.alloc(4);
  id.writeUInt32BE(streamId, 0);
  return Buffer.concat([id, headerBlock]);
}

/** The payload of RST_STREAM and of GOAWAY: a stream id and a status code. */
export function idAndStatus(streamId: number, status: number): Buffer {
  const data = Buffer.alloc(8);
  data.writeUInt32BE(streamId, 0);
  data.writeUInt32BE(status, 4);
  return data;
}

// Header blocks: a count, then length-prefixed names and values, all zlib-compressed with one
// context per direction for the connection's lifetime, primed with the SPDY/3 dictionary.

/** The SPDY/3 zlib dictionary: length-prefixed header names, then a run of common values. */
export const spdyDictionary: Buffer = Buffer.concat([
  ...[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
  ].map(lengthPrefixed),
  Buffer.from(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505" +
      "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request" +
      "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented" +
      "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 " +
      "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif," +
      "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=" +
      "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    "latin1",
  ),
]);

function lengthPrefixed(text: string): Buffer {
  const bytes = Buffer.from(text, "latin1");
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([length, bytes]);
}

export function encodeHeaders(headers: Readonly<Record<string, string>>): Buffer {
  const entries = Object.entries(headers);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(entries.length, 0);
  return Buffer.concat([count, ...entries.flatMap(([name, value]) => [name, value].map(lengthPrefixed))]);
}

/** Header names are compared lowercased: SPDY sends them so, Go's http.Header does not. */
export function decodeHeaders(block: Buffer): Record<string, string> {
  const headers: Record<string, string> = {};
  let offset = 4;
  const next = () => {
    const length = block.readUInt32BE(offset);
    const text = block.subarray(offset + 4, offset + 4 + length).toString("latin1");
    offset += 4 + length;
    return text;
  };
  for (let i = block.readUInt32BE(0); i > 0; i--) {
    const name = next().toLowerCase();
    headers[name] = next();
  }
  return headers;
}

/** Runs a block through a long-lived zlib stream, ending it with a sync flush (a frame boundary). */
function through(stream: Deflate | Inflate, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    stream.once("error", reject);
    stream.write(input);
    // The stream stays paused, so everything it produced up to the flush waits in its buffer.
    stream.flush(constants.Z_SYNC_FLUSH, () => {
      stream.off("error", reject);
      const chunks: Buffer[] = [];
      for (let chunk = stream.read(); chunk !== null; chunk = stream.read()) chunks.push(chunk);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** One side's header compression state for one SPDY connection. */
export class HeaderCodec {
  readonly #deflate = createDeflate({ dictionary: spdyDictionary });
  readonly #inflate = createInflate({ dictionary: spdyDictionary });
  // Both contexts carry state from block to block, so blocks must go through them in order.
  #queue: Promise<unknown> = Promise.resolve();

  #inOrder<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(work);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  compress(headers: Readonly<Record<string, string>>): Promise<Buffer> {
    return this.#inOrder(() => through(this.#deflate, encodeHeaders(headers)));
  }

  async decompress(block: Buffer): Promise<Record<string, string>> {
    return decodeHeaders(await this.#inOrder(() => through(this.#inflate, block)));
  }

  close(): void {
    this.#deflate.destroy();
    this.#inflate.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// The exec endpoint

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: string;
  command: string[];
}

export interface ExecResult {
  stdout?: string;
  stderr?: string;
  /** 0 unless given; anything else is reported the way the kubelet reports a failed command. */
  exitCode?: number;
}

/** What "runs" in the container. Throwing reports an internal error, as the kubelet does. */
export type ExecHandler = (request: ExecRequest) => ExecResult | Promise<ExecResult>;

export interface KubeletStandIn {
  readonly port: number;
  /** Every exec the stand-in accepted, in order. */
  readonly execs: readonly ExecRequest[];
  /** Requests it turned away, e.g. for a missing or wrong client certificate. */
  readonly rejected: readonly string[];
  close(): Promise<void>;
}

export interface KubeletStandInOptions {
  /** The CA that signed kube-apiserver's kubelet client certificate (the cluster CA). */
  clientCAPEM: string;
  exec: ExecHandler;
  /** How long to wait for the streams the request asked for; the kubelet's default is 30s. */
  streamTimeoutMs?: number;
}

type StreamType = "error" | "stdin" | "stdout" | "stderr" | "resize";
const streamTypes: ReadonlySet<string> = new Set(["error", "stdin", "stdout", "stderr", "resize"]);

/** The v4 Status the kubelet writes on the error stream when the command ended. */
export function execStatus(result: ExecResult): object {
  const code = result.exitCode ?? 0;
  if (code === 0) return { metadata: {}, status: "Success" };
  return {
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: exit status ${code}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(code) }] },
  };
}

function internalErrorStatus(err: unknown): object {
  const message = `Internal error occurred: ${err instanceof Error ? err.message : String(err)}`;
  return { metadata: {}, status: "Failure", message, reason: "InternalError", code: 500 };
}

/** Parses `/exec/<ns>/<pod>/<container>?command=...`; undefined for any other path. */
function parseExecRequest(url: string): { request: ExecRequest; wanted: StreamType[] } | undefined {
  const parsed = new URL(url, "https://kubelet.invalid");
  const parts = parsed.pathname.split("/").slice(1).map(decodeURIComponent);
  if (parts.length !== 4 || parts[0] !== "exec") return undefined;
  const [, namespace = "", pod = "", container = ""] = parts;
  const q = parsed.searchParams;
  const wanted: StreamType[] = ["error"];
  if (q.get("input") === "1") wanted.push("stdin");
  if (q.get("output") === "1") wanted.push("stdout");
  if (q.get("error") === "1") wanted.push("stderr");
  if (q.get("tty") === "1") wanted.push("resize");
  return { request: { namespace, pod, container, command: q.getAll("command") }, wanted };
}

function refuse(socket: Duplex, status: string, body: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}

/**
 * One exec: answers the upgraded connection's SPDY streams, runs the handler once every stream
 * the request asked for is open, writes its output and the Status, then lets the API server
 * hang up (it sends GOAWAY once it has read the Status).
 */
function serveExec(
  socket: Duplex,
  request: ExecRequest,
  wanted: readonly StreamType[],
  handler: ExecHandler,
  streamTimeoutMs: number,
): void {
  const reader = new FrameReader();
  const codec = new HeaderCodec();
  const streams = new Map<string, number>();
  let lastStreamId = 0;
  let started = false;
  let work: Promise<void> = Promise.resolve();

  const send = (frame: Buffer) => {
    if (socket.writable) socket.write(frame);
  };
  const hangUp = () => {
    clearTimeout(streamTimer);
    send(encodeControlFrame(frameType.goAway, 0, idAndStatus(lastStreamId, 0)));
    socket.end();
  };
  const streamTimer = setTimeout(hangUp, streamTimeoutMs);
  socket.once("close", () => {
    clearTimeout(streamTimer);
    codec.close();
  });
  // A reset from the API server surfaces here; the exec is over either way.
  socket.on("error", () => socket.destroy());

  const run = async () => {
    clearTimeout(streamTimer);
    let status: object;
    let result: ExecResult = {};
    try {
      result = await handler(request);
      status = execStatus(result);
    } catch (err) {
      status = internalErrorStatus(err);
    }
    const output: [StreamType, string | undefined][] = [
      ["stdout", result.stdout],
      ["stderr", result.stderr],
    ];
    for (const [type, text] of output) {
      const id = streams.get(type);
      if (id !== undefined && text) send(encodeDataFrame(id, 0, Buffer.from(text)));
    }
    for (const [type, id] of streams) {
      if (type === "error") continue;
      send(encodeDataFrame(id, flagFin, Buffer.alloc(0)));
    }
    send(encodeDataFrame(streams.get("error")!, flagFin, Buffer.from(JSON.stringify(status))));
  };

  const onControl = async (frame: ControlFrame) => {
    switch (frame.type) {
      case frameType.synStream: {
        const { streamId, headerBlock } = parseSynStream(frame.data);
        lastStreamId = Math.max(lastStreamId, streamId);
        const type = (await codec.decompress(headerBlock)).streamtype ?? "";
        if (!streamTypes.has(type) || streams.has(type)) {
          send(encodeControlFrame(frameType.rstStream, 0, idAndStatus(streamId, refusedStream)));
          return;
        }
        streams.set(type, streamId);
        send(encodeControlFrame(frameType.synReply, 0, synReplyPayload(streamId, await codec.compress({}))));
        if (!started && wanted.every((t) => streams.has(t))) {
          started = true;
          await run();
        }
        return;
      }
      case frameType.ping:
        // This side never pings, so every PING is the peer's and is echoed back.
        send(encodeControlFrame(frameType.ping, 0, frame.data));
        return;
      case frameType.goAway:
        clearTimeout(streamTimer);
        socket.end();
        return;
      default:
        // RST_STREAM (the API server dropping a stream it is done with), SETTINGS, WINDOW_UPDATE
        // and HEADERS change nothing for a one-shot command.
        return;
    }
  };

  socket.on("data", (chunk: Buffer) => {
    let frames: Frame[];
    try {
      frames = reader.push(chunk);
    } catch {
      socket.destroy();
      return;
    }
    for (const frame of frames) {
      // DATA from the API server (stdin, or the end of its side of a stream) needs no answer.
      if (!frame.control) continue;
      // Header compression is stateful and asynchronous: handle frames strictly one at a time.
      work = work
        .then(() => onControl(frame))
        .catch(() => {
          socket.destroy();
        });
    }
  });
}

/** Starts the stand-in on an ephemeral port of 127.0.0.1, serving HTTPS with a throwaway CA. */
export async function startKubeletStandIn(options: KubeletStandInOptions): Promise<KubeletStandIn> {
  const ca = await testCA("kubelet stand-in CA");
  const serving = await ca.issue({ cn: "127.0.0.1", ips: ["127.0.0.1"] });
  const execs: ExecRequest[] = [];
  const rejected: string[] = [];
  const sockets = new Set<Duplex>();
  const server = createServer({
    cert: serving.certPEM,
    key: serving.keyPEM,
    ca: options.clientCAPEM,
    requestCert: true,
    // Checked per request instead, so that a bad certificate gets an answer and a record.
    rejectUnauthorized: false,
  });

  const authenticate = (req: IncomingMessage): string | undefined => {
    const tls = req.socket as TLSSocket;
    if (!tls.authorized) return `client certificate not verified: ${String(tls.authorizationError)}`;
    const cn = tls.getPeerCertificate().subject?.CN;
    if (cn !== apiServerKubeletClientCN) return `client certificate CN ${String(cn)} is not the API server's`;
    return undefined;
  };

  server.on("request", (req, res) => {
    const unauthenticated = authenticate(req);
    const why = unauthenticated ?? `${req.method} ${req.url} is not an exec upgrade`;
    rejected.push(why);
    res.writeHead(unauthenticated ? 401 : 400, { "Content-Type": "text/plain" }).end(why);
  });

  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const unauthenticated = authenticate(req);
    if (unauthenticated) {
      rejected.push(unauthenticated);
      return refuse(socket, "401 Unauthorized", unauthenticated);
    }
    const exec = req.method === "POST" ? parseExecRequest(req.url ?? "") : undefined;
    if (!exec) {
      rejected.push(`${req.method} ${req.url} is not an exec`);
      return refuse(socket, "404 Not Found", "not found");
    }
    const upgrades = String(req.headers.upgrade ?? "").toLowerCase();
    const protocols = String(req.headers["x-stream-protocol-version"] ?? "");
    if (!upgrades.includes("spdy/3.1") || !protocols.includes("v4.channel.k8s.io")) {
      rejected.push(`unsupported upgrade ${upgrades} with stream protocols ${protocols}`);
      return refuse(socket, "400 Bad Request", "SPDY/3.1 with v4.channel.k8s.io required");
    }
    execs.push(exec.request);
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
        "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
    );
    serveExec(socket, exec.request, exec.wanted, options.exec, options.streamTimeoutMs ?? 30_000);
  });

  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    execs,
    rejected,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
}

/**
 * Makes `nodeName` (created when missing) point the API server at the stand-in: kube-apiserver
 * dials a node's kubelet at its address and `daemonEndpoints.kubeletEndpoint.Port`.
 */
export async function registerNode(client: RestClient, nodeName: string, port: number): Promise<void> {
  try {
    await client.request({
      method: "POST",
      path: "/api/v1/nodes",
      body: { apiVersion: "v1", kind: "Node", metadata: { name: nodeName } },
    });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
  await client.request({
    method: "PATCH",
    path: `/api/v1/nodes/${nodeName}/status`,
    contentType: "application/merge-patch+json",
    body: {
      status: {
        addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
        daemonEndpoints: { kubeletEndpoint: { Port: port } },
      },
    },
  });
}
