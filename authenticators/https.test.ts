import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { newCA, newCert } from "../hack/pki.ts";
import { httpsGetJSON, httpsRequest } from "./https.ts";

describe("httpsRequest", () => {
  let dir: string;
  let server: Server;
  let base: string;
  let caPEM: string;
  let otherCAPEM: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "concierge-https-"));
    const ca = await newCA(dir, "ca", "test-ca", "ec");
    const other = await newCA(dir, "other", "other-ca", "ec");
    const serving = await newCert(dir, ca, {
      name: "srv",
      cn: "localhost",
      usage: "server",
      ips: ["127.0.0.1"],
    });
    caPEM = await readFile(ca.cert, "utf8");
    otherCAPEM = await readFile(other.cert, "utf8");
    server = createServer(
      { cert: await readFile(serving.cert), key: await readFile(serving.key) },
      (req, res) => {
        if (req.url === "/json") res.end('{"ok":true}');
        else if (req.url === "/big") res.end("x".repeat(2048));
        else if (req.url === "/slow") setTimeout(() => res.end("{}"), 2000);
        else if (req.url === "/text") res.end("not json");
        else {
          res.statusCode = 500;
          res.end("boom");
        }
      },
    );
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const address = server.address();
    base = `https://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
    await rm(dir, { recursive: true, force: true });
  });

  it("trusts the given CA and parses JSON", async () => {
    assert.deepEqual(await httpsGetJSON(`${base}/json`, { caPEM }), { ok: true });
  });

  it("fails against the wrong CA, on HTTP errors, non-JSON, oversized and slow answers", async () => {
    await assert.rejects(
      httpsGetJSON(`${base}/json`, { caPEM: otherCAPEM }),
      /self-signed|unable to verify|certificate/i,
    );
    await assert.rejects(httpsGetJSON(`${base}/error`, { caPEM }), /answered HTTP 500: boom/);
    await assert.rejects(httpsGetJSON(`${base}/text`, { caPEM }), /did not answer JSON/);
    await assert.rejects(httpsRequest(`${base}/big`, { caPEM, maxBytes: 1024 }), /larger than 1024 bytes/);
    await assert.rejects(httpsRequest(`${base}/slow`, { caPEM, timeoutMs: 100 }), /timed out after 100 ms/);
    await assert.rejects(httpsRequest("http://127.0.0.1/", {}), /refusing non-https URL/);
  });
});
