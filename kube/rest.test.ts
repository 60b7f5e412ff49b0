import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { classifyFailure } from "../controllers/runtime/listwatch.ts";
import { ApiError, isNotFound, KubeRestClient, StreamClosedError } from "./rest.ts";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

let server: http.Server;
let handler: Handler = (_req, res) => res.end();
let seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

function kubeConfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "s3cret-token" }],
    contexts: [{ name: "ctx", cluster: "c", user: "u" }],
    currentContext: "ctx",
  });
  return kc;
}

let client: KubeRestClient;

before(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  client = new KubeRestClient(kubeConfig((server.address() as AddressInfo).port));
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function use(h: Handler) {
  handler = h;
  seen = [];
}

describe("KubeRestClient", () => {
  it("sends authenticated JSON requests with query parameters and parses the answer", async () => {
    use((_req, res) => {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ kind: "ConfigMapList", items: [] }));
    });
    const got = await client.request<{ kind: string }>({
      method: "GET",
      path: "/api/v1/namespaces/ns/configmaps",
      query: { labelSelector: "a=b,c in (d)", limit: 5, continue: undefined },
    });
    assert.equal(got.kind, "ConfigMapList");
    assert.equal(seen[0]?.url, "/api/v1/namespaces/ns/configmaps?labelSelector=a%3Db%2Cc+in+%28d%29&limit=5");
    assert.equal(seen[0]?.headers.authorization, "Bearer s3cret-token");
    assert.equal(seen[0]?.headers["user-agent"], "concierge");
  });

  it("sends patch bodies with their content type", async () => {
    use((_req, res) => res.end("{}"));
    await client.request({
      method: "PATCH",
      path: "/x/status",
      body: { status: { a: 1 } },
      contentType: "application/merge-patch+json",
    });
    assert.equal(seen[0]?.method, "PATCH");
    assert.equal(seen[0]?.headers["content-type"], "application/merge-patch+json");
    assert.equal(seen[0]?.body, '{"status":{"a":1}}');
  });

  it("turns a Status answer into an ApiError with code and reason", async () => {
    use((_req, res) => {
      res.statusCode = 404;
      res.end(
        JSON.stringify({
          kind: "Status",
          code: 404,
          reason: "NotFound",
          message: 'configmaps "x" not found',
        }),
      );
    });
    const err = await client
      .request({ method: "GET", path: "/api/v1/namespaces/ns/configmaps/x" })
      .catch((e) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.code, 404);
    assert.equal(err.reason, "NotFound");
    assert.equal(isNotFound(err), true);
    assert.match(err.message, /configmaps "x" not found \(HTTP 404\)/);
    assert.ok(!err.message.includes("s3cret"));
  });

  it("copes with error answers that are not a Status", async () => {
    use((_req, res) => {
      res.statusCode = 502;
      res.end("<html>bad gateway</html>");
    });
    const err = await client.request({ method: "GET", path: "/x" }).catch((e: unknown) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.code, 502);
    assert.equal(classifyFailure(err), "server_error");
  });

  it("streams lines, also when they are split across chunks", async () => {
    use((_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write('{"type":"ADDED","object":{"a":');
      setTimeout(() => {
        res.write('1}}\n{"type":"BOOKMARK"');
        setTimeout(() => res.end(',"object":{}}\n'), 5);
      }, 5);
    });
    const lines: string[] = [];
    let opened = 0;
    let activity = 0;
    await client.stream({
      path: "/api/v1/configmaps",
      query: { watch: true, resourceVersion: "rv-1" },
      signal: new AbortController().signal,
      onOpen: () => opened++,
      onActivity: () => activity++,
      onLine: (l) => lines.push(l),
    });
    assert.deepEqual(lines, ['{"type":"ADDED","object":{"a":1}}', '{"type":"BOOKMARK","object":{}}']);
    assert.equal(opened, 1);
    assert.ok(activity >= 3);
    assert.equal(seen[0]?.url, "/api/v1/configmaps?watch=true&resourceVersion=rv-1");
  });

  it("rejects a stream refused with an HTTP error", async () => {
    use((_req, res) => {
      res.statusCode = 410;
      res.end(
        JSON.stringify({ kind: "Status", code: 410, reason: "Expired", message: "too old resource version" }),
      );
    });
    const err = await client
      .stream({ path: "/w", signal: new AbortController().signal, onLine: () => {} })
      .catch((e) => e);
    assert.equal(classifyFailure(err), "gone");
  });

  it("rejects when the connection drops mid-stream", async () => {
    use((req, res) => {
      res.writeHead(200);
      res.write('{"type":"ADDED","object":{}}\n');
      setTimeout(() => req.socket.destroy(), 5);
    });
    const err = await client
      .stream({ path: "/w", signal: new AbortController().signal, onLine: () => {} })
      .catch((e) => e);
    assert.ok(err instanceof Error);
    assert.ok(
      err instanceof StreamClosedError || ["stream_closed", "network"].includes(classifyFailure(err)),
      String(err),
    );
  });

  it("rejects when aborted, and when a line handler throws", async () => {
    use((_req, res) => {
      res.writeHead(200);
      res.write('{"type":"ADDED","object":{}}\n');
    });
    const abort = new AbortController();
    const aborted = client.stream({
      path: "/w",
      signal: abort.signal,
      onOpen: () => abort.abort(),
      onLine: () => {},
    });
    await assert.rejects(aborted);
    const thrown = client.stream({
      path: "/w",
      signal: new AbortController().signal,
      onLine: () => {
        throw new Error("bad line");
      },
    });
    await assert.rejects(thrown, /bad line/);
  });

  it("reports a refused connection as such", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const err = await new KubeRestClient(kubeConfig(port))
      .request({ method: "GET", path: "/" })
      .catch((e) => e);
    assert.equal(classifyFailure(err), "connection_refused");
  });
});
