import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startHTTPSServer, type TestHTTPSServer } from "../test/harness/tls.ts";
import { agentFor, httpsGetJSON, httpsRequest, idleAgentMs } from "./https.ts";

describe("httpsRequest", () => {
  let server: TestHTTPSServer;
  let base: string;
  let caPEM: string;
  let otherCAPEM: string;

  before(async () => {
    server = await startHTTPSServer((req, res) => {
      if (req.url === "/json") res.end('{"ok":true}');
      else if (req.url === "/big") res.end("x".repeat(2048));
      else if (req.url === "/slow") setTimeout(() => res.end("{}"), 2000);
      else if (req.url === "/text") res.end("not json");
      else {
        res.statusCode = 500;
        res.end("boom");
      }
    });
    ({ base, caPEM, otherCAPEM } = server);
  });

  after(() => server.close());

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

  it("refuses link-local and metadata addresses, by literal or by what a name resolves to", async () => {
    await assert.rejects(
      httpsRequest("https://169.254.169.254/latest/meta-data/", {}),
      /^Error: refusing to connect to https:\/\/169.254.169.254\/latest\/meta-data\/: 169.254.169.254 is a link-local or cloud metadata address/,
    );
    await assert.rejects(httpsRequest("https://[::ffff:a9fe:a9fe]/", {}), /::ffff:a9fe:a9fe is a link-local/);
  });
});

describe("agentFor", () => {
  it("keeps one agent per CA bundle and drops those left idle", () => {
    const start = 1_000_000;
    const a = agentFor("bundle A", start);
    assert.equal(agentFor("bundle A", start + 1), a);
    const b = agentFor("bundle B", start + 1);
    assert.notEqual(b, a);
    // A is idle past the limit when another bundle is asked for: it is closed and forgotten.
    agentFor("bundle B", start + idleAgentMs + 2);
    assert.notEqual(agentFor("bundle A", start + idleAgentMs + 3), a);
    // B was used at idleAgentMs + 2, so it is still there.
    assert.equal(agentFor("bundle B", start + idleAgentMs + 4), b);
  });
});
