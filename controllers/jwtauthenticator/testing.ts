// A real HTTPS server on 127.0.0.1 with a CA of its own, for the unit tests that probe issuers.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { RequestListener } from "node:http";
import { createServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newCA, newCert } from "../../hack/pki.ts";

export interface TestTLSServer {
  /** `https://127.0.0.1:<port>` */
  base: string;
  /** The CA that signed the serving certificate. */
  caPEM: string;
  /** A CA that did not. */
  otherCAPEM: string;
  close(): Promise<void>;
}

export async function startTLSServer(handler: RequestListener): Promise<TestTLSServer> {
  const dir = await mkdtemp(join(tmpdir(), "concierge-jwt-"));
  try {
    const ca = await newCA(dir, "ca", "test-ca", "ec");
    const other = await newCA(dir, "other", "other-ca", "ec");
    const serving = await newCert(dir, ca, {
      name: "srv",
      cn: "127.0.0.1",
      usage: "server",
      ips: ["127.0.0.1"],
    });
    const server = createServer(
      { cert: await readFile(serving.cert), key: await readFile(serving.key) },
      handler,
    );
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    return {
      base: `https://127.0.0.1:${port}`,
      caPEM: await readFile(ca.cert, "utf8"),
      otherCAPEM: await readFile(other.cert, "utf8"),
      close: async () => {
        server.closeAllConnections();
        await new Promise((ok) => server.close(ok));
      },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
