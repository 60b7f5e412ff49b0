// WebSocket pings from the proxy on quiet upgraded connections. kubectl 1.34's WebSocket exec sends
// heartbeats every 5 s, but its WebSocket port-forward (SPDY tunnelled in WebSocket, the default
// since kubectl 1.31) pings only every 10 s inside the tunnel, and other clients may never ping,
// so a load balancer with a shorter idle timeout in front of the proxy cuts them. A ping frame
// written towards the client at a frame boundary makes the client answer with a pong (RFC 6455 §5.5.2), so bytes move both
// ways through the balancer. The pong travels on to kube-apiserver, which ignores unsolicited
// pongs as §5.5.3 allows; the byte stream is otherwise untouched.
import type { Duplex } from "node:stream";

/** FIN + opcode 0x9 (ping), unmasked (server to client), empty payload. */
export const pingFrame: Buffer = Buffer.from([0x89, 0x00]);

/**
 * Follows frame boundaries in a server-to-client WebSocket byte stream, so that a control frame
 * can be slipped in between two frames (never inside one). Control frames may sit between the
 * fragments of a message, so any frame boundary will do.
 */
export class FrameBoundaryTracker {
  /** Header bytes of the frame being read, until the header is complete. */
  #header: number[] = [];
  /** Payload (and mask) bytes still to skip in the current frame. */
  #remaining = 0n;

  get atBoundary(): boolean {
    return this.#header.length === 0 && this.#remaining === 0n;
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#remaining > 0n) {
        const skip = Number(
          this.#remaining < BigInt(chunk.length - i) ? this.#remaining : BigInt(chunk.length - i),
        );
        this.#remaining -= BigInt(skip);
        i += skip;
        continue;
      }
      this.#header.push(chunk[i]!);
      i++;
      const needed = headerLength(this.#header);
      if (needed !== undefined && this.#header.length === needed) {
        this.#remaining = payloadLength(this.#header);
        this.#header = [];
      }
    }
  }
}

/** The full header length once its first two bytes are known (RFC 6455 §5.2). */
function headerLength(header: readonly number[]): number | undefined {
  if (header.length < 2) return undefined;
  const second = header[1]!;
  const lengthBytes = (second & 0x7f) === 126 ? 2 : (second & 0x7f) === 127 ? 8 : 0;
  const maskBytes = second & 0x80 ? 4 : 0;
  return 2 + lengthBytes + maskBytes;
}

/** Payload length, plus nothing for the mask (already counted in the header). */
function payloadLength(header: readonly number[]): bigint {
  const short = header[1]! & 0x7f;
  if (short < 126) return BigInt(short);
  const bytes = header.slice(2, short === 126 ? 4 : 10);
  return bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n);
}

/**
 * Pings the client whenever neither direction has carried a byte for `intervalMs`. Call when the
 * sockets are piped; `serverToClient` is the socket whose data is piped to `client`. Returns the
 * function that stops it (it also stops when the client closes).
 */
export function keepWebSocketAlive(
  client: Duplex,
  serverToClient: Duplex,
  options: {
    intervalMs: number;
    /** Server bytes already written to the client before the pipe started. */
    alreadySent?: Uint8Array;
    onPing?: () => void;
  },
): () => void {
  const { intervalMs, onPing = () => {} } = options;
  if (intervalMs <= 0) return () => {};
  const tracker = new FrameBoundaryTracker();
  if (options.alreadySent) tracker.push(options.alreadySent);
  let lastActivity = Date.now();
  const touch = () => {
    lastActivity = Date.now();
  };
  serverToClient.on("data", (chunk: Buffer) => {
    tracker.push(chunk);
    touch();
  });
  client.on("data", touch);
  const timer = setInterval(
    () => {
      if (client.destroyed || client.writableEnded) return;
      if (Date.now() - lastActivity < intervalMs || !tracker.atBoundary) return;
      client.write(pingFrame);
      touch();
      onPing();
    },
    Math.max(100, Math.floor(intervalMs / 4)),
  );
  timer.unref();
  const stop = () => clearInterval(timer);
  client.once("close", stop);
  return stop;
}
