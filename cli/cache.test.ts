import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
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
    const cache = new CredentialCache(fresh(), () => new Date(now));
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
    await new CredentialCache(path, () => new Date(t0)).getOrCreate("k", exchanger(60_000));
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
    const cache = new CredentialCache(path, () => new Date(now));
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
      const cache = new CredentialCache(path, () => new Date(t0));
      const create = exchanger(60_000);
      await cache.getOrCreate("k", create);
      await cache.getOrCreate("k", create);
      assert.equal(create.calls, 1);
      assert.deepEqual(await keysIn(path), ["k"]);
    }
  });

  it("exchanges once for a concurrent burst, and keeps every entry when writers race", async () => {
    const path = fresh();
    const caches = Array.from({ length: 20 }, () => new CredentialCache(path, () => new Date(t0)));
    const slow = exchanger(60_000, 20);
    await Promise.all(caches.map((c) => c.getOrCreate("same", slow)));
    assert.equal(slow.calls, 1);
    await Promise.all(caches.map((c, i) => c.getOrCreate(`k${i}`, exchanger(60_000))));
    assert.equal((await keysIn(path)).length, 21);
  });

  it("releases the lock and stores nothing when the exchange fails", async () => {
    const path = fresh();
    const cache = new CredentialCache(path, () => new Date(t0));
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
    const cache = new CredentialCache(path, () => new Date(t0));
    const create = exchanger(60_000);
    await cache.getOrCreate("k", create);
    await writeFile(`${path}.lock`, "");
    const old = new Date(Date.now() - 120_000);
    await utimes(`${path}.lock`, old, old);
    await cache.getOrCreate("k", create);
    assert.equal(create.calls, 1);
  });
});
