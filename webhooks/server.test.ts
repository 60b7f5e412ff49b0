import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { request } from "node:https";
import { after, before, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import { type ServingCert, ServingCertHolder } from "../certs/servingcert.ts";
import { memoryLogger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { testCA } from "../test/harness/tls.ts";
import { startWebhookServer, validatePath, type WebhookServer } from "./server.ts";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  fingerprint: string;
}

const group = "authentication.concierge.pinniped.dev";
const secretIssuer = "https://issuer.example.com/?tenant=do-not-log-me";

function review(issuer: string) {
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "uid-1",
      kind: { group, version: "v1alpha1", kind: "JWTAuthenticator" },
      operation: "CREATE",
      object: {
        apiVersion: `${group}/v1alpha1`,
        kind: "JWTAuthenticator",
        metadata: { name: "corp" },
        spec: { issuer, audience: "concierge" },
      },
    },
  });
}

describe("webhook server", () => {
  let caPEM: string;
  let first: ServingCert;
  let second: ServingCert;
  let holder: ServingCertHolder;
  let server: WebhookServer;
  let metrics: Metrics;
  const logs = memoryLogger("debug");

  before(async () => {
    const ca = await testCA("webhook test CA");
    caPEM = ca.caPEM;
    const pair = (cn: string) => ca.issue({ cn, dnsNames: ["localhost"], ips: ["127.0.0.1"] });
    [first, second] = await Promise.all([pair("first"), pair("second")]);
    holder = new ServingCertHolder();
    metrics = new Metrics();
    server = await startWebhookServer({
      certs: holder,
      host: "127.0.0.1",
      port: 0,
      logger: logs.log,
      metrics,
      maxBodyBytes: 64 * 1024,
      maxDrainBytes: 128 * 1024,
    });
  });

  after(() => server.close());

  function send(
    options: {
      method?: string;
      path?: string;
      contentType?: string;
      body?: string | Buffer;
      chunked?: boolean;
      port?: number;
    },
    tls: { maxVersion?: "TLSv1.2" } = {},
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const body = options.body ?? "";
      const headers: Record<string, string> = { "Content-Type": options.contentType ?? "application/json" };
      if (!options.chunked) headers["Content-Length"] = String(Buffer.byteLength(body));
      const req = request(
        {
          host: "127.0.0.1",
          port: options.port ?? server.port,
          servername: "localhost",
          method: options.method ?? "POST",
          path: options.path ?? validatePath,
          headers,
          ca: caPEM,
          agent: false,
          ...tls,
        },
        (res) => {
          const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString(),
              fingerprint,
            }),
          );
        },
      );
      req.on("error", reject);
      if (options.chunked && typeof body !== "string") {
        // Write in pieces so the server sees a streamed body without a length.
        for (let i = 0; i < body.length; i += 16 * 1024) req.write(body.subarray(i, i + 16 * 1024));
        req.end();
      } else {
        req.end(body);
      }
    });
  }

  const fingerprintOf = (cert: ServingCert) => new X509Certificate(cert.certPEM).fingerprint256;

  it("fails TLS handshakes until a serving certificate is set", async () => {
    await assert.rejects(send({ body: review("https://issuer.example.com") }));
    holder.set(first);
  });

  it("answers an AdmissionReview over TLS with the holder's certificate", async () => {
    // kube-apiserver adds its timeout to the webhook's URL.
    const reply = await send({
      path: `${validatePath}?timeout=10s`,
      body: review("https://issuer.example.com"),
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(reply.body), {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "uid-1", allowed: true },
    });
    assert.equal(reply.fingerprint, fingerprintOf(first));
  });

  it("admits a bad object with a warning in a 200 response", async () => {
    const reply = await send({ body: review(secretIssuer) });
    assert.equal(reply.status, 200);
    const { response } = JSON.parse(reply.body);
    assert.equal(response.allowed, true);
    assert.equal(response.warnings.length, 1);
    assert.match(response.warnings[0], /^spec\.issuer: Invalid value: .*: cannot include query params$/);
  });

  const refusals: [string, Parameters<typeof send>[0], number, string, RegExp][] = [
    ["bad JSON", { body: "{not json" }, 400, "BadRequest", /^the body is not valid JSON$/],
    [
      "a body that is not an AdmissionReview",
      { body: "{}" },
      400,
      "BadRequest",
      /expected an AdmissionReview/,
    ],
    ["another path", { path: "/validate-something-else", body: "{}" }, 404, "NotFound", /no such path/],
    ["GET", { method: "GET" }, 405, "MethodNotAllowed", /method GET is not allowed; use POST/],
    [
      "a body that is not JSON by type",
      { contentType: "text/plain", body: "{}" },
      415,
      "UnsupportedMediaType",
      /"text\/plain"/,
    ],
    [
      "an oversized body that is not a review",
      { body: " ".repeat(64 * 1024 + 1) },
      413,
      "RequestEntityTooLarge",
      /^the object is too large to validate: the review is larger than 65536 bytes$/,
    ],
    [
      "a body past what is drained, with a length",
      { body: " ".repeat(128 * 1024 + 1) },
      413,
      "RequestEntityTooLarge",
      /^the body is larger than 131072 bytes$/,
    ],
    [
      "a body past what is drained, streamed without a length",
      { body: Buffer.alloc(256 * 1024, " "), chunked: true },
      413,
      "RequestEntityTooLarge",
      /^the body is larger than 131072 bytes$/,
    ],
  ];
  for (const [name, options, code, reason, message] of refusals) {
    it(`answers ${name} with ${code} and a Status`, async () => {
      const reply = await send(options);
      assert.equal(reply.status, code);
      const status = JSON.parse(reply.body);
      assert.equal(status.kind, "Status");
      assert.equal(status.code, code);
      assert.equal(status.reason, reason);
      assert.match(status.message, message);
      if (code === 405) assert.equal(reply.headers.allow, "POST");
      if (/past what is drained/.test(name)) assert.equal(reply.headers.connection, "close");
    });
  }

  it("denies a review too large to read, by its uid, instead of failing the request", async () => {
    const big = JSON.parse(review("https://issuer.example.com"));
    big.request.operation = "UPDATE";
    big.request.object.metadata.annotations = { big: "x".repeat(70 * 1024) };
    const reply = await send({ body: JSON.stringify(big) });
    assert.equal(reply.status, 200);
    assert.deepEqual(JSON.parse(reply.body), {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: {
        uid: "uid-1",
        allowed: false,
        status: {
          status: "Failure",
          code: 413,
          reason: "RequestEntityTooLarge",
          message: "the object is too large to validate: the review is larger than 65536 bytes",
        },
      },
    });
  });

  it("by default reads an UPDATE review of two objects as large as etcd stores", async () => {
    const roomy = await startWebhookServer({ certs: holder, host: "127.0.0.1", port: 0 });
    try {
      const update = JSON.parse(review("https://issuer.example.com"));
      const object = update.request.object;
      object.metadata.annotations = { big: "x".repeat(1.5 * 1024 * 1024 - 1024) };
      update.request.operation = "UPDATE";
      update.request.oldObject = object;
      const body = JSON.stringify(update);
      assert.ok(body.length > 3 * 1024 * 1024 - 4096);
      const reply = await send({ body, port: roomy.port });
      assert.equal(reply.status, 200, reply.body.slice(0, 200));
      assert.equal(JSON.parse(reply.body).response.allowed, true);

      // A new object past what kube-apiserver stores is denied, not answered with an error.
      update.request.object = {
        ...object,
        metadata: { name: "corp", annotations: { big: "x".repeat(3 << 20) } },
      };
      const tooBig = await send({ body: JSON.stringify(update), port: roomy.port });
      assert.equal(tooBig.status, 200);
      assert.equal(JSON.parse(tooBig.body).response.status.code, 413);
    } finally {
      await roomy.close();
    }
  });

  it("reads at most maxInFlight reviews at once and answers the rest with 429", async () => {
    const narrow = await startWebhookServer({ certs: holder, host: "127.0.0.1", port: 0, maxInFlight: 1 });
    const holding = request({
      host: "127.0.0.1",
      port: narrow.port,
      servername: "localhost",
      method: "POST",
      path: validatePath,
      headers: { "Content-Type": "application/json", "Content-Length": "100" },
      ca: caPEM,
      agent: false,
    });
    holding.on("error", () => {});
    try {
      // Half a body: the review holds its slot until the rest comes.
      holding.write("{");
      let reply: Reply | undefined;
      for (let i = 0; i < 100 && reply?.status !== 429; i++) {
        reply = await send({ body: review("https://issuer.example.com"), port: narrow.port });
      }
      assert.equal(reply?.status, 429);
      assert.equal(reply?.headers["retry-after"], "1");
      assert.equal(JSON.parse(reply?.body ?? "").reason, "TooManyRequests");
    } finally {
      holding.destroy();
      await narrow.close();
    }
  });

  it("keeps serving after all of those", async () => {
    assert.equal((await send({ body: review("https://issuer.example.com") })).status, 200);
  });

  it("serves a new certificate on new connections once the holder has it", async () => {
    holder.set(second);
    const reply = await send({ body: review("https://issuer.example.com") });
    assert.equal(reply.status, 200);
    assert.equal(reply.fingerprint, fingerprintOf(second));
  });

  it("refuses TLS 1.2, as the aggregated API's Secure profile does", async () => {
    await assert.rejects(send({ body: review("https://issuer.example.com") }, { maxVersion: "TLSv1.2" }));
  });

  it("counts requests by kind and result and times them", async () => {
    const text = await metrics.text();
    assert.match(
      text,
      /concierge_admission_webhook_requests_total\{kind="JWTAuthenticator",result="allowed"\} [3-9]/,
    );
    assert.match(text, /concierge_admission_webhook_requests_total\{kind="other",result="bad_request"\} 8/);
    assert.match(text, /concierge_admission_webhook_requests_total\{kind="other",result="denied"\} 1/);
    assert.match(
      text,
      /concierge_admission_webhook_request_duration_seconds_count\{kind="JWTAuthenticator"\} \d+/,
    );
  });

  it("logs names and fields, never object contents", () => {
    const warned = logs.lines.find((l) => l.message === "admitted with warnings");
    assert.ok(warned);
    assert.equal(warned.kind, "JWTAuthenticator");
    assert.equal(warned.name, "corp");
    assert.deepEqual(warned.fields, ["spec.issuer"]);
    assert.ok(!JSON.stringify(logs.lines).includes("do-not-log-me"));
    assert.ok(logs.lines.some((l) => l.message === "serving certificate changed"));
  });
});

describe("ServingCertHolder", () => {
  let cert: ServingCert;
  let otherKeyPEM: string;

  before(async () => {
    const ca = await testCA("holder test CA");
    const [a, b] = await Promise.all([ca.issue({ cn: "a" }), ca.issue({ cn: "b" })]);
    cert = a;
    otherKeyPEM = b.keyPEM;
  });

  it("tells subscribers about each new pair until they unsubscribe", () => {
    const holder = new ServingCertHolder();
    const seen: ServingCert[] = [];
    const unsubscribe = holder.onChange((c) => seen.push(c));
    holder.set(cert);
    assert.deepEqual(holder.get(), cert);
    unsubscribe();
    holder.set(cert);
    assert.equal(seen.length, 1);
  });

  it("refuses a key that does not match the certificate and keeps the pair it had", () => {
    const holder = new ServingCertHolder();
    holder.set(cert);
    let calls = 0;
    holder.onChange(() => calls++);
    assert.throws(() => holder.set({ certPEM: cert.certPEM, keyPEM: otherKeyPEM }), /key values mismatch/);
    assert.throws(() => holder.set({ certPEM: "not a cert", keyPEM: cert.keyPEM }));
    assert.deepEqual(holder.get(), cert);
    assert.equal(calls, 0);
  });
});
