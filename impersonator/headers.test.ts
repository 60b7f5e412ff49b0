import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  clientAddress,
  downstreamHeaders,
  incomingHeaders,
  isLongRunning,
  pathWithoutQuery,
  SECURITY_HEADERS,
  serializeHead,
  upstreamHeaders,
} from "./headers.ts";
import type { Forward } from "./types.ts";

const forward = (headers: Forward["headers"]): Forward => ({
  action: "forward",
  headers,
  audit: {
    user: { username: "u", groups: [], extra: {} },
    authenticatedBy: "token",
    passthrough: false,
    verb: "get",
    resource: "pods",
  },
});

describe("incomingHeaders", () => {
  it("lower-cases names, keeps repeats apart and drops pseudo and hop-by-hop headers", () => {
    const headers = incomingHeaders([
      ":method",
      "GET",
      ":authority",
      "proxy:8444",
      "Impersonate-Group",
      "a,b",
      "impersonate-group",
      "c",
      "Connection",
      "keep-alive, X-Private",
      "X-Private",
      "1",
      "Transfer-Encoding",
      "chunked",
      "TE",
      "trailers",
      "Upgrade",
      "websocket",
      "Accept",
      "application/json",
    ]);
    assert.deepEqual(headers, {
      host: "proxy:8444",
      "impersonate-group": ["a,b", "c"],
      accept: "application/json",
    });
  });

  it("prefers Host over :authority", () => {
    assert.deepEqual(incomingHeaders([":authority", "a", "Host", "b"]), { host: "b" });
  });
});

describe("upstreamHeaders", () => {
  it("removes every client credential, whatever its case, and adds the decision's", () => {
    const out = upstreamHeaders(
      {
        authorization: "Bearer client",
        "impersonate-user": "root",
        "impersonate-extra-scopes": "x",
        "impersonate-uid": "1",
        "x-forwarded-for": "6.6.6.6",
        "x-remote-user": "system:admin",
        "X-Remote-Group": "system:masters",
        host: "proxy",
        accept: "*/*",
      },
      forward({ Authorization: "Bearer proxy", "Impersonate-User": "alice" }),
      "10.0.0.7",
    );
    assert.deepEqual(out, {
      accept: "*/*",
      authorization: "Bearer proxy",
      "impersonate-user": "alice",
      "x-forwarded-for": "10.0.0.7",
    });
  });
});

describe("downstreamHeaders", () => {
  it("drops hop-by-hop headers and sets the security headers", () => {
    const out = downstreamHeaders({
      "content-type": ["application/json"],
      connection: ["keep-alive, x-conn"],
      "x-conn": ["1"],
      "keep-alive": ["timeout=5"],
      "transfer-encoding": ["chunked"],
      "set-cookie": ["a=1", "b=2"],
      "cache-control": ["no-cache, private"],
    });
    assert.deepEqual(out, {
      "content-type": "application/json",
      "set-cookie": ["a=1", "b=2"],
      ...SECURITY_HEADERS,
    });
  });
});

describe("helpers", () => {
  it("classifies long-running requests as kube-apiserver does", () => {
    assert.equal(isLongRunning("watch", "pods"), true);
    assert.equal(isLongRunning("get", "pods/log"), true);
    assert.equal(isLongRunning("create", "pods/exec"), true);
    assert.equal(isLongRunning("get", "pods/status"), false);
    assert.equal(isLongRunning("list", ""), false);
  });

  it("formats addresses, paths and heads", () => {
    assert.equal(clientAddress("::ffff:10.1.2.3"), "10.1.2.3");
    assert.equal(clientAddress("::1"), "::1");
    assert.equal(pathWithoutQuery("/api/v1/pods?labelSelector=a"), "/api/v1/pods");
    assert.equal(
      serializeHead("HTTP/1.1 101 Switching Protocols", ["Upgrade", "SPDY/3.1"]),
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\n\r\n",
    );
    assert.equal(
      serializeHead("GET / HTTP/1.1", { a: ["1", "2"] }),
      "GET / HTTP/1.1\r\na: 1\r\na: 2\r\n\r\n",
    );
  });
});
