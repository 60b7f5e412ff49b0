// Request-smuggling and framing shapes sent raw to the impersonation proxy over TLS: each is
// refused with HTTP 400 before anything reaches kube-apiserver, and a well-formed request on a
// fresh connection still goes through afterwards.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:https";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { type ImpersonationProxyServer, startImpersonationProxy } from "../../impersonator/server.ts";
import { ProxyTLSHolder } from "../../impersonator/tlsholder.ts";
import type { Decision } from "../../impersonator/types.ts";
import { Metrics } from "../../observability/metrics.ts";
import { testCA } from "../harness/tls.ts";

const forward: Decision = {
  action: "forward",
  headers: { authorization: "Bearer proxy-token", "impersonate-user": "alice" },
  audit: {
    user: { username: "alice", groups: [], extra: {} },
    authenticatedBy: "token",
    passthrough: false,
    verb: "get",
    resource: "pods",
  },
};

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
  let upstream: Server;
  const received: string[] = [];
  let proxy: ImpersonationProxyServer;
  let caPEM: string;

  before(async () => {
    const ca = await testCA("proxy bad-input CA");
    caPEM = ca.caPEM;
    const serving = await ca.issue({ cn: "127.0.0.1", ips: ["127.0.0.1"] });
    upstream = createServer({ cert: serving.certPEM, key: serving.keyPEM }, (req, res) => {
      received.push(`${req.method} ${req.url}`);
      req.resume();
      req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
    });
    await new Promise<void>((ok) => upstream.listen(0, "127.0.0.1", ok));
    proxy = await startImpersonationProxy({
      port: 0,
      host: "127.0.0.1",
      tls: new ProxyTLSHolder({ certPEM: serving.certPEM, keyPEM: serving.keyPEM, clientCAPEMs: [] }),
      decide: async () => forward,
      upstream: { url: `https://127.0.0.1:${(upstream.address() as { port: number }).port}`, caPEM },
      metrics: new Metrics(),
    });
  });
  after(async () => {
    await proxy?.close();
    upstream?.closeAllConnections();
    await new Promise<void>((ok) => upstream?.close(() => ok()));
  });

  /** Everything the proxy answers on one connection, until it closes it (or 5 s pass). */
  function raw(text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect(
        { host: "127.0.0.1", port: proxy.port, ca: caPEM, ALPNProtocols: ["http/1.1"] },
        () => socket.write(Buffer.from(text, "latin1")),
      );
      const timer = setTimeout(() => socket.destroy(), 5000);
      let answer = "";
      socket.setEncoding("latin1");
      socket.on("data", (d: string) => {
        answer += d;
      });
      socket.on("error", reject);
      socket.on("close", () => {
        clearTimeout(timer);
        resolve(answer);
      });
    });
  }

  for (const [name, request] of shapes) {
    it(`refuses ${name} with 400 before forwarding`, async () => {
      const before = received.length;
      const answer = await raw(request);
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, JSON.stringify(answer.slice(0, 80)));
      assert.equal(received.length, before, "nothing reached kube-apiserver");
    });
  }

  it("still forwards a well-formed request", async () => {
    const answer = await raw("GET /api/v1/namespaces HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n");
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(received.at(-1), "GET /api/v1/namespaces");
  });
});
