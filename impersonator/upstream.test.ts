import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { maxStreamsPerSession, meansHTTP1Only, pickSession } from "./upstream.ts";

describe("HTTP/2 sessions to kube-apiserver", () => {
  it("fills the oldest session with room before the next, and opens none while one has room", () => {
    const limit = () => 2;
    assert.equal(
      pickSession(
        new Map([
          ["a", 1],
          ["b", 0],
        ]),
        limit,
      ),
      "a",
    );
    assert.equal(
      pickSession(
        new Map([
          ["a", 2],
          ["b", 1],
        ]),
        limit,
      ),
      "b",
    );
    assert.equal(
      pickSession(
        new Map([
          ["a", 2],
          ["b", 2],
        ]),
        limit,
      ),
      undefined,
    );
    assert.equal(pickSession(new Map<string, number>(), limit), undefined);
    assert.equal(maxStreamsPerSession, 250);
  });

  it("falls back to HTTP/1.1 only for a server that refuses or ignores the HTTP/2 offer", () => {
    assert.equal(meansHTTP1Only({ code: "ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL" }, undefined), true);
    assert.equal(meansHTTP1Only(undefined, false), true);
    assert.equal(meansHTTP1Only({ code: "ECONNREFUSED" }, undefined), false);
    assert.equal(meansHTTP1Only(undefined, "h2"), false);
  });
});
