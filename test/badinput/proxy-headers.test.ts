// Header forgery and upgrade smuggling sent raw to the impersonation proxy over TLS. Forged
// identity headers (Impersonate-*, X-Remote-*, Authorization, X-Forwarded-For) and hop-by-hop
// headers never reach kube-apiserver: it sees the decision's identity and nothing of the client's.
// Upgrades other than SPDY/3.1 and websocket (h2c above all) are refused before any connection to
// kube-apiserver; an upgrade kube-apiserver does not accept closes the connection, so nothing
// pipelined behind it is forwarded with the proxy's credentials (CVE-2018-1002105).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type RawProxy, startRawProxy } from "../harness/raw-proxy.ts";

/** What kube-apiserver must see of every forwarded request, whatever the client added. */
const decided = {
  authorization: ["Bearer proxy-token"],
  "impersonate-user": ["alice"],
  "x-forwarded-for": ["127.0.0.1"],
};

/**
 * name, the client's extra header lines, and the identity and hop-by-hop headers kube-apiserver
 * receives (any of those not listed must be absent).
 */
const forgeries: [string, string[], Record<string, string[]>][] = [
  ["Impersonate-User naming another user", ["Impersonate-User: system:admin"], decided],
  ["Impersonate-User twice", ["Impersonate-User: bob", "Impersonate-User: carol"], decided],
  ["Impersonate-Group system:masters", ["Impersonate-Group: system:masters"], decided],
  ["Impersonate-Uid", ["Impersonate-Uid: 0"], decided],
  ["Impersonate-Extra-*", ["Impersonate-Extra-scopes: cluster-admin"], decided],
  ["Impersonate-* in odd case", ["iMPERSONATE-gROUP: system:masters", "IMPERSONATE-USER: root"], decided],
  ["a client Authorization bearer token", ["Authorization: Bearer stolen-token"], decided],
  ["a client Authorization basic credential", ["Authorization: Basic YWRtaW46YWRtaW4="], decided],
  ["a forged X-Forwarded-For", ["X-Forwarded-For: 10.0.0.1"], decided],
  ["X-Remote-User", ["X-Remote-User: system:admin"], decided],
  ["X-Remote-Group", ["X-Remote-Group: system:masters"], decided],
  ["X-Remote-Extra-*", ["X-Remote-Extra-Scopes: cluster-admin"], decided],
  ["a header named in Connection", ["Connection: X-Secret", "X-Secret: 1"], decided],
  [
    "Impersonate-User named in Connection",
    ["Connection: Impersonate-User", "Impersonate-User: root"],
    decided,
  ],
  ["Keep-Alive", ["Keep-Alive: timeout=600"], decided],
  ["Proxy-Connection", ["Proxy-Connection: keep-alive"], decided],
  ["Proxy-Authorization", ["Proxy-Authorization: Basic cHJveHk6cHJveHk="], decided],
  ["TE", ["TE: trailers"], decided],
  ["Trailer", ["Trailer: Impersonate-Group"], decided],
  ["Upgrade without Connection: Upgrade", ["Upgrade: h2c"], decided],
  ["HTTP2-Settings without an upgrade", ["HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"], decided],
];

/** Header names kube-apiserver must receive only as the decision set them, or not at all. */
const watched =
  /^(authorization|impersonate-.*|x-remote-.*|x-forwarded-for|x-secret|connection|keep-alive|proxy-.*|te|trailer|upgrade|http2-settings)$/;

const unsupportedUpgrade =
  '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"unsupported upgrade protocol: only SPDY/3.1 and websocket are proxied","reason":"BadRequest","code":400}\n';

/** name, the upgrade header lines: each is refused with exactly that 400 and reaches nobody. */
const refusedUpgrades: [string, string[]][] = [
  [
    "h2c",
    ["Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"],
  ],
  ["h2c in odd case", ["Connection: upgrade", "Upgrade: H2C"]],
  ["TLS", ["Connection: Upgrade", "Upgrade: TLS/1.2"]],
  ["websocket listed after another protocol", ["Connection: Upgrade", "Upgrade: h2c, websocket"]],
  ["a websocket look-alike", ["Connection: Upgrade", "Upgrade: websocket2"]],
  ["an empty protocol", ["Connection: Upgrade", "Upgrade: x"]],
];

for (const upstreamHTTP2 of [false, true])
  describe(`impersonation proxy: forged headers and upgrade smuggling (${forgeries.length + refusedUpgrades.length + 1} cases), kube-apiserver over ${upstreamHTTP2 ? "HTTP/2" : "HTTP/1.1 only"}`, () => {
    let proxy: RawProxy;

    before(async () => {
      proxy = await startRawProxy({ caName: "proxy header bad-input CA", upstreamHTTP2 });
    });
    after(() => proxy?.close());
    const raw = (text: string) => proxy.raw(text);

    const request = (method: string, path: string, lines: string[]) =>
      `${method} ${path} HTTP/1.1\r\nHost: proxy\r\n${lines.map((l) => `${l}\r\n`).join("")}`;

    for (const [name, lines, expected] of forgeries) {
      it(`forwards ${name} with only the decision's identity`, async () => {
        const answer = await raw(
          `${request("GET", "/api/v1/namespaces", [...lines, "Connection: close"])}\r\n`,
        );
        assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/, JSON.stringify(answer.slice(0, 80)));
        const seen: Record<string, string[]> = {};
        const headers = proxy.received.at(-1)!.rawHeaders;
        for (let i = 0; i + 1 < headers.length; i += 2) {
          const header = headers[i]!.toLowerCase();
          if (!watched.test(header)) continue;
          seen[header] = [...(seen[header] ?? []), headers[i + 1]!];
        }
        // Node's client adds its own `Connection` to every request it sends.
        delete seen.connection;
        assert.deepEqual(seen, expected);
      });
    }

    for (const [name, lines] of refusedUpgrades) {
      it(`refuses an upgrade to ${name} with 400 before connecting to kube-apiserver`, async () => {
        const before = proxy.received.length;
        const answer = await raw(`${request("GET", "/api/v1/namespaces/default/pods/p/exec", lines)}\r\n`);
        assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, JSON.stringify(answer.slice(0, 80)));
        assert.equal(answer.slice(answer.indexOf("\r\n\r\n") + 4), unsupportedUpgrade);
        assert.equal(proxy.received.length, before, "nothing reached kube-apiserver");
      });
    }

    it("relays a websocket upgrade kube-apiserver answers without 101, then closes: a request pipelined behind it goes nowhere", async () => {
      const before = proxy.received.length;
      const upgrade = request("GET", "/api/v1/namespaces/default/pods/p/exec", [
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      ]);
      const smuggled = request("GET", "/api/v1/secrets", ["Content-Length: 0"]);
      const answer = await raw(`${upgrade}\r\n${smuggled}\r\n`);
      assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/, JSON.stringify(answer.slice(0, 80)));
      assert.equal(answer.match(/HTTP\/1\.1 /g)?.length, 1, "one answer, then the connection closed");
      assert.deepEqual(
        proxy.received.slice(before).map((r) => r.url),
        ["/api/v1/namespaces/default/pods/p/exec"],
      );
    });
  });
