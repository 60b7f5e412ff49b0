import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AuthenticatorCache, type AuthenticatorKey, authenticationGroup } from "./cache.ts";
import type { TokenAuthenticator } from "./types.ts";

function fake(name: string, closed: string[]): TokenAuthenticator {
  return {
    authenticateToken: async () => ({ authenticated: true, user: { username: name, groups: [] } }),
    close: () => closed.push(name),
  };
}

const key = (name: string, kind = "JWTAuthenticator"): AuthenticatorKey => ({
  apiGroup: authenticationGroup,
  kind,
  name,
});

describe("AuthenticatorCache", () => {
  it("stores, gets and keys by group, kind and name", () => {
    const cache = new AuthenticatorCache();
    const closed: string[] = [];
    cache.store(key("a"), { authenticator: fake("a", closed), fingerprint: "f1" });
    cache.store(key("a", "WebhookAuthenticator"), { authenticator: fake("wa", closed), fingerprint: "f2" });
    assert.equal(cache.get(key("a"))?.fingerprint, "f1");
    assert.equal(cache.get(key("a", "WebhookAuthenticator"))?.fingerprint, "f2");
    assert.equal(cache.get({ ...key("a"), apiGroup: "other.example.com" }), undefined);
    assert.equal(cache.size, 2);
    assert.deepEqual(closed, []);
  });

  it("closes the authenticator it replaces, but not when the same one is stored again", () => {
    const cache = new AuthenticatorCache();
    const closed: string[] = [];
    const first = fake("first", closed);
    cache.store(key("a"), { authenticator: first, fingerprint: "1" });
    cache.store(key("a"), { authenticator: first, fingerprint: "1b" });
    assert.deepEqual(closed, []);
    cache.store(key("a"), { authenticator: fake("second", closed), fingerprint: "2" });
    assert.deepEqual(closed, ["first"]);
  });

  it("closes on delete and notifies listeners of every change", () => {
    const cache = new AuthenticatorCache();
    const closed: string[] = [];
    const seen: string[] = [];
    const stop = cache.onChange((k, e) => seen.push(`${k.name}:${e?.fingerprint ?? "gone"}`));
    cache.store(key("a"), { authenticator: fake("a", closed), fingerprint: "1" });
    cache.delete(key("a"));
    cache.delete(key("a"));
    stop();
    cache.store(key("b"), { authenticator: fake("b", closed), fingerprint: "2" });
    assert.deepEqual(closed, ["a"]);
    assert.deepEqual(seen, ["a:1", "a:gone"]);
    assert.deepEqual(
      cache.keys().map((k) => k.name),
      ["b"],
    );
  });
});
