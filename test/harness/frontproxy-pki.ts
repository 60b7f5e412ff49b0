// Throwaway TLS material for the server's tests, made with the openssl CLI (hack/pki.ts): a
// serving certificate, and front-proxy client certificates that should and should not be believed.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CertFiles, newCA, newCert } from "../../hack/pki.ts";
import type { FrontProxyConfig } from "../../server/frontproxy.ts";

export interface PEMPair {
  certPEM: string;
  keyPEM: string;
}

export interface TestPKI {
  servingCAPEM: string;
  serving: PEMPair;
  frontProxyCAPEM: string;
  /** CN front-proxy-client, signed by the front-proxy CA. */
  proxyClient: PEMPair;
  /** Signed by the front-proxy CA, but with a CN that is not allowed. */
  disallowedClient: PEMPair;
  /** CN front-proxy-client, signed by another CA. */
  foreignClient: PEMPair;
  /** CN front-proxy-client, signed by the front-proxy CA, but only for server authentication. */
  serverOnly: PEMPair;
  config: FrontProxyConfig;
}

const read = async (files: CertFiles): Promise<PEMPair> => ({
  certPEM: await readFile(files.cert, "utf8"),
  keyPEM: await readFile(files.key, "utf8"),
});

export async function testPKI(): Promise<TestPKI> {
  const dir = await mkdtemp(join(tmpdir(), "concierge-server-test-"));
  try {
    const [servingCA, frontProxyCA, otherCA] = await Promise.all([
      newCA(dir, "serving-ca", "serving CA", "ec"),
      newCA(dir, "front-proxy-ca", "front-proxy-ca", "ec"),
      newCA(dir, "other-ca", "front-proxy-ca", "ec"),
    ]);
    const client = (name: string, ca: CertFiles, cn: string, usage: "client" | "server" = "client") =>
      newCert(dir, ca, { name, cn, usage });
    const [serving, proxyClient, disallowedClient, foreignClient, serverOnly] = await Promise.all([
      newCert(dir, servingCA, {
        name: "serving",
        cn: "concierge-api",
        dnsNames: ["localhost"],
        ips: ["127.0.0.1"],
        usage: "server",
      }),
      client("proxy-client", frontProxyCA, "front-proxy-client"),
      client("disallowed", frontProxyCA, "someone-else"),
      client("foreign", otherCA, "front-proxy-client"),
      client("server-only", frontProxyCA, "front-proxy-client", "server"),
    ]);
    const frontProxyCAPEM = await readFile(frontProxyCA.cert, "utf8");
    return {
      servingCAPEM: await readFile(servingCA.cert, "utf8"),
      serving: await read(serving),
      frontProxyCAPEM,
      proxyClient: await read(proxyClient),
      disallowedClient: await read(disallowedClient),
      foreignClient: await read(foreignClient),
      serverOnly: await read(serverOnly),
      config: {
        caPEM: frontProxyCAPEM,
        allowedNames: ["front-proxy-client"],
        usernameHeaders: ["X-Remote-User"],
        uidHeaders: [],
        groupHeaders: ["X-Remote-Group"],
        extraHeaderPrefixes: ["X-Remote-Extra-"],
      },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
