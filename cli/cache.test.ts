import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { CredentialCache, cacheKey, expiryMarginMs, maxAgeMs } from "./cache.ts";

const t0 = Date.parse("2026-01-01T00:00:00Z");
const cred = (expiresInMs: number) => ({
  expirationTimestamp: new Date(t0 + expiresInMs).toISOString(),
  clientCertificateData: "cert",
  clientKeyData: "key",
});
/** A create() that counts its calls, optionally slow (as a real exchange is). */
function exchanger(expiresInMs: number, delayMs = 0) {
  const create = async () => {
    create.calls++;
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    return cred(expiresInMs);
  };
  create.calls = 0;
  return create;
}
const keyParts = {
  endpoint: "https://a",
  caBundleData: "Y2E=",
  apiGroupSuffix: "pinniped.dev",
  authenticatorType: "webhook",
  authenticatorName: "corp",
  token: "secret-token",
};
const keysIn = async (path: string) =>
  parse(await readFile(path, "utf8")).credentials.map((e: { key: string }) => e.key);

describe("CredentialCache", () => {
  let dir: string;
  let n = 0;
  const fresh = () => join(dir, `c${n++}`, "credentials.yaml");
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cli-cache-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("keys by endpoint, authenticator and token, without the token in clear", () => {
    const k = cacheKey(keyParts);
    assert.match(k, /^[0-9a-f]{64}$/);
    assert.equal(cacheKey({ ...keyParts }), k);
    assert.notEqual(cacheKey({ ...keyParts, token: "other" }), k);
    assert.notEqual(cacheKey({ ...keyParts, endpoint: "https://b" }), k);
    assert.notEqual(cacheKey({ ...keyParts, authenticatorName: "x" }), k);
  });

  it("reuses a stored credential until the margin before expiry, then exchanges again", async () => {
    let now = t0;
    const cache = new CredentialCache(fresh(), { now: () => new Date(now) });
    const create = exchanger(5 * 60_000);
    assert.deepEqual(await cache.getOrCreate("k", create), cred(5 * 60_000));
    assert.deepEqual(await cache.getOrCreate("k", create), cred(5 * 60_000));
    assert.equal(create.calls, 1);
    await cache.getOrCreate("other", create);
    assert.equal(create.calls, 2);
    now = t0 + 5 * 60_000 - expiryMarginMs - 1;
    await cache.getOrCreate("k", create);
    assert.equal(create.calls, 2);
    now = t0 + 5 * 60_000 - expiryMarginMs;
    await cache.getOrCreate("k", create);
    assert.equal(create.calls, 3);
  });

  it("writes upstream's file format, 0600 in a 0700 directory, with no lock or temp file left", async () => {
    const path = fresh();
    await new CredentialCache(path, { now: () => new Date(t0) }).getOrCreate("k", exchanger(60_000));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(path, ".."))).mode & 0o777, 0o700);
    const doc = parse(await readFile(path, "utf8"));
    assert.equal(doc.apiVersion, "config.supervisor.pinniped.dev/v1alpha1");
    assert.equal(doc.kind, "CredentialCache");
    assert.equal(doc.credentials[0].key, "k");
    assert.equal(doc.credentials[0].creationTimestamp, new Date(t0).toISOString());
    assert.equal(doc.credentials[0].credential.clientKeyData, "key");
    assert.deepEqual(await readdir(join(path, "..")), ["credentials.yaml"]);
  });

  it("prunes expired entries and ones older than an hour", async () => {
    let now = t0;
    const path = fresh();
    const cache = new CredentialCache(path, { now: () => new Date(now) });
    await cache.getOrCreate("short", exchanger(60_000));
    await cache.getOrCreate("long", exchanger(2 * maxAgeMs));
    now = t0 + 2 * 60_000;
    await cache.getOrCreate("new", exchanger(2 * maxAgeMs));
    assert.deepEqual(await keysIn(path), ["long", "new"]);
    now = t0 + maxAgeMs;
    const create = exchanger(2 * maxAgeMs);
    await cache.getOrCreate("long", create);
    assert.equal(create.calls, 1, "an entry older than an hour is not reused");
    assert.deepEqual(await keysIn(path), ["new", "long"]);
  });

  it("recovers from a corrupt or foreign file by starting over", async () => {
    for (const junk of [
      "{{{ not yaml",
      "apiVersion: v9\nkind: CredentialCache\ncredentials: []\n",
      "- a list",
    ]) {
      const path = fresh();
      await mkdir(join(path, ".."), { recursive: true });
      await writeFile(path, junk);
      const cache = new CredentialCache(path, { now: () => new Date(t0) });
      const create = exchanger(60_000);
      await cache.getOrCreate("k", create);
      await cache.getOrCreate("k", create);
      assert.equal(create.calls, 1);
      assert.deepEqual(await keysIn(path), ["k"]);
    }
  });

  it("exchanges once for a concurrent burst, and keeps every entry when writers race", async () => {
    const path = fresh();
    const caches = Array.from({ length: 20 }, () => new CredentialCache(path, { now: () => new Date(t0) }));
    const slow = exchanger(60_000, 20);
    await Promise.all(caches.map((c) => c.getOrCreate("same", slow)));
    assert.equal(slow.calls, 1);
    await Promise.all(caches.map((c, i) => c.getOrCreate(`k${i}`, exchanger(60_000))));
    assert.equal((await keysIn(path)).length, 21);
  });

  it("releases the lock and stores nothing when the exchange fails", async () => {
    const path = fresh();
    const cache = new CredentialCache(path, { now: () => new Date(t0) });
    await assert.rejects(
      cache.getOrCreate("k", async () => {
        throw new Error("authentication failed");
      }),
      /authentication failed/,
    );
    const create = exchanger(60_000);
    await cache.getOrCreate("k", create);
    assert.equal(create.calls, 1);
  });

  it("takes over a stale lock file left by a dead process", async () => {
    const path = fresh();
    const cache = new CredentialCache(path, { now: () => new Date(t0) });
    const create = exchanger(60_000);
    await mkdir(join(path, ".."), { recursive: true });
    await writeFile(`${path}.lock`, "");
    const old = new Date(Date.now() - 120_000);
    await utimes(`${path}.lock`, old, old);
    await cache.getOrCreate("k", create);
    assert.equal(create.calls, 1);
    await assert.rejects(stat(`${path}.lock`), /ENOENT/);
  });

  it("serves a hit without the lock and without writing", async () => {
    const path = fresh();
    const cache = new CredentialCache(path, { now: () => new Date(t0) });
    await cache.getOrCreate("k", exchanger(60 * 60_000));
    const before = await stat(path);
    await writeFile(`${path}.lock`, "");
    const create = exchanger(60_000);
    assert.deepEqual(await cache.getOrCreate("k", create), cred(60 * 60_000));
    assert.equal(create.calls, 0);
    assert.equal((await stat(path)).mtimeMs, before.mtimeMs);
    await rm(`${path}.lock`);
  });

  it("reads a YAML file written by upstream's CLI", async () => {
    const path = fresh();
    await mkdir(join(path, ".."), { recursive: true });
    const expires = new Date(t0 + 60 * 60_000).toISOString();
    await writeFile(
      path,
      [
        "apiVersion: config.supervisor.pinniped.dev/v1alpha1",
        "kind: CredentialCache",
        "credentials:",
        "- key: k",
        `  creationTimestamp: "${new Date(t0).toISOString()}"`,
        `  lastUsedTimestamp: "${new Date(t0).toISOString()}"`,
        "  credential:",
        `    expirationTimestamp: "${expires}"`,
        "    clientCertificateData: upstream-cert",
        "    clientKeyData: upstream-key",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const create = exchanger(60_000);
    const got = await new CredentialCache(path, { now: () => new Date(t0) }).getOrCreate("k", create);
    assert.equal(got.clientCertificateData, "upstream-cert");
    assert.equal(create.calls, 0);
  });

  it("never uses a file other users can read: says so in one line and replaces it with a 0600 one", async () => {
    const path = fresh();
    await new CredentialCache(path, { now: () => new Date(t0) }).getOrCreate("k", exchanger(60 * 60_000));
    await chmod(path, 0o644);
    const warnings: string[] = [];
    const create = exchanger(60 * 60_000);
    await new CredentialCache(path, { now: () => new Date(t0), warn: (l) => warnings.push(l) }).getOrCreate(
      "k",
      create,
    );
    assert.equal(create.calls, 1, "the exposed credential was used");
    assert.deepEqual(warnings, [
      `ignoring CredentialCache file ${path}: its mode 0644 lets other users read it, so it is not used; the next login replaces it with a 0600 one`,
    ]);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });

  it("says in one line that a file that does not parse is replaced", async () => {
    const path = fresh();
    await mkdir(join(path, ".."), { recursive: true });
    await writeFile(path, "credentials: [unclosed", { mode: 0o600 });
    const warnings: string[] = [];
    await new CredentialCache(path, { now: () => new Date(t0), warn: (l) => warnings.push(l) }).getOrCreate(
      "k",
      exchanger(60_000),
    );
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!,
      /^ignoring CredentialCache file .*: it does not parse \(.+\); the next login replaces it$/,
    );
    assert.deepEqual(await keysIn(path), ["k"]);
  });

  it("fails with a clear error when the file cannot be read", async () => {
    const path = fresh();
    await mkdir(path, { recursive: true });
    await assert.rejects(
      new CredentialCache(path).getOrCreate("k", exchanger(60_000)),
      new RegExp(`^Error: could not read CredentialCache file ${path}: EISDIR$`),
    );
  });
});
