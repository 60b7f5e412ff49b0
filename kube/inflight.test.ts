import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type Http2ServerRequest } from "node:http2";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { bodyUnread } from "./inflight.ts";

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
