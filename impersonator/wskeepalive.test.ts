import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { FrameBoundaryTracker, keepWebSocketAlive, pingFrame } from "./wskeepalive.ts";

/** An unmasked server frame with `payload` (lengths that need 7, 16 and 64 bits). */
function frame(opcode: number, payload: Buffer, fin = true): Buffer {
  const first = (fin ? 0x80 : 0) | opcode;
  if (payload.length < 126) return Buffer.concat([Buffer.from([first, payload.length]), payload]);
  if (payload.length < 65536) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(payload.length);
    return Buffer.concat([Buffer.from([first, 126]), len, payload]);
  }
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(payload.length));
  return Buffer.concat([Buffer.from([first, 127]), len, payload]);
}

describe("FrameBoundaryTracker", () => {
  it("is at a boundary only between frames, whatever the chunking", () => {
    const stream = Buffer.concat([
      frame(0x2, Buffer.alloc(5, 1)),
      frame(0x2, Buffer.alloc(300, 2), false),
      frame(0x0, Buffer.alloc(70_000, 3)),
      frame(0x1, Buffer.alloc(0)),
    ]);
    const boundaries = new Set([0, 7, 7 + 304, 7 + 304 + 70_010, stream.length]);
    for (const size of [1, 2, 3, 7, 1000]) {
      const tracker = new FrameBoundaryTracker();
      for (let at = 0; at < stream.length; at += size) {
        const chunk = stream.subarray(at, Math.min(at + size, stream.length));
        tracker.push(chunk);
        const end = at + chunk.length;
        if (boundaries.has(end)) assert.ok(tracker.atBoundary, `after ${end} in chunks of ${size}`);
        else assert.ok(!tracker.atBoundary, `inside a frame at ${end} in chunks of ${size}`);
      }
    }
  });

  it("skips the masking key of a masked frame", () => {
    const tracker = new FrameBoundaryTracker();
    tracker.push(Buffer.from([0x82, 0x83, 1, 2, 3, 4, 9, 9]));
    assert.ok(!tracker.atBoundary);
    tracker.push(Buffer.from([9]));
    assert.ok(tracker.atBoundary);
  });
});

describe("keepWebSocketAlive", () => {
  it("pings a quiet client at a frame boundary, and never inside a frame", async () => {
    const client = new PassThrough();
    const server = new PassThrough();
    const written: Buffer[] = [];
    client.on("data", (c: Buffer) => written.push(c));
    server.pipe(client);
    let pings = 0;
    const stop = keepWebSocketAlive(client, server, { intervalMs: 100, onPing: () => pings++ });
    try {
      // Half a frame, then silence: no ping may land inside it.
      const half = frame(0x2, Buffer.alloc(10, 7));
      server.write(half.subarray(0, 5));
      await new Promise((r) => setTimeout(r, 350));
      assert.equal(pings, 0);
      server.write(half.subarray(5));
      await new Promise((r) => setTimeout(r, 350));
      assert.ok(pings >= 1, "no ping after a quiet interval at a boundary");
      const bytes = Buffer.concat(written);
      assert.deepEqual(bytes.subarray(0, half.length), half);
      assert.deepEqual(bytes.subarray(half.length, half.length + 2), pingFrame);
    } finally {
      stop();
    }
  });

  it("stays quiet while data flows, and with an interval of 0", async () => {
    const client = new PassThrough();
    const server = new PassThrough();
    server.pipe(client);
    client.resume();
    let pings = 0;
    const stop = keepWebSocketAlive(client, server, { intervalMs: 200, onPing: () => pings++ });
    const busy = setInterval(() => server.write(frame(0x2, Buffer.from("x"))), 50);
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(busy);
    stop();
    assert.equal(pings, 0);
    const off = keepWebSocketAlive(client, server, { intervalMs: 0, onPing: () => pings++ });
    await new Promise((r) => setTimeout(r, 200));
    off();
    assert.equal(pings, 0);
  });
});
