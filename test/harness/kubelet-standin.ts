// A stand-in for the one part of a kubelet that kube-cert-agent's exec reaches through the real
// kube-apiserver's node proxy, so that a unit-level test of the reconciler controls what the agent
// pod "prints" and which pod states it sees (end-to-end suites run on the real node instead).
// kube-apiserver talks SPDY/3.1 to the kubelet, whatever the client spoke to it: a websocket
// (v5.channel.k8s.io) exec is translated, and a SPDY client's upgrade is proxied as is. (From 1.36
// it passes websockets on to a kubelet whose Node lists ExtendWebSocketsToKubelet in
// status.declaredFeatures; the stand-in's Node lists none, so every minor speaks SPDY to it.)
// The endpoint, authenticated by kube-apiserver's kubelet client certificate:
// `POST /exec/<ns>/<pod>/<container>?command=...&input=1&output=1&error=1&tty=1`, a SPDY/3.1
// upgrade (v4.channel.k8s.io) with one stream per `streamtype` header (error, stdin, stdout,
// stderr, resize); the command runs once every stream the query asked for is open and ends with
// the v4 Status on the error stream.
//
// Only the SPDY/3.1 subset that exchange uses is implemented: SYN_STREAM, SYN_REPLY, DATA,
// RST_STREAM, SETTINGS (the initial window), PING, GOAWAY and WINDOW_UPDATE; HEADERS is ignored.

import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import { type Duplex, PassThrough, type Readable, Writable } from "node:stream";
import type { TLSSocket } from "node:tls";
import { constants, createDeflate, createInflate, type Deflate, type Inflate } from "node:zlib";
import { isAlreadyExists, type RestClient } from "../../kube/rest.ts";
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
// SPDY/3.1 sessions and streams, with flow control

/** SPDY/3.1's initial window, per stream and for the session. */
export const initialWindow = 65_536;
/** The most this side puts in one DATA frame. */
const maxDataFrame = 16_384;
/** SETTINGS_INITIAL_WINDOW_SIZE. */
const settingInitialWindow = 7;
/**
 * moby/spdystream, which kube-apiserver and kubectl speak SPDY with, neither sends nor honours
 * WINDOW_UPDATE. A peer that lets a whole window go by without one for this long is taken to do
 * no flow control, rather than stalling every output longer than 64 KiB forever.
 */
const flowControlGraceMs = 250;

export function windowUpdatePayload(streamId: number, delta: number): Buffer {
  const data = Buffer.alloc(8);
  data.writeUInt32BE(streamId & 0x7fffffff, 0);
  data.writeUInt32BE(delta & 0x7fffffff, 4);
  return data;
}

/** One stream the peer opened. */
export class SpdyStream {
  readonly id: number;
  /** Lowercased header names, as decodeHeaders gives them. */
  readonly headers: Readonly<Record<string, string>>;
  /** What the peer sends; it ends with the peer's FIN, a reset, or the connection's end. */
  readonly incoming: PassThrough = new PassThrough();
  readonly #session: SpdySession;
  #sendWindow: number;
  #finished = false;
  #queue: Promise<void> = Promise.resolve();

  constructor(session: SpdySession, id: number, headers: Record<string, string>, window: number) {
    this.#session = session;
    this.id = id;
    this.headers = headers;
    this.#sendWindow = window;
  }

  /** Sends bytes within the flow-control windows; resolves once they are on the socket. */
  write(data: Buffer): Promise<void> {
    return this.#inOrder(() => this.#send(data, 0));
  }

  /** Sends the last bytes, if any, with FIN; later writes are dropped. */
  end(data: Buffer = Buffer.alloc(0)): Promise<void> {
    return this.#inOrder(() => this.#send(data, flagFin));
  }

  /** A Writable over write() whose end() does not FIN: whoever owns the stream decides that. */
  writable(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        this.write(chunk).then(() => done(), done);
      },
    });
  }

  #inOrder(work: () => Promise<void>): Promise<void> {
    const result = this.#queue.then(work);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #send(data: Buffer, flags: number): Promise<void> {
    let offset = 0;
    while (!this.#finished && this.#session.open) {
      const room = await this.#session.room(() => this.#sendWindow);
      const size = Math.min(data.length - offset, maxDataFrame, room);
      const last = offset + size === data.length;
      this.#sendWindow -= size;
      this.#session.spend(size);
      this.#session.send(encodeDataFrame(this.id, last ? flags : 0, data.subarray(offset, offset + size)));
      offset += size;
      if (last) break;
    }
    if (flags & flagFin) this.#finished = true;
  }

  /** @internal WINDOW_UPDATE or a new SETTINGS_INITIAL_WINDOW_SIZE. */
  grow(delta: number): void {
    this.#sendWindow += delta;
  }

  /** @internal The peer reset the stream or the connection ended. */
  stop(): void {
    this.#finished = true;
    this.incoming.end();
  }
}

export interface SpdyStreamHandler {
  /** Decides synchronously whether to take a stream the peer opens; refused ones are reset. */
  accept(stream: SpdyStream): boolean;
  /** Runs once the stream's SYN_REPLY is out, so that data sent now follows it. */
  opened(stream: SpdyStream): void;
}

/** The server side of one SPDY/3.1 connection: answers streams, pings and flow control. */
export class SpdySession {
  readonly #socket: Duplex;
  readonly #codec = new HeaderCodec();
  readonly #reader = new FrameReader();
  readonly #streams = new Map<number, SpdyStream>();
  readonly #aborted = new AbortController();
  #work: Promise<void> = Promise.resolve();
  #initialWindow = initialWindow;
  #sessionWindow = initialWindow;
  /** Whether the peer sends WINDOW_UPDATE: "unknown" until it does, or until a window ran dry. */
  #peerFlowControl: "unknown" | "yes" | "no" = "unknown";
  #wakers: (() => void)[] = [];
  #lastStreamId = 0;
  handler: SpdyStreamHandler = { accept: () => false, opened: () => undefined };

  constructor(socket: Duplex) {
    this.#socket = socket;
    socket.once("close", () => {
      this.#aborted.abort();
      this.#codec.close();
      for (const stream of this.#streams.values()) stream.stop();
      this.#wake();
    });
    // A reset from the peer surfaces here; the session is over either way.
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.#reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      // Header compression is stateful and asynchronous, and DATA must not overtake the
      // SYN_STREAM of its stream: handle frames strictly one at a time.
      for (const frame of frames) {
        this.#work = this.#work.then(() => this.#onFrame(frame)).catch(() => void socket.destroy());
      }
    });
  }

  /** Aborted when the connection ends, whoever ended it. */
  get signal(): AbortSignal {
    return this.#aborted.signal;
  }

  get open(): boolean {
    return !this.#aborted.signal.aborted;
  }

  send(frame: Buffer): void {
    if (this.#socket.writable) this.#socket.write(frame);
  }

  /** Sends GOAWAY and closes this side, as a kubelet does when it is done with a connection. */
  goAway(): void {
    this.send(encodeControlFrame(frameType.goAway, 0, idAndStatus(this.#lastStreamId, 0)));
    this.#socket.end();
  }

  /** @internal How much a stream may send now: waits while a window is closed. */
  async room(streamWindow: () => number): Promise<number> {
    for (;;) {
      const room = Math.min(streamWindow(), this.#sessionWindow);
      if (room > 0) return room;
      if (this.#peerFlowControl === "no" || !this.open) return maxDataFrame;
      const updated = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), flowControlGraceMs);
        this.#wakers.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (!updated && this.#peerFlowControl === "unknown") this.#peerFlowControl = "no";
    }
  }

  /** @internal */
  spend(size: number): void {
    this.#sessionWindow -= size;
  }

  #wake(): void {
    for (const wake of this.#wakers.splice(0)) wake();
  }

  async #onFrame(frame: Frame): Promise<void> {
    if (!frame.control) {
      const stream = this.#streams.get(frame.streamId);
      // DATA after the peer's FIN breaks the protocol; it is dropped rather than thrown on.
      if (!stream || stream.incoming.writableEnded) return;
      if (frame.data.length > 0) {
        stream.incoming.write(frame.data);
        // Received data is handed on at once, so its window space is given back at once.
        this.send(encodeControlFrame(frameType.windowUpdate, 0, windowUpdatePayload(0, frame.data.length)));
        if (!(frame.flags & flagFin)) {
          this.send(
            encodeControlFrame(frameType.windowUpdate, 0, windowUpdatePayload(stream.id, frame.data.length)),
          );
        }
      }
      if (frame.flags & flagFin) stream.incoming.end();
      return;
    }
    switch (frame.type) {
      case frameType.synStream: {
        const { streamId, headerBlock } = parseSynStream(frame.data);
        this.#lastStreamId = Math.max(this.#lastStreamId, streamId);
        const headers = await this.#codec.decompress(headerBlock);
        const stream = new SpdyStream(this, streamId, headers, this.#initialWindow);
        if (!this.handler.accept(stream)) {
          this.send(encodeControlFrame(frameType.rstStream, 0, idAndStatus(streamId, refusedStream)));
          return;
        }
        this.#streams.set(streamId, stream);
        if (frame.flags & flagFin) stream.incoming.end();
        const reply = await this.#codec.compress({});
        this.send(encodeControlFrame(frameType.synReply, 0, synReplyPayload(streamId, reply)));
        this.handler.opened(stream);
        return;
      }
      case frameType.rstStream: {
        const id = frame.data.readUInt32BE(0) & 0x7fffffff;
        this.#streams.get(id)?.stop();
        this.#streams.delete(id);
        this.#wake();
        return;
      }
      case frameType.settings: {
        for (let i = 0, n = frame.data.readUInt32BE(0); i < n; i++) {
          const entry = 4 + i * 8;
          if ((frame.data.readUInt32BE(entry) & 0xffffff) !== settingInitialWindow) continue;
          const window = frame.data.readUInt32BE(entry + 4);
          for (const stream of this.#streams.values()) stream.grow(window - this.#initialWindow);
          this.#initialWindow = window;
        }
        this.#wake();
        return;
      }
      case frameType.windowUpdate: {
        const id = frame.data.readUInt32BE(0) & 0x7fffffff;
        const delta = frame.data.readUInt32BE(4) & 0x7fffffff;
        this.#peerFlowControl = "yes";
        if (id === 0) this.#sessionWindow += delta;
        else this.#streams.get(id)?.grow(delta);
        this.#wake();
        return;
      }
      case frameType.ping:
        // This side never pings, so every PING is the peer's and is echoed back.
        this.send(encodeControlFrame(frameType.ping, 0, frame.data));
        return;
      case frameType.goAway:
        this.#socket.end();
        return;
      default:
        // HEADERS carries nothing any of these exchanges use.
        return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// exec and attach

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: string;
  /** Empty for an attach. */
  command: string[];
}

export interface ExecResult {
  /** Written after whatever the handler wrote to io.stdout. */
  stdout?: string;
  stderr?: string;
  /** 0 unless given; anything else is reported the way the kubelet reports a failed command. */
  exitCode?: number;
}

/** The command's stdio while it runs. */
export interface ExecIO {
  /** What the client sends; undefined unless it asked for stdin. It ends when the client closes it. */
  stdin: Readable | undefined;
  /** Writes reach the client as they are made (and vanish when it did not ask for the stream). */
  stdout: Writable;
  stderr: Writable;
  tty: boolean;
  /** Aborted when the connection ends: a long-running handler should then return. */
  signal: AbortSignal;
}

/** What "runs" in the container. Throwing reports an internal error, as the kubelet does. */
export type ExecHandler = (request: ExecRequest, io: ExecIO) => ExecResult | Promise<ExecResult>;

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

type StreamType = "error" | "stdin" | "stdout" | "stderr" | "resize";
const streamTypes: ReadonlySet<string> = new Set(["error", "stdin", "stdout", "stderr", "resize"]);

interface RemoteCommand {
  request: ExecRequest;
  wanted: StreamType[];
  tty: boolean;
}

function parseRemoteCommand(parts: string[], query: URLSearchParams): RemoteCommand {
  const [, namespace = "", pod = "", container = ""] = parts;
  const wanted: StreamType[] = ["error"];
  if (query.get("input") === "1") wanted.push("stdin");
  if (query.get("output") === "1") wanted.push("stdout");
  if (query.get("error") === "1") wanted.push("stderr");
  const tty = query.get("tty") === "1";
  if (tty) wanted.push("resize");
  const command = query.getAll("command");
  return { request: { namespace, pod, container, command }, wanted, tty };
}

/**
 * One exec: answers the connection's streams, runs the handler once every stream the
 * request asked for is open, then finishes the output streams and writes the Status, after which
 * the API server hangs up (it sends GOAWAY once it has read the Status).
 */
function serveRemoteCommand(
  socket: Duplex,
  { request, wanted, tty }: RemoteCommand,
  handler: ExecHandler,
  streamTimeoutMs: number,
): void {
  const session = new SpdySession(socket);
  const streams = new Map<string, SpdyStream>();
  let started = false;
  const streamTimer = setTimeout(() => session.goAway(), streamTimeoutMs);
  session.signal.addEventListener("abort", () => clearTimeout(streamTimer));

  const run = async () => {
    const output = (type: StreamType) =>
      streams.get(type)?.writable() ?? new Writable({ write: (_chunk, _encoding, done) => done() });
    const io: ExecIO = {
      stdin: streams.get("stdin")?.incoming,
      stdout: output("stdout"),
      stderr: output("stderr"),
      tty,
      signal: session.signal,
    };
    // Resizes of the terminal are taken and ignored: nothing here draws on a terminal.
    streams.get("resize")?.incoming.resume();
    let status: object;
    let result: ExecResult = {};
    try {
      result = await handler(request, io);
      status = execStatus(result);
    } catch (err) {
      status = internalErrorStatus(err);
    }
    for (const [type, writable, text] of [
      ["stdout", io.stdout, result.stdout],
      ["stderr", io.stderr, result.stderr],
    ] as const) {
      await new Promise<void>((resolve) => writable.end(() => resolve()));
      const stream = streams.get(type);
      if (stream && text) await stream.write(Buffer.from(text));
    }
    for (const [type, stream] of streams) {
      if (type !== "error") await stream.end();
    }
    await streams.get("error")?.end(Buffer.from(JSON.stringify(status)));
  };

  session.handler = {
    accept(stream) {
      const type = stream.headers.streamtype ?? "";
      if (!streamTypes.has(type) || streams.has(type)) return false;
      streams.set(type, stream);
      return true;
    },
    opened() {
      if (started || !wanted.every((t) => streams.has(t))) return;
      started = true;
      clearTimeout(streamTimer);
      run().catch(() => socket.destroy());
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The server

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
  /** Runs every exec. */
  exec: ExecHandler;
  /** How long to wait for the streams the request asked for; the kubelet's default is 30s. */
  streamTimeoutMs?: number;
}

function refuse(socket: Duplex, status: string, body: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}

function pathParts(url: string): { parts: string[]; query: URLSearchParams } {
  const parsed = new URL(url, "https://kubelet.invalid");
  return { parts: parsed.pathname.split("/").slice(1).map(decodeURIComponent), query: parsed.searchParams };
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
  const streamTimeoutMs = options.streamTimeoutMs ?? 30_000;

  const authenticate = (req: IncomingMessage): string | undefined => {
    const tls = req.socket as TLSSocket;
    if (!tls.authorized) return `client certificate not verified: ${String(tls.authorizationError)}`;
    const cn = tls.getPeerCertificate().subject?.CN;
    if (cn !== apiServerKubeletClientCN) return `client certificate CN ${String(cn)} is not the API server's`;
    return undefined;
  };

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const why = authenticate(req) ?? `${req.method} ${req.url} is not served`;
    rejected.push(why);
    res
      .writeHead(why.startsWith("client certificate") ? 401 : 404, { "Content-Type": "text/plain" })
      .end(why);
  });

  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const unauthenticated = authenticate(req);
    if (unauthenticated) {
      rejected.push(unauthenticated);
      return refuse(socket, "401 Unauthorized", unauthenticated);
    }
    const { parts, query } = pathParts(req.url ?? "");
    const upgrades = String(req.headers.upgrade ?? "").toLowerCase();
    const protocols = String(req.headers["x-stream-protocol-version"] ?? "");
    const protocol = "v4.channel.k8s.io";
    if (req.method !== "POST" || parts[0] !== "exec" || parts.length !== 4) {
      rejected.push(`${req.method} ${req.url} is not served`);
      return refuse(socket, "404 Not Found", "not found");
    }
    if (!upgrades.includes("spdy/3.1") || !protocols.split(/\s*,\s*/).includes(protocol)) {
      rejected.push(`unsupported upgrade ${upgrades} with stream protocols ${protocols}`);
      return refuse(socket, "400 Bad Request", `SPDY/3.1 with ${protocol} required`);
    }
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
        `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
    );
    const command = parseRemoteCommand(parts, query);
    execs.push(command.request);
    serveRemoteCommand(socket, command, options.exec, streamTimeoutMs);
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
export async function registerNode(
  client: RestClient,
  nodeName: string,
  port: number,
  labels: Record<string, string> = {},
): Promise<void> {
  try {
    await client.request({
      method: "POST",
      path: "/api/v1/nodes",
      body: { apiVersion: "v1", kind: "Node", metadata: { name: nodeName, labels } },
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
