// The impersonation proxy in front of a stand-in kube-apiserver, reached with raw bytes over TLS:
// what the proxy bad-input suites (test/badinput/proxy*.test.ts) send their shapes through.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createSecureServer as createH2Server } from "node:http2";
import { createServer, type Server } from "node:https";
import type { Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { type ImpersonationProxyServer, startImpersonationProxy } from "../../impersonator/server.ts";
import { ProxyTLSHolder } from "../../impersonator/tlsholder.ts";
import type { Decision } from "../../impersonator/types.ts";
import { Metrics } from "../../observability/metrics.ts";
import { testCA } from "./tls.ts";

/** Every request is forwarded as alice, with the proxy's own credential. */
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

export interface RawProxy {
  /** The requests kube-apiserver's stand-in received, in order. */
  readonly received: IncomingMessage[];
  /** Everything the proxy answers on one connection, until it closes it (or 5 s pass). */
  raw(text: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * A proxy that forwards everything as alice to a stand-in that accepts no upgrade and answers
 * every request with 200 `{}`; over HTTP/2 when `upstreamHTTP2`, as kube-apiserver offers it.
 */
export async function startRawProxy(options: { caName: string; upstreamHTTP2?: boolean }): Promise<RawProxy> {
  const ca = await testCA(options.caName);
  const serving = await ca.issue({ cn: "127.0.0.1", ips: ["127.0.0.1"] });
  const received: IncomingMessage[] = [];
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    received.push(req);
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
  };
  const tls = { cert: serving.certPEM, key: serving.keyPEM };
  const upstream = options.upstreamHTTP2
    ? (createH2Server({ ...tls, allowHTTP1: true }, answer as never) as unknown as Server)
    : createServer(tls, answer);
  const upstreamSockets = new Set<Socket>();
  upstream.on("secureConnection", (socket: Socket) => {
    upstreamSockets.add(socket);
    socket.once("close", () => upstreamSockets.delete(socket));
  });
  const closeUpstream = () => {
    for (const socket of upstreamSockets) socket.destroy();
    return new Promise<void>((ok) => upstream.close(() => ok()));
  };
  await new Promise<void>((ok) => upstream.listen(0, "127.0.0.1", ok));
  let proxy: ImpersonationProxyServer;
  try {
    proxy = await startImpersonationProxy({
      port: 0,
      host: "127.0.0.1",
      tls: new ProxyTLSHolder({ certPEM: serving.certPEM, keyPEM: serving.keyPEM, clientCAPEMs: [] }),
      decide: async () => forward,
      upstream: {
        url: `https://127.0.0.1:${(upstream.address() as { port: number }).port}`,
        caPEM: ca.caPEM,
      },
      metrics: new Metrics(),
    });
  } catch (err) {
    await closeUpstream();
    throw err;
  }
  return {
    received,
    raw: (text) =>
      new Promise((resolve, reject) => {
        const socket = tlsConnect(
          { host: "127.0.0.1", port: proxy.port, ca: ca.caPEM, ALPNProtocols: ["http/1.1"] },
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
      }),
    async close() {
      await proxy.close();
      await closeUpstream();
    },
  };
}
