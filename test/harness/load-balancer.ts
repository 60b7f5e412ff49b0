// A stand-in for a cloud load balancer in front of the impersonation proxy: a TCP relay that,
// like AWS's classic ELB (60 s by default) or Azure's (4 min), cuts a connection on which no
// byte has moved in either direction for `idleTimeoutMs`. Tests use a short timeout to show that
// long quiet kubectl sessions survive through the proxy anyway.
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";

export interface TestLoadBalancer {
  /** `127.0.0.1:<port>`, what a Service's externalEndpoint or DNS would give clients. */
  readonly address: string;
  readonly port: number;
  /** Connections the balancer cut for being idle. */
  idleCuts(): number;
  close(): Promise<void>;
}

export async function startLoadBalancer(options: {
  target: { host: string; port: number };
  idleTimeoutMs: number;
}): Promise<TestLoadBalancer> {
  let cuts = 0;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const backend = connect(options.target.port, options.target.host);
    open.add(client);
    open.add(backend);
    let timer: NodeJS.Timeout | undefined;
    const closeBoth = () => {
      clearTimeout(timer);
      client.destroy();
      backend.destroy();
      open.delete(client);
      open.delete(backend);
    };
    const touch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        cuts++;
        closeBoth();
      }, options.idleTimeoutMs);
    };
    touch();
    client.on("data", (chunk: Buffer) => {
      touch();
      backend.write(chunk);
    });
    backend.on("data", (chunk: Buffer) => {
      touch();
      client.write(chunk);
    });
    for (const socket of [client, backend]) {
      socket.on("end", closeBoth);
      socket.on("error", closeBoth);
      socket.on("close", closeBoth);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    idleCuts: () => cuts,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
