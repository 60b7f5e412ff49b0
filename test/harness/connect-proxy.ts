// A forward proxy on 127.0.0.1 that speaks only HTTP CONNECT, as corporate egress proxies do for
// https, and records every tunnel it opened, so a test can tell what went through it.
import { createServer, type IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";

export interface ConnectProxy {
  /** `http://127.0.0.1:<port>`, the value for HTTPS_PROXY. */
  readonly url: string;
  /** The `host:port` of every tunnel carried, in order. */
  readonly tunnels: string[];
  /** The Proxy-Authorization header of every CONNECT, or "" when there was none. */
  readonly authorizations: string[];
  /** Answer CONNECT with this status instead of opening tunnels (e.g. 403), or undefined. */
  refuseWith: number | undefined;
  close(): Promise<void>;
}

/**
 * `hosts` maps names to the addresses the proxy dials for them, as a proxy's own resolver would:
 * the client never resolves a name it sends through the proxy.
 */
export async function startConnectProxy(hosts: Record<string, string> = {}): Promise<ConnectProxy> {
  const sockets = new Set<Socket>();
  const server = createServer((_req, res) => res.writeHead(405).end("CONNECT only\n"));
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const proxy: ConnectProxy = {
    url: `http://127.0.0.1:${port}`,
    tunnels: [],
    authorizations: [],
    refuseWith: undefined,
    async close() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  };
  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    track(client);
    client.on("error", () => {});
    proxy.authorizations.push(req.headers["proxy-authorization"] ?? "");
    if (proxy.refuseWith !== undefined) {
      client.end(`HTTP/1.1 ${proxy.refuseWith} Refused By Test\r\n\r\n`);
      return;
    }
    const authority = req.url ?? "";
    const url = new URL(`http://${authority}`);
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const upstream = connect(Number(url.port), hosts[host] ?? host, () => {
      proxy.tunnels.push(authority);
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    track(upstream);
    upstream.on("error", () => client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n"));
  });
  return proxy;
}
