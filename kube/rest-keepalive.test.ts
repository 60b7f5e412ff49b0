import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { newCA, newCert } from "../hack/pki.ts";
import { KubeRestClient } from "./rest.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` holds, for what the server only sees once a close crosses the loopback. */
async function waitFor(check: () => boolean, what: string, ms = 2_000): Promise<void> {
  for (const deadline = Date.now() + ms; !check(); await sleep(10)) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
  }
}

describe("KubeRestClient over TLS", () => {
  let dir: string;
  let server: Server;
  let handshakes = 0;
  /** Connections the server has open now, and the most it had at once. */
  let open = 0;
  let peak = 0;
  /** Ends the responses held open by /hang. */
  const hung = new Set<() => void>();
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
      (req, res) => {
        res.setHeader("Content-Type", "application/json");
        if (req.url === "/slow") {
          setTimeout(() => res.end("{}"), 20);
        } else if (req.url === "/quiet-watch") {
          // A watch with no events for longer than the client's idle-socket timeout.
          res.write('{"type":"ADDED"}\n');
          setTimeout(() => res.end('{"type":"MODIFIED"}\n'), 600);
        } else if (req.url === "/hang") {
          res.write('{"type":"ADDED"}\n');
          hung.add(() => res.end());
        } else {
          res.end("{}");
        }
      },
    );
    server.on("secureConnection", (socket) => {
      handshakes++;
      peak = Math.max(peak, ++open);
      socket.on("close", () => open--);
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
    await waitFor(() => open === 0, "the closed client's connections to go");
  });

  it("bounds a burst's connections by maxSockets, keeps maxFreeSockets and closes those once idle", async () => {
    const client = new KubeRestClient(kc, { maxSockets: 10, maxFreeSockets: 3, idleSocketTimeoutMs: 200 });
    peak = 0;
    await Promise.all(Array.from({ length: 100 }, () => client.request({ method: "GET", path: "/slow" })));
    assert.ok(peak <= 10, `${peak} connections at once`);
    assert.ok(peak >= 2, "the burst ran concurrently");
    await waitFor(() => open <= 3, "the surplus connections to close");
    await sleep(100);
    assert.ok(open > 0 && open <= 3, `${open} idle connections kept`);
    await waitFor(() => open === 0, "the idle connections to time out");
    client.close();
  });

  it("keeps a quiet watch open past the idle-socket timeout", async () => {
    const client = new KubeRestClient(kc, { idleSocketTimeoutMs: 100 });
    const lines: string[] = [];
    await client.stream({
      path: "/quiet-watch",
      signal: new AbortController().signal,
      onLine: (line) => lines.push(line),
    });
    assert.deepEqual(lines, ['{"type":"ADDED"}', '{"type":"MODIFIED"}']);
    client.close();
  });

  it("serves requests while more watches than maxSockets are open", async () => {
    const client = new KubeRestClient(kc, { maxSockets: 2 });
    const abort = new AbortController();
    let opened = 0;
    const watches = Array.from({ length: 5 }, () =>
      client
        .stream({
          path: "/hang",
          signal: abort.signal,
          onOpen: () => {
            opened++;
          },
          onLine: () => {},
        })
        .catch(() => {}),
    );
    await waitFor(() => opened === 5, "all watches to open");
    assert.deepEqual(await client.request({ method: "GET", path: "/api/v1/namespaces" }), {});
    for (const end of hung) end();
    hung.clear();
    abort.abort();
    await Promise.all(watches);
    client.close();
  });
});
