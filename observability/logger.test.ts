import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger, isSensitiveName, Logger, memoryLogger, REDACTED, scrub } from "./logger.ts";

function capture(level: ConstructorParameters<typeof Logger>[0] = {}) {
  const lines: string[] = [];
  const log = new Logger({
    now: () => Date.UTC(2026, 0, 2, 3, 4, 5, 6),
    sink: (l) => lines.push(l),
    ...level,
  });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("Logger", () => {
  it("writes one JSON object per line with upstream's keys, bound fields and call fields", () => {
    const { log, lines } = capture();
    log
      .child({ component: "controllers" })
      .child({ controller: "jwt" })
      .info("synced", { key: "ns/a", count: 2 });
    assert.equal(lines.length, 1);
    assert.match(
      lines[0] ?? "",
      /^\{"level":"info","timestamp":"2026-01-02T03:04:05\.006Z","caller":"observability\/logger\.test\.ts:\d+(\$[^"]+)?","message":"synced","component":"controllers","controller":"jwt","key":"ns\/a","count":2\}$/,
    );
  });

  it("names the file, line and function that logged", () => {
    const { log, parsed } = capture();
    function reconcile() {
      log.warn("here");
    }
    reconcile();
    assert.match(String(parsed()[0]?.caller), /^observability\/logger\.test\.ts:\d+\$reconcile$/);
  });

  it("writes text, tab-separated, when asked", () => {
    const { log, lines } = capture({ format: "text" });
    log.child({ component: "api" }).error("failed", { token: "t", code: 7 });
    const [timestamp, level, caller, message, fields] = (lines[0] ?? "").split("\t");
    assert.equal(timestamp, "2026-01-02T03:04:05.006Z");
    assert.equal(level, "error");
    assert.match(caller ?? "", /^observability\/logger\.test\.ts:\d+/);
    assert.equal(message, "failed");
    assert.deepEqual(JSON.parse(fields ?? ""), { component: "api", token: REDACTED, code: 7 });
  });

  it("filters by level", () => {
    const { log, parsed } = capture({ level: "warn" });
    log.debug("no");
    log.info("no");
    log.warn("yes");
    log.error("yes");
    assert.deepEqual(
      parsed().map((l) => l.level),
      ["warn", "error"],
    );
    assert.equal(log.enabled("info"), false);
  });

  it("takes the level from CONCIERGE_LOG_LEVEL unless one is passed, and reports a bad value", () => {
    const lines: string[] = [];
    const sink = (l: string) => lines.push(l);
    assert.equal(createLogger({ sink }, { CONCIERGE_LOG_LEVEL: "DEBUG" }).level, "debug");
    assert.equal(createLogger({ sink, level: "error" }, { CONCIERGE_LOG_LEVEL: "debug" }).level, "error");
    assert.equal(createLogger({ sink }, {}).level, "info");
    assert.equal(createLogger({ sink }, { CONCIERGE_LOG_LEVEL: "loud" }).level, "info");
    assert.match(lines.at(-1) ?? "", /unknown log level/);
  });

  it("redacts fields named like secrets, at any depth, and keeps references to them readable", () => {
    const { log, parsed } = capture();
    log.info("x", {
      token: "abc",
      password: "hunter2",
      clientSecret: "s",
      "tls.key": "k",
      signingKey: "k",
      privateKeyPEM: "pem",
      authorization: "Basic xyz",
      nested: { deeper: [{ bearerToken: "t", fine: 1 }] },
      key: "ns/name",
      secretName: "my-secret",
      tokenID: "sha256-hex",
      empty: "",
    });
    const { caller: _, ...line } = parsed()[0] ?? {};
    assert.deepEqual(line, {
      level: "info",
      timestamp: "2026-01-02T03:04:05.006Z",
      message: "x",
      token: REDACTED,
      password: REDACTED,
      clientSecret: REDACTED,
      "tls.key": REDACTED,
      signingKey: REDACTED,
      privateKeyPEM: REDACTED,
      authorization: REDACTED,
      nested: { deeper: [{ bearerToken: REDACTED, fine: 1 }] },
      key: "ns/name",
      secretName: "my-secret",
      tokenID: "sha256-hex",
      empty: "",
    });
  });

  it("scrubs bearer tokens and private keys from values and error messages", () => {
    const pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
    assert.equal(scrub(`key: ${pem} end`), `key: ${REDACTED} end`);
    assert.equal(
      scrub("sent Authorization: Bearer eyJhbGciOi.x.y to the server"),
      `sent Authorization: Bearer ${REDACTED} to the server`,
    );
    const { log, lines } = capture();
    log.error("failed", { error: new Error(`bad header Bearer abc.def`), data: pem });
    assert.ok(!lines[0]?.includes("abc.def"));
    assert.ok(!lines[0]?.includes("MHcCAQEE"));
  });

  it("renders errors, dates, maps, buffers and cycles without throwing", () => {
    const { log, parsed } = capture();
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const err = Object.assign(new Error("outer", { cause: new Error("inner") }), { code: "ECONNREFUSED" });
    log.info("x", {
      error: err,
      at: new Date(0),
      map: new Map([["a", 1]]),
      set: new Set([1]),
      buf: Buffer.from("secret bytes"),
      cyclic,
      big: 10n,
      skipped: undefined,
    });
    const { caller: _, ...line } = parsed()[0] ?? {};
    assert.deepEqual(line, {
      level: "info",
      timestamp: "2026-01-02T03:04:05.006Z",
      message: "x",
      error: { name: "Error", message: "outer", code: "ECONNREFUSED", cause: "inner" },
      at: "1970-01-01T00:00:00.000Z",
      map: { a: 1 },
      set: [1],
      buf: "<12 bytes>",
      cyclic: { a: 1, self: "[circular]" },
      big: "10",
    });
  });

  it("writes call fields named like upstream's keys as field.<name>, never over them", () => {
    const { log, parsed } = capture();
    log.info("real", { message: "fake", level: "error", timestamp: "never", caller: "nobody" });
    const { caller, ...line } = parsed()[0] ?? {};
    assert.notEqual(caller, "nobody");
    assert.deepEqual(line, {
      level: "info",
      timestamp: "2026-01-02T03:04:05.006Z",
      message: "real",
      "field.message": "fake",
      "field.level": "error",
      "field.timestamp": "never",
      "field.caller": "nobody",
    });
  });

  it("memoryLogger collects parsed lines for tests", () => {
    const { log, lines } = memoryLogger();
    log.trace("t", { a: 1 });
    assert.equal(lines[0]?.message, "t");
  });
});

describe("isSensitiveName", () => {
  const sensitive = [
    "token",
    "idToken",
    "access_token",
    "Password",
    "clientSecret",
    "tlsKey",
    "caKey",
    "privateKey",
    "keyData",
    "apiKey",
    "cookie",
    "credentials",
  ];
  const safe = [
    "key",
    "name",
    "secretName",
    "secretNamespace",
    "tokenID",
    "tokenType",
    "keyId",
    "issuer",
    "audience",
    "monkeys",
  ];
  for (const name of sensitive) it(`redacts ${name}`, () => assert.equal(isSensitiveName(name), true));
  for (const name of safe) it(`keeps ${name}`, () => assert.equal(isSensitiveName(name), false));
});
