// Draining on close: what a rolling restart relies on so that no request in flight is lost.
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { connect } from "node:http2";
import { Agent, request as h1request } from "node:https";
import { before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { AuthenticatorCache } from "../authenticators/cache.ts";
import { ServingCertHolder } from "../certs/servingcert.ts";
import { memoryLogger } from "../observability/logger.ts";
import { type TestPKI, testPKI } from "../test/harness/frontproxy-pki.ts";
import { type AggregatedAPIServer, startAggregatedAPIServer } from "./aggregated.ts";
import { FrontProxyConfigHolder } from "./frontproxy.ts";

describe("aggregated API server: close(graceMs) drains", () => {
  let pki: TestPKI;

  before(async () => {
    pki = await testPKI();
  });

  /** A server whose /slow answers only when `release()` is called. */
  async function start() {
    const certs = new ServingCertHolder();
    certs.set(pki.serving);
    const frontProxy = new FrontProxyConfigHolder();
    frontProxy.set(pki.config);
    let release = () => {};
    let arrived = () => {};
    const waiting = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const server: AggregatedAPIServer = await startAggregatedAPIServer({
      certs,
      frontProxy,
      host: "127.0.0.1",
      port: 0,
      authenticators: new AuthenticatorCache(),
      issuer: {
        issue: () => {
          throw new Error("not used");
        },
      },
      log: memoryLogger("debug").log,
      extraRoutes: new Map([
        [
          "/fast",
          (req, res) => {
            req.resume();
            req.once("end", () => {
              res.statusCode = 200;
              res.end("fast");
            });
          },
        ],
        [
          "/begun",
          (req, res) => {
            req.resume();
            // Only HTTP/1.1 reaches this route in these tests.
            const response = res as ServerResponse;
            response.writeHead(200);
            response.write("begun ");
            release = () => response.end("done");
            arrived();
          },
        ],
        [
          "/slow",
          (_req, res) => {
            release = () => {
              res.statusCode = 200;
              res.end("done");
            };
            arrived();
          },
        ],
      ]),
    });
    return { server, release: () => release(), arrived: waiting };
  }

  it("HTTP/2: GOAWAY first as a notice, then with the last stream; the request in flight is answered", async () => {
    const { server, release, arrived } = await start();
    const session = connect(`https://127.0.0.1:${server.port}`, {
      ca: pki.servingCAPEM,
      cert: pki.proxyClient.certPEM,
      key: pki.proxyClient.keyPEM,
    });
    const lastStreamIDs: number[] = [];
    session.on("goaway", (_code, lastStreamID) => lastStreamIDs.push(lastStreamID));
    const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
    const stream = session.request({ ":path": "/slow" });
    stream.setEncoding("utf8");
    let body = "";
    stream.on("data", (c: string) => {
      body += c;
    });
    const status = new Promise<number>((resolve) =>
      stream.once("response", (h) => resolve(Number(h[":status"]))),
    );
    const ended = new Promise<void>((resolve) => stream.once("end", () => resolve()));
    await arrived;
    let closed = false;
    const closing = server.close(60_000).then(() => {
      closed = true;
    });
    await goaway;
    assert.equal(closed, false, "close waits for the stream in flight");
    release();
    assert.equal(await status, 200);
    await ended;
    assert.equal(body, "done");
    await closing;
    // The notice lets streams already sent complete; the final GOAWAY names the one it served.
    assert.deepEqual([lastStreamIDs[0], lastStreamIDs.at(-1)], [2 ** 31 - 1, 1]);
    session.destroy();
  });

  it("HTTP/1.1: the request in flight is answered with Connection: close, then close settles", async () => {
    const { server, release, arrived } = await start();
    const reply = new Promise<{ status: number; connection: string | undefined; body: string }>(
      (resolve, reject) => {
        const req = h1request(
          {
            host: "127.0.0.1",
            port: server.port,
            path: "/slow",
            ca: pki.servingCAPEM,
            cert: pki.proxyClient.certPEM,
            key: pki.proxyClient.keyPEM,
            agent: false,
          },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => {
              body += c;
            });
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      },
    );
    await arrived;
    const closing = server.close(60_000);
    release();
    assert.deepEqual(await reply, { status: 200, connection: "close", body: "done" });
    await closing;
  });

  it("cuts what is still open when the grace period ends", async () => {
    const { server, arrived } = await start();
    const session = connect(`https://127.0.0.1:${server.port}`, {
      ca: pki.servingCAPEM,
      cert: pki.proxyClient.certPEM,
      key: pki.proxyClient.keyPEM,
    });
    session.on("error", () => {});
    const stream = session.request({ ":path": "/slow" });
    stream.on("error", () => {});
    const gone = new Promise<void>((resolve) => stream.once("close", () => resolve()));
    await arrived;
    await server.close(50);
    await gone;
    session.destroy();
  });

  it("speaks HTTP/1.1 to a client that offers it too, as the aggregator does, and HTTP/2 only to one that offers nothing else", async () => {
    const { server } = await start();
    const negotiate = (protocols: string[]) =>
      new Promise<string | false>((resolve, reject) => {
        const socket = tlsConnect({
          host: "127.0.0.1",
          port: server.port,
          ca: pki.servingCAPEM,
          servername: "localhost",
          ALPNProtocols: protocols,
        });
        socket.once("secureConnect", () => {
          resolve(socket.alpnProtocol ?? false);
          socket.destroy();
        });
        socket.once("error", reject);
      });
    assert.equal(await negotiate(["h2", "http/1.1"]), "http/1.1");
    assert.equal(await negotiate(["h2"]), "h2");
    await server.close(0);
  });

  /** POSTs `path` through `agent`; the status, the Connection header, and whether the socket was reused. */
  const post = (port: number, agent: Agent, path: string) =>
    new Promise<{ status: number; connection: string | undefined; reused: boolean }>((resolve, reject) => {
      const req = h1request(
        {
          host: "127.0.0.1",
          port,
          path,
          method: "POST",
          ca: pki.servingCAPEM,
          cert: pki.proxyClient.certPEM,
          key: pki.proxyClient.keyPEM,
          agent,
        },
        (res) => {
          res.resume();
          res.once("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              connection: res.headers.connection,
              reused: req.reusedSocket,
            }),
          );
        },
      );
      req.once("error", reject);
      req.end("{}");
    });

  it("HTTP/1.1: a keep-alive connection idle when the drain starts answers the request the client sends on it, with Connection: close", async () => {
    const { server } = await start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    assert.deepEqual(await post(server.port, agent, "/fast"), {
      status: 200,
      connection: "keep-alive",
      reused: false,
    });
    const closing = server.close(60_000);
    // The client cannot know the drain has begun: it reuses its idle connection, and a POST lost
    // there could not be retried.
    assert.deepEqual(await post(server.port, agent, "/fast"), {
      status: 200,
      connection: "close",
      reused: true,
    });
    await closing;
    agent.destroy();
  });

  it("HTTP/1.1: an answer begun with keep-alive before the drain leaves its connection to the client, whose next request is answered with Connection: close", async () => {
    const { server, release, arrived } = await start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const first = post(server.port, agent, "/begun");
    await arrived;
    const closing = server.close(60_000);
    release();
    assert.deepEqual(await first, { status: 200, connection: "keep-alive", reused: false });
    // Promised keep-alive, the client reuses the connection at once; ending it here lost this one.
    assert.deepEqual(await post(server.port, agent, "/fast"), {
      status: 200,
      connection: "close",
      reused: true,
    });
    await closing;
    agent.destroy();
  });

  it("keeps listening for listenAtLeastMs with no connection open, answering a late one with Connection: close", async () => {
    const { server } = await start();
    let closed = false;
    const closing = server.close(5_000, 5_000).then(() => {
      closed = true;
    });
    // Past the one quiet second after which the listener would otherwise close.
    await new Promise((r) => setTimeout(r, 1_200));
    assert.equal(closed, false);
    const agent = new Agent({ keepAlive: true });
    assert.deepEqual(await post(server.port, agent, "/fast"), {
      status: 200,
      connection: "close",
      reused: false,
    });
    agent.destroy();
    await closing;
  });

  it("HTTP/1.1: an idle connection stays open through the drain until the client closes it, then close settles", async () => {
    const { server } = await start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    await post(server.port, agent, "/fast");
    const [socket] = Object.values(agent.freeSockets).flat();
    assert.ok(socket);
    let closed = false;
    // The test's own timeout is far shorter than this grace period.
    const closing = server.close(600_000).then(() => {
      closed = true;
    });
    // The drain's first checks have passed and the connection is still open.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(socket.destroyed, false);
    assert.equal(closed, false);
    // As Go's clients do after 90 s idle.
    agent.destroy();
    await closing;
  });
});
