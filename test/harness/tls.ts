// Throwaway TLS material for tests, made by hack/pki.ts (the openssl CLI, so tests never rely on
// the certificate code they test), and an HTTPS server on 127.0.0.1 that uses it. Everything is
// returned as PEM text; the files openssl needs live only for the call that makes them.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { RequestListener } from "node:http";
import { createServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CertFiles, type CertSpec, newCA, newCert } from "../../hack/pki.ts";

export interface KeyPair {
  certPEM: string;
  keyPEM: string;
}

export interface TestCA {
  readonly caPEM: string;
  /** base64 of the PEM, as `spec.tls.certificateAuthorityData` carries it. */
  readonly caBase64: string;
  /** A serving certificate (EC unless `keyType` says otherwise) signed by this CA. */
  issue(spec: Omit<CertSpec, "name" | "usage">): Promise<KeyPair>;
}

async function inTempDir<T>(use: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "concierge-tls-"));
  try {
    return await use(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function read(files: CertFiles): Promise<KeyPair> {
  const [certPEM, keyPEM] = await Promise.all([readFile(files.cert, "utf8"), readFile(files.key, "utf8")]);
  return { certPEM, keyPEM };
}

/** A CA with an EC key; its key stays in memory so that it can issue certificates later. */
export async function testCA(cn = "concierge test CA"): Promise<TestCA> {
  const ca = await inTempDir(async (dir) => read(await newCA(dir, "ca", cn, "ec")));
  return {
    caPEM: ca.certPEM,
    caBase64: Buffer.from(ca.certPEM).toString("base64"),
    issue: (spec) =>
      inTempDir(async (dir) => {
        const files = { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") };
        await Promise.all([
          writeFile(files.cert, ca.certPEM),
          writeFile(files.key, ca.keyPEM, { mode: 0o600 }),
        ]);
        return read(await newCert(dir, files, { ...spec, name: "serving", usage: "server" }));
      }),
  };
}

export interface TestHTTPSServer {
  readonly port: number;
  /** `https://<host>:<port>` */
  readonly base: string;
  /** The CA that signed the serving certificate, PEM and base64 of the PEM. */
  readonly caPEM: string;
  readonly caBase64: string;
  /** A CA that signed nothing here, for "wrong CA" cases. */
  readonly otherCAPEM: string;
  /** The serving key pair, e.g. for a `kubernetes.io/tls` Secret. */
  readonly serving: KeyPair;
  /** Drops open (keep-alive) connections too, so that closing does not wait for clients. */
  close(): Promise<void>;
}

/**
 * An HTTPS server with a CA of its own on `host` (127.0.0.1 unless given; a real node's bridge
 * address makes it reachable from pods); its certificate names the host, 127.0.0.1 and localhost.
 */
export async function startHTTPSServer(
  handler: RequestListener,
  host = "127.0.0.1",
): Promise<TestHTTPSServer> {
  const [ca, other] = await Promise.all([testCA(), testCA("concierge other test CA")]);
  const ips = [...new Set([host, "127.0.0.1"])];
  const serving = await ca.issue({ cn: host, ips, dnsNames: ["localhost"] });
  const server = createServer({ cert: serving.certPEM, key: serving.keyPEM }, handler);
  await new Promise<void>((ok) => server.listen(0, host, ok));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    base: `https://${host}:${port}`,
    caPEM: ca.caPEM,
    caBase64: ca.caBase64,
    otherCAPEM: other.caPEM,
    serving,
    async close() {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
}
