import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type Http2ServerRequest } from "node:http2";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import {
  bodyUnread,
  resetIfUnread,
  tooManyRequestsBody,
  tooManyRequestsHeaders,
  unreadBodyHeaders,
} from "./inflight.ts";
import { turns } from "./turns.ts";

/** What the handler of a real HTTP/2 server sees for a request it answers without reading. */
async function seenByHandler(method: string, body?: Buffer): Promise<boolean> {
  let seen: boolean | undefined;
  const server = createServer((req: Http2ServerRequest, res) => {
    seen = bodyUnread(req);
    res.end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const stream = session.request({ ":method": method, ":path": "/" }, { endStream: body === undefined });
    if (body !== undefined) stream.write(body);
    stream.resume();
    await once(stream, "response");
    stream.destroy();
  } finally {
    session.destroy();
    await new Promise((ok) => server.close(ok));
  }
  assert.notEqual(seen, undefined);
  return seen!;
}

describe("bodyUnread", () => {
  it("is false for an HTTP/2 request whose headers ended the stream (a GET), though `complete` is not yet set", async () => {
    assert.equal(await seenByHandler("GET"), false);
  });

  it("is true for an HTTP/2 request whose body is still arriving", async () => {
    assert.equal(await seenByHandler("POST", Buffer.alloc(1024)), true);
  });

  it("follows `complete` for HTTP/1.1", () => {
    assert.equal(bodyUnread({ complete: true }), false);
    assert.equal(bodyUnread({ complete: false }), true);
  });
});

describe("resetIfUnread and unreadBodyHeaders", () => {
  /** An HTTP/2 request whose body is still arriving, and whether its stream was closed. */
  const arriving = () => {
    const seen = { closed: false };
    const req = {
      complete: false,
      stream: {
        endAfterHeaders: false,
        close: () => {
          seen.closed = true;
        },
      },
    };
    return { req, seen };
  };

  it("resets the stream of a refusal answered with its body unread, once the answer is out", async () => {
    const { req, seen } = arriving();
    resetIfUnread(req, 413);
    assert.equal(seen.closed, false);
    // Turns run in order: the reset's has run once a later one has.
    await turns.take();
    assert.equal(seen.closed, true);
  });

  it("leaves the stream of a request that was served: the client ends it", async () => {
    const { req, seen } = arriving();
    resetIfUnread(req, 200);
    await turns.take();
    assert.equal(seen.closed, false);
  });

  it("closes an HTTP/1.1 connection only after a refusal with the body unread", () => {
    assert.deepEqual(unreadBodyHeaders({ complete: false }, 408), { connection: "close" });
    assert.deepEqual(unreadBodyHeaders({ complete: false }, 201), {});
    assert.deepEqual(unreadBodyHeaders({ complete: true }, 413), {});
  });
});

describe("the 429", () => {
  it("is kube-apiserver's: TooManyRequests, retry after the second the header says", () => {
    const body = JSON.parse(tooManyRequestsBody) as Record<string, unknown>;
    assert.equal(body.message, "Too many requests, please try again later.");
    assert.equal(body.reason, "TooManyRequests");
    assert.equal(body.code, 429);
    assert.deepEqual(body.details, { retryAfterSeconds: Number(tooManyRequestsHeaders["retry-after"]) });
    assert.equal(tooManyRequestsHeaders["retry-after"], "1");
  });
});
