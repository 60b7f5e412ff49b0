// Request-smuggling and framing shapes sent raw to the impersonation proxy over TLS: each is
// refused with HTTP 400 before anything reaches kube-apiserver, and a well-formed request on a
// fresh connection still goes through afterwards.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type RawProxy, startRawProxy } from "../harness/raw-proxy.ts";

const start = "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: proxy\r\n";
const shapes: [string, string][] = [
  [
    "Content-Length and Transfer-Encoding together",
    `${start}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  ],
  ["two different Content-Lengths", `${start}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`],
  ["a Content-Length with a sign", `${start}Content-Length: +5\r\n\r\nhello`],
  ["a Content-Length that is not a number", `${start}Content-Length: five\r\n\r\nhello`],
  ["a Content-Length list", `${start}Content-Length: 5, 5\r\n\r\nhello`],
  ["chunked that is not the last coding", `${start}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
  ["an obsolete line folding", `${start}X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n`],
  ["a space before the colon", `${start}Content-Length : 0\r\n\r\n`],
  ["a NUL in a header value", `${start}X-Nul: a\u0000b\r\nContent-Length: 0\r\n\r\n`],
  ["a chunk size that is not hex", `${start}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`],
  ["a chunk without its CRLF", `${start}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n`],
  ["a header name with a space", `${start}Bad Header: x\r\nContent-Length: 0\r\n\r\n`],
  ["an unknown HTTP version", "GET /api HTTP/9.9\r\nHost: proxy\r\n\r\n"],
  ["a method with a control character", "G\u0001T /api HTTP/1.1\r\nHost: proxy\r\n\r\n"],
];

describe(`impersonation proxy: smuggling and framing shapes (${shapes.length} cases)`, () => {
  let proxy: RawProxy;

  before(async () => {
    proxy = await startRawProxy({ caName: "proxy bad-input CA" });
  });
  after(() => proxy?.close());

  for (const [name, request] of shapes) {
    it(`refuses ${name} with 400 before forwarding`, async () => {
      const before = proxy.received.length;
      const answer = await proxy.raw(request);
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, JSON.stringify(answer.slice(0, 80)));
      assert.equal(proxy.received.length, before, "nothing reached kube-apiserver");
    });
  }

  it("still forwards a well-formed request", async () => {
    const answer = await proxy.raw(
      "GET /api/v1/namespaces HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n",
    );
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    const last = proxy.received.at(-1);
    assert.equal(`${last?.method} ${last?.url}`, "GET /api/v1/namespaces");
  });
});
