import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { newCA, newCert } from "../../hack/pki.ts";
import { KubeRestClient } from "./rest.ts";

describe("KubeRestClient over TLS", () => {
  let dir: string;
  let server: Server;
  let handshakes = 0;
  let kc: KubeConfig;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "concierge-rest-"));
    const ca = await newCA(dir, "ca", "test-ca", "ec");
    const serving = await newCert(dir, ca, {
      name: "srv",
      cn: "localhost",
      usage: "server",
      ips: ["127.0.0.1"],
    });
    server = createServer(
      { cert: await readFile(serving.cert), key: await readFile(serving.key) },
      (_req, res) => {
        res.setHeader("Content-Type", "application/json");
        res.end("{}");
      },
    );
    server.on("secureConnection", () => {
      handshakes++;
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: "c",
          server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
          caData: (await readFile(ca.cert)).toString("base64"),
        },
      ],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "ctx", cluster: "c", user: "u" }],
      currentContext: "ctx",
    });
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
    await rm(dir, { recursive: true, force: true });
  });

  it("reuses one TLS connection for consecutive requests (client-node alone would handshake each time)", async () => {
    const client = new KubeRestClient(kc);
    for (let i = 0; i < 5; i++) await client.request({ method: "GET", path: "/api/v1/namespaces" });
    client.close();
    assert.equal(handshakes, 1);
  });
});
