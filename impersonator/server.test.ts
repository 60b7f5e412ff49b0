import assert from "node:assert/strict";
import type { X509Certificate } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createSecureServer as createH2Server, connect as h2Connect } from "node:http2";
import { createServer, request as h1Request, type Server } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { newCA, newCert } from "../hack/pki.ts";
import { memoryLogger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { type KeyPair, testCA } from "../test/harness/tls.ts";
import { assertTooManyRequests } from "../test/harness/too-many-requests.ts";
import {
  type ImpersonationProxyOptions,
  ImpersonationProxyRunner,
  startImpersonationProxy,
} from "./server.ts";
import { ProxyTLSHolder } from "./tlsholder.ts";
import type { Decision, IncomingRequest, ProxyTLS } from "./types.ts";

/** The watch test's client tells the stand-in kube-apiserver that it saw an event. */
const watchAcks = new EventEmitter();

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(5);
  }
}

interface ClientCA {
  caPEM: string;
  client: KeyPair;
}

// A CA and one client certificate it signed (test/harness/tls.ts issues serving certificates only).
async function clientCA(cn: string, user: string): Promise<ClientCA> {
  const dir = await mkdtemp(join(tmpdir(), "concierge-imp-"));
  try {
    const ca = await newCA(dir, "ca", cn, "ec");
    const leaf = await newCert(dir, ca, {
      name: "client",
      cn: user,
      organizations: ["devs"],
      usage: "client",
    });
    const [caPEM, certPEM, keyPEM] = await Promise.all([
      readFile(ca.cert, "utf8"),
      readFile(leaf.cert, "utf8"),
      readFile(leaf.key, "utf8"),
    ]);
    return { caPEM, client: { certPEM, keyPEM } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Received {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
}

/**
 * A stand-in kube-apiserver: records what arrives, streams watches, echoes bodies and upgrades.
 * Over HTTP/1.1 only, or HTTP/2 and HTTP/1.1 (for upgrades) as kube-apiserver does.
 */
async function fakeUpstream(serving: KeyPair, http2: boolean) {
  const received: Received[] = [];
  const upgradeSockets: Socket[] = [];
  const hangsClosed: string[] = [];
  const record = (req: IncomingMessage) =>
    received.push({
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
    });
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    record(req);
    if (req.url?.startsWith("/watch")) {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache, private" });
      res.flushHeaders?.();
      // Lockstep: the next event is written only once the client has seen the last one, so a
      // proxy that held events back would stall the watch instead of delivering it late.
      let n = 0;
      const writeNext = () => {
        res.write(`${JSON.stringify({ type: "MODIFIED", n })}\n`);
        if (++n === 4) {
          watchAcks.off("ack", writeNext);
          res.end();
        }
      };
      watchAcks.on("ack", writeNext);
      res.on("close", () => watchAcks.off("ack", writeNext));
      writeNext();
      return;
    }
    if (req.url?.startsWith("/stream-echo")) {
      // Answers each request chunk as it arrives: a proxy that buffered either body would stall.
      res.writeHead(200, { "content-type": "text/plain" });
      res.flushHeaders?.();
      req.on("data", (chunk: Buffer) => res.write(`got:${chunk.toString()}`));
      req.on("end", () => res.end("done"));
      return;
    }
    if (req.url?.startsWith("/hang")) {
      res.on("close", () => hangsClosed.push(req.url ?? ""));
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      res.writeHead(200, {
        "content-type": "application/json",
        "x-upstream": "yes",
        // A hop-by-hop header the proxy must drop; HTTP/2 has none.
        ...(req.httpVersion === "2.0" ? {} : { connection: "keep-alive" }),
      });
      res.end(JSON.stringify({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString() }));
    });
  };
  const tls = { cert: serving.certPEM, key: serving.keyPEM };
  const server: Server = http2
    ? (createH2Server({ ...tls, allowHTTP1: true }, handler as never) as unknown as Server)
    : createServer(tls, handler);
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    record(req);
    upgradeSockets.push(socket);
    if (req.headers["x-test-refuse"]) {
      const body = '{"kind":"Status","code":403}';
      socket.write(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${req.headers.upgrade}\r\nX-Stream-Protocol-Version: v5.channel.k8s.io\r\n\r\n`,
    );
    if (head.length > 0) socket.write(head);
    socket.on("data", (d: Buffer) => socket.write(Buffer.concat([Buffer.from("echo:"), d])));
  });
  const stats = { connections: 0 };
  const sockets = new Set<Socket>();
  server.on("secureConnection", (socket: Socket) => {
    stats.connections++;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as { port: number };
  return {
    port,
    stats,
    received,
    upgradeSockets,
    hangsClosed,
    close: () =>
      new Promise<void>((ok) => {
        for (const s of sockets) s.destroy();
        for (const s of upgradeSockets) s.destroy();
        server.close(() => ok());
      }),
  };
}

const decisionHeaders = {
  authorization: "Bearer proxy-sa-token",
  "impersonate-user": "alice",
  "impersonate-group": ["devs", "system:authenticated"],
};

function stubDecider() {
  const seen: IncomingRequest[] = [];
  const decide = async (req: IncomingRequest): Promise<Decision> => {
    seen.push(req);
    if (req.path.startsWith("/refuse")) {
      return { action: "refuse", code: 403, reason: "Forbidden", message: "no, decision made by test" };
    }
    return {
      action: "forward",
      headers: req.path.includes("badheader") ? { "impersonate-extra-x": "a\r\nb" } : decisionHeaders,
      audit: {
        user: { username: "alice", groups: ["devs"], extra: {} },
        authenticatedBy: "token",
        passthrough: false,
        verb: "get",
        resource: "pods",
      },
    };
  };
  return { decide, seen };
}

/** Reads a raw socket until `done` accepts what has arrived. */
function readUntil(socket: Duplex, done: (text: string) => boolean, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out; got ${JSON.stringify(text)}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      text += d.toString();
      if (done(text)) {
        cleanup();
        resolve(text);
      }
    };
    const onEnd = () => {
      cleanup();
      resolve(text);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
    };
    socket.on("data", onData);
    socket.on("end", onEnd);
  });
}

type Duplex = import("node:stream").Duplex;

for (const upstreamHTTP2 of [false, true])
  describe(`impersonation proxy server, kube-apiserver over ${upstreamHTTP2 ? "HTTP/2" : "HTTP/1.1 only"}`, () => {
    let servingCA: Awaited<ReturnType<typeof testCA>>;
    let serving: KeyPair;
    let rotated: KeyPair;
    let trusted: ClientCA;
    let untrusted: ClientCA;
    let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
    let upstreamCAPEM: string;

    before(async () => {
      const upstreamCA = await testCA("fake kube-apiserver CA");
      upstreamCAPEM = upstreamCA.caPEM;
      [servingCA, trusted, untrusted] = await Promise.all([
        testCA("proxy serving CA"),
        clientCA("client CA", "carol"),
        clientCA("another CA", "mallory"),
      ]);
      [serving, rotated] = await Promise.all([
        servingCA.issue({ cn: "proxy-one", ips: ["127.0.0.1"] }),
        servingCA.issue({ cn: "proxy-two", ips: ["127.0.0.1"] }),
      ]);
      upstream = await fakeUpstream(
        await upstreamCA.issue({ cn: "127.0.0.1", ips: ["127.0.0.1"] }),
        upstreamHTTP2,
      );
    });
    after(() => upstream.close());

    const tlsMaterial = (pair: KeyPair = serving): ProxyTLS => ({
      certPEM: pair.certPEM,
      keyPEM: pair.keyPEM,
      clientCAPEMs: [trusted.caPEM],
    });

    async function proxy(extra: Partial<ImpersonationProxyOptions> = {}) {
      const decider = stubDecider();
      const holder = new ProxyTLSHolder(tlsMaterial());
      const { log, lines } = memoryLogger("info");
      const metrics = new Metrics();
      const server = await startImpersonationProxy({
        port: 0,
        host: "127.0.0.1",
        tls: holder,
        decide: decider.decide,
        upstream: { url: `https://127.0.0.1:${upstream.port}`, caPEM: upstreamCAPEM },
        log,
        metrics,
        ...extra,
      });
      return { server, holder, decider, lines, metrics, port: server.port };
    }

    function h2(port: number, cert?: KeyPair) {
      return h2Connect(`https://127.0.0.1:${port}`, {
        ca: servingCA.caPEM,
        ...(cert ? { cert: cert.certPEM, key: cert.keyPEM } : {}),
      });
    }

    async function h2Get(
      port: number,
      path: string,
      headers: Record<string, string | string[]> = {},
      cert?: KeyPair,
    ) {
      const session = h2(port, cert);
      try {
        const stream = session.request({ ":path": path, ...headers });
        const [responseHeaders] = (await once(stream, "response")) as [Record<string, string | string[]>];
        let body = "";
        for await (const chunk of stream) body += chunk;
        return { headers: responseHeaders, status: Number(responseHeaders[":status"]), body };
      } finally {
        session.close();
      }
    }

    function h1(port: number, method: string, path: string, headers: Record<string, string | string[]> = {}) {
      return new Promise<{
        status: number;
        headers: IncomingMessage["headers"];
        body: string;
        httpVersion: string;
      }>((resolve, reject) => {
        const req = h1Request({
          host: "127.0.0.1",
          port,
          method,
          path,
          headers,
          ca: servingCA.caPEM,
          agent: false,
        });
        req.on("error", reject);
        req.on("response", async (res) => {
          let body = "";
          for await (const chunk of res) body += chunk;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, httpVersion: res.httpVersion });
        });
        req.end();
      });
    }

    function rawUpgrade(port: number, request: string, cert?: KeyPair): Promise<TLSSocket> {
      return new Promise((resolve, reject) => {
        const socket = tlsConnect(
          {
            host: "127.0.0.1",
            port,
            ca: servingCA.caPEM,
            ...(cert ? { cert: cert.certPEM, key: cert.keyPEM } : {}),
          },
          () => {
            socket.write(request);
            resolve(socket);
          },
        );
        socket.on("error", reject);
      });
    }

    const spdyRequest = (extra = "") =>
      "POST /api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true HTTP/1.1\r\nHost: proxy\r\n" +
      "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v5.channel.k8s.io\r\n" +
      `Authorization: Bearer client-token\r\nImpersonate-User: root\r\nContent-Length: 0\r\n${extra}\r\n`;

    it("forwards an HTTP/2 request with the client's credentials replaced by the decision's", async () => {
      const p = await proxy();
      try {
        const before = upstream.received.length;
        const res = await h2Get(p.port, "/api/v1/namespaces?limit=1", {
          authorization: "Bearer client-token",
          "impersonate-user": "root",
          "Impersonate-Extra-Scopes": "x",
          "x-forwarded-for": "6.6.6.6",
          accept: "application/json",
        });
        assert.equal(res.status, 200);
        assert.deepEqual(JSON.parse(res.body), {
          method: "GET",
          url: "/api/v1/namespaces?limit=1",
          body: "",
        });
        assert.equal(res.headers["x-upstream"], "yes");
        assert.equal(res.headers["x-content-type-options"], "nosniff");
        assert.equal(res.headers["cache-control"], "no-cache,no-store,max-age=0,must-revalidate");
        const got = upstream.received[before]!;
        assert.equal(got.headers.authorization, "Bearer proxy-sa-token");
        assert.equal(got.headers["impersonate-user"], "alice");
        assert.equal(got.headers["impersonate-extra-scopes"], undefined);
        assert.equal(got.headers["x-forwarded-for"], "127.0.0.1");
        assert.equal(got.headers.accept, "application/json");
        const groups = got.rawHeaders.filter(
          (_, i) => got.rawHeaders[i - 1]?.toLowerCase() === "impersonate-group",
        );
        assert.deepEqual(groups, ["devs", "system:authenticated"]);
        const asked = p.decider.seen.at(-1)!;
        assert.equal(asked.upgrade, false);
        assert.equal(asked.headers.authorization, "Bearer client-token");
        assert.equal(asked.headers.host, `127.0.0.1:${p.port}`);
        assert.ok(Object.keys(asked.headers).every((k) => !k.startsWith(":") && k === k.toLowerCase()));
        assert.equal(asked.verifiedClientCertificate, undefined);
        const audit = p.lines.find((l) => l.message === "audit");
        assert.equal(audit?.user, "alice");
        assert.equal(audit?.path, "/api/v1/namespaces");
        assert.equal(audit?.code, 200);
        assert.ok(!JSON.stringify(p.lines).includes("client-token"));
        assert.ok(!JSON.stringify(p.lines).includes("proxy-sa-token"));
        const text = await p.metrics.text();
        assert.match(text, /concierge_impersonation_proxy_requests_total\{method="GET",code="200"\} 1/);
        assert.match(
          text,
          /concierge_impersonation_proxy_upstream_latency_seconds_count\{kind="request"\} 1/,
        );
      } finally {
        await p.server.close();
      }
    });

    it("reuses its keep-alive connections to kube-apiserver", async () => {
      const p = await proxy();
      try {
        const before = upstream.stats.connections;
        for (let i = 0; i < 3; i++) assert.equal((await h2Get(p.port, "/api")).status, 200);
        assert.equal(upstream.stats.connections - before, 1);
      } finally {
        await p.server.close();
      }
    });

    it("holds requests in flight on one HTTP/2 connection, or one HTTP/1.1 connection each", async () => {
      const p = await proxy();
      const session = h2(p.port);
      try {
        const before = upstream.stats.connections;
        const paths = [1, 2, 3, 4].map((i) => `/hang?shared-${i}`);
        for (const path of paths) session.request({ ":path": path }).on("error", () => {});
        await waitFor(() => paths.every((path) => upstream.received.some((r) => r.url === path)));
        assert.equal(upstream.stats.connections - before, upstreamHTTP2 ? 1 : paths.length);
      } finally {
        session.destroy();
        await p.server.close();
      }
    });

    it("serves HTTP/1.1 clients and keeps repeated headers apart for the decider", async () => {
      const p = await proxy();
      try {
        const res = await h1(p.port, "POST", "/apis/x/v1/things", {
          "content-type": "application/json",
          "Impersonate-Group": ["a,b", "c"],
          Connection: "keep-alive, X-Drop-Me",
          "X-Drop-Me": "1",
        });
        assert.equal(res.httpVersion, "1.1");
        assert.equal(res.status, 200);
        assert.equal(res.headers["x-frame-options"], "DENY");
        assert.equal(res.headers["x-upstream"], "yes");
        const asked = p.decider.seen.at(-1)!;
        assert.deepEqual(asked.headers["impersonate-group"], ["a,b", "c"]);
        assert.equal(asked.headers.connection, undefined);
        assert.equal(asked.headers["x-drop-me"], undefined);
        assert.equal(upstream.received.at(-1)!.headers["impersonate-group"], "devs, system:authenticated");
      } finally {
        await p.server.close();
      }
    });

    it("answers a refusal with a Status, over HTTP/2 and HTTP/1.1", async () => {
      const p = await proxy();
      try {
        const before = upstream.received.length;
        for (const res of [await h2Get(p.port, "/refuse/me"), await h1(p.port, "GET", "/refuse/me")]) {
          assert.equal(res.status, 403);
          assert.equal(res.headers["content-type"], "application/json");
          assert.equal(res.headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
          assert.deepEqual(JSON.parse(res.body), {
            kind: "Status",
            apiVersion: "v1",
            metadata: {},
            status: "Failure",
            message: "no, decision made by test",
            reason: "Forbidden",
            code: 403,
          });
        }
        assert.equal(upstream.received.length, before);
      } finally {
        await p.server.close();
      }
    });

    it("delivers each watch event before kube-apiserver writes the next", { timeout: 60_000 }, async () => {
      const p = await proxy();
      try {
        const session = h2(p.port);
        const stream = session.request({ ":path": "/watch?watch=true" });
        const events: number[] = [];
        let buffered = "";
        for await (const chunk of stream) {
          buffered += chunk;
          for (let nl = buffered.indexOf("\n"); nl !== -1; nl = buffered.indexOf("\n")) {
            events.push(JSON.parse(buffered.slice(0, nl)).n);
            buffered = buffered.slice(nl + 1);
            watchAcks.emit("ack");
          }
        }
        session.close();
        assert.deepEqual(events, [0, 1, 2, 3]);

        // HTTP/1.1 (chunked) as well.
        const h1Events: number[] = [];
        await new Promise<void>((resolve, reject) => {
          const req = h1Request({
            host: "127.0.0.1",
            port: p.port,
            path: "/watch?watch=true",
            ca: servingCA.caPEM,
            agent: false,
          });
          req.on("error", reject);
          req.on("response", (res) => {
            res.on("data", (chunk: Buffer) => {
              for (const line of chunk.toString().split("\n").filter(Boolean)) {
                h1Events.push(JSON.parse(line).n);
                watchAcks.emit("ack");
              }
            });
            res.on("end", resolve);
          });
          req.end();
        });
        assert.deepEqual(h1Events, [0, 1, 2, 3]);
      } finally {
        await p.server.close();
      }
    });

    it("streams a request body chunk by chunk while the response streams back", async () => {
      const p = await proxy();
      const session = h2(p.port);
      try {
        const stream = session.request({ ":path": "/stream-echo", ":method": "POST" });
        const replies: string[] = [];
        stream.on("data", (d: Buffer) => replies.push(d.toString()));
        for (const part of ["one", "two", "three"]) {
          stream.write(part);
          const deadline = Date.now() + 1000;
          while (!replies.join("").includes(`got:${part}`)) {
            assert.ok(Date.now() < deadline, `no echo of ${part}; got ${replies.join("")}`);
            await sleep(5);
          }
        }
        stream.end();
        await once(stream, "end");
        assert.equal(replies.join(""), "got:onegot:twogot:threedone");
      } finally {
        session.close();
        await p.server.close();
      }
    });

    it("cancels the upstream request when the client goes away", async () => {
      const p = await proxy();
      const session = h2(p.port);
      try {
        const stream = session.request({ ":path": "/hang?abort" });
        stream.on("error", () => {});
        await waitFor(() => upstream.received.some((r) => r.url === "/hang?abort"));
        stream.close();
        await waitFor(() => upstream.hangsClosed.includes("/hang?abort"));
        await waitFor(async () => /in_flight_requests 0/.test(await p.metrics.text()));
      } finally {
        session.close();
        await p.server.close();
      }
    });

    it("answers 500 instead of crashing when a decision's header cannot be sent", async () => {
      const p = await proxy();
      try {
        const res = await h2Get(p.port, "/badheader");
        assert.equal(res.status, 500);
        assert.equal(JSON.parse(res.body).reason, "InternalError");
        const socket = await rawUpgrade(p.port, spdyRequest().replace("/api/v1", "/badheader/v1"));
        assert.match(await readUntil(socket, () => false), /^HTTP\/1\.1 500 /);
      } finally {
        await p.server.close();
      }
    });

    it("answers 502 with a Status when kube-apiserver cannot be reached", async () => {
      const p = await proxy({ upstream: { url: "https://127.0.0.1:1", caPEM: upstreamCAPEM } });
      try {
        const res = await h2Get(p.port, "/api");
        assert.equal(res.status, 502);
        const status = JSON.parse(res.body);
        assert.equal(status.kind, "Status");
        assert.match(status.message, /^error trying to reach the Kubernetes API server: /);
        assert.match(
          await p.metrics.text(),
          /concierge_impersonation_proxy_errors_total\{stage="upstream-connect"\} 1/,
        );
      } finally {
        await p.server.close();
      }
    });

    it("cuts a slow ordinary request after requestTimeoutMs and cancels it upstream", async () => {
      const p = await proxy({ requestTimeoutMs: 100 });
      try {
        const res = await h2Get(p.port, "/hang?timeout");
        assert.equal(res.status, 504);
        assert.equal(JSON.parse(res.body).reason, "Timeout");
        await waitFor(() => upstream.hangsClosed.includes("/hang?timeout"));
      } finally {
        await p.server.close();
      }
    });

    it("answers ordinary requests past maxInFlight with kube-apiserver's 429, but never refuses a watch", async () => {
      const p = await proxy({ maxInFlight: 1 });
      const session = h2(p.port);
      try {
        const held = session.request({ ":path": "/hang?held" });
        held.on("error", () => {});
        await waitFor(() => upstream.received.some((r) => r.url === "/hang?held"));
        assertTooManyRequests(await h2Get(p.port, "/api/v1/namespaces"));
        const watch = await h2Get(p.port, "/api/v1/pods?watch=true");
        assert.notEqual(watch.status, 429);
        held.close();
        await waitFor(() => upstream.hangsClosed.includes("/hang?held"));
        await waitFor(async () => (await h2Get(p.port, "/api/v1/namespaces")).status === 200);
      } finally {
        session.close();
        await p.server.close();
      }
    });

    it("drops connections that never finish the TLS handshake", async () => {
      const p = await proxy({ handshakeTimeoutMs: 200 });
      try {
        const socket = netConnect({ host: "127.0.0.1", port: p.port });
        await once(socket, "connect");
        await once(socket, "close");
      } finally {
        await p.server.close();
      }
    });

    it("hands the decider a client certificate only when it verified against the client CAs", async () => {
      const p = await proxy();
      try {
        await h2Get(p.port, "/api", {}, trusted.client);
        const cert = p.decider.seen.at(-1)!.verifiedClientCertificate as X509Certificate;
        assert.match(cert.subject, /CN=carol/);
        await h2Get(p.port, "/api", {}, untrusted.client);
        assert.equal(p.decider.seen.at(-1)!.verifiedClientCertificate, undefined);
        const socket = await rawUpgrade(p.port, spdyRequest(), trusted.client);
        await readUntil(socket, (t) => t.includes("\r\n\r\n"));
        socket.destroy();
        assert.match(p.decider.seen.at(-1)!.verifiedClientCertificate!.subject, /CN=carol/);
      } finally {
        await p.server.close();
      }
    });

    for (const [name, request, protocol] of [
      ["POST + SPDY/3.1", spdyRequest(), "spdy"],
      [
        "GET + websocket",
        "GET /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: proxy\r\nConnection: Upgrade\r\n" +
          "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
          "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\nImpersonate-Group: root\r\n\r\n",
        "websocket",
      ],
    ] as const) {
      it(`pipes an upgrade (${name}) both ways, byte for byte`, async () => {
        const p = await proxy();
        try {
          const before = upstream.received.length;
          // Bytes sent right after the request head are part of the upgraded stream.
          const socket = await rawUpgrade(p.port, `${request}early`);
          const head = await readUntil(socket, (t) => t.includes("echo:early"));
          assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
          assert.match(head, /X-Stream-Protocol-Version: v5.channel.k8s.io/);
          socket.write("hello");
          assert.equal(await readUntil(socket, (t) => t.includes("echo:hello")), "echo:hello");
          const got = upstream.received[before]!;
          assert.equal(got.method, request.split(" ")[0]);
          assert.equal(got.headers.connection, "Upgrade");
          assert.equal(got.headers.authorization, "Bearer proxy-sa-token");
          assert.equal(got.headers["impersonate-user"], "alice");
          assert.equal(got.headers["x-forwarded-for"], "127.0.0.1");
          assert.equal(got.headers["impersonate-group"], "devs, system:authenticated");
          const asked = p.decider.seen.at(-1)!;
          assert.equal(asked.upgrade, true);
          assert.equal(asked.headers.upgrade, undefined);
          const text = await p.metrics.text();
          assert.match(text, new RegExp(`upgrades_total\\{protocol="${protocol}",outcome="upgraded"\\} 1`));
          assert.match(text, /open_upgraded_connections 1/);
          socket.end();
          await once(socket, "close");
          await sleep(20);
          assert.match(await p.metrics.text(), /open_upgraded_connections 0/);
        } finally {
          await p.server.close();
        }
      });
    }

    it("refuses an upgrade with a Status and closes the connection", async () => {
      const p = await proxy();
      try {
        const before = upstream.received.length;
        const socket = await rawUpgrade(p.port, spdyRequest().replace("/api/v1", "/refuse/v1"));
        const answer = await readUntil(socket, () => false);
        assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/);
        assert.match(answer, /x-content-type-options: nosniff/);
        assert.equal(JSON.parse(answer.split("\r\n\r\n")[1]!).message, "no, decision made by test");
        await once(socket, "close");
        assert.equal(upstream.received.length, before);
      } finally {
        await p.server.close();
      }
    });

    it("refuses upgrades to protocols other than SPDY and WebSocket before asking anyone", async () => {
      const p = await proxy();
      try {
        const before = upstream.received.length;
        const asked = p.decider.seen.length;
        const socket = await rawUpgrade(p.port, spdyRequest().replace("Upgrade: SPDY/3.1", "Upgrade: h2c"));
        const answer = await readUntil(socket, () => false);
        assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
        assert.match(JSON.parse(answer.split("\r\n\r\n")[1]!).message, /unsupported upgrade protocol/);
        await once(socket, "close");
        assert.equal(upstream.received.length, before);
        assert.equal(p.decider.seen.length, asked);
      } finally {
        await p.server.close();
      }
    });

    it("relays a non-101 upgrade answer and closes both connections (CVE-2018-1002105)", async () => {
      const p = await proxy();
      try {
        const upgradesBefore = upstream.upgradeSockets.length;
        const socket = await rawUpgrade(p.port, spdyRequest("X-Test-Refuse: 1\r\n"));
        const answer = await readUntil(socket, () => false);
        assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/);
        assert.match(answer, /connection: close/);
        assert.equal(answer.split("\r\n\r\n")[1], '{"kind":"Status","code":403}');
        await once(socket, "close");
        const upstreamSocket = upstream.upgradeSockets[upgradesBefore]!;
        if (!upstreamSocket.destroyed) await once(upstreamSocket, "close");
        assert.ok(upstreamSocket.destroyed);
        assert.match(await p.metrics.text(), /upgrades_total\{protocol="spdy",outcome="rejected"\} 1/);
      } finally {
        await p.server.close();
      }
    });

    it("leaves an idle upgraded stream open unless upgradeIdleTimeoutMs is set", async () => {
      const open = await proxy({ upgradeIdleTimeoutMs: 0 });
      const cut = await proxy({ upgradeIdleTimeoutMs: 150 });
      try {
        const a = await rawUpgrade(open.port, spdyRequest());
        const b = await rawUpgrade(cut.port, spdyRequest());
        await Promise.all([a, b].map((s) => readUntil(s, (t) => t.includes("\r\n\r\n"))));
        let bClosedAt = 0;
        b.on("close", () => {
          bClosedAt = Date.now();
        });
        const started = Date.now();
        // Cut after its idle timeout, however late a loaded machine gets to it.
        await waitFor(() => bClosedAt > 0, 10_000);
        assert.ok(bClosedAt - started >= 100, "the idle stream with a timeout was cut, not at once");
        a.write("still here");
        assert.equal(await readUntil(a, (t) => t.includes("echo:still here")), "echo:still here");
        a.destroy();
      } finally {
        await Promise.all([open.server.close(), cut.server.close()]);
      }
    });

    it("applies a rotated serving certificate to new connections, and refuses handshakes without one", async () => {
      const p = await proxy();
      try {
        const servedCN = () =>
          new Promise<string>((resolve, reject) => {
            const s = tlsConnect({ host: "127.0.0.1", port: p.port, ca: servingCA.caPEM }, () => {
              resolve(s.getPeerX509Certificate()!.subject);
              s.destroy();
            });
            s.on("error", reject);
          });
        assert.match(await servedCN(), /CN=proxy-one/);
        p.holder.set(tlsMaterial(rotated));
        assert.match(await servedCN(), /CN=proxy-two/);
        p.holder.set(undefined);
        await assert.rejects(servedCN());
        p.holder.set(tlsMaterial());
        assert.match(await servedCN(), /CN=proxy-one/);
      } finally {
        await p.server.close();
      }
    });

    it("sends HTTP/2 PINGs on an idle session", async () => {
      const p = await proxy({ pingIntervalMs: 40 });
      const session = h2(p.port);
      try {
        let pings = 0;
        session.on("ping", () => pings++);
        await once(session, "connect");
        await sleep(250);
        assert.ok(pings >= 3, `got ${pings} pings`);
      } finally {
        session.close();
        await p.server.close();
      }
    });

    it("closes sessions, watches and upgraded pairs on stop, through the runner", async () => {
      const decider = stubDecider();
      const runner = new ImpersonationProxyRunner({
        port: 0,
        host: "127.0.0.1",
        tls: new ProxyTLSHolder(tlsMaterial()),
        decide: decider.decide,
        upstream: { url: `https://127.0.0.1:${upstream.port}/`, caPEM: upstreamCAPEM },
      });
      assert.equal(runner.running, false);
      await Promise.all([runner.start(), runner.start()]);
      assert.equal(runner.running, true);
      const port = runner.port!;
      const session = h2(port);
      const stream = session.request({ ":path": "/hang" });
      stream.on("error", () => {});
      const upgraded = await rawUpgrade(port, spdyRequest());
      await readUntil(upgraded, (t) => t.includes("\r\n\r\n"));
      const upstreamSide = upstream.upgradeSockets.at(-1)!;
      await sleep(20);
      await runner.stop();
      await runner.stop();
      assert.equal(runner.running, false);
      await Promise.all([
        session.closed ? undefined : once(session, "close"),
        upgraded.destroyed ? undefined : once(upgraded, "close"),
        upstreamSide.destroyed ? undefined : once(upstreamSide, "close"),
      ]);
      await assert.rejects(
        new Promise((resolve, reject) => {
          const s = tlsConnect({ host: "127.0.0.1", port, ca: servingCA.caPEM }, () => resolve(s));
          s.on("error", reject);
        }),
      );
      await runner.start();
      assert.equal(runner.running, true);
      await runner.stop();
    });
  });
