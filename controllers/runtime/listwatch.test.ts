import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError, type RestClient, type StreamOptions } from "../../kube/rest.ts";
import {
  classifyFailure,
  DecodeError,
  InactivityError,
  parseWatchLine,
  restTransport,
  ShortWatchError,
  type WatchEvent,
  watchErrorToApiError,
} from "./listwatch.ts";

describe("parseWatchLine", () => {
  it("parses watch events and rejects anything else", () => {
    assert.deepEqual(parseWatchLine('{"type":"ADDED","object":{"metadata":{"name":"a"}}}'), {
      type: "ADDED",
      object: { metadata: { name: "a" } },
    });
    assert.throws(() => parseWatchLine("not json"), DecodeError);
    assert.throws(() => parseWatchLine('{"kind":"Status"}'), DecodeError);
    assert.throws(() => parseWatchLine("null"), DecodeError);
  });
});

describe("classifyFailure", () => {
  const net = (code: string) => Object.assign(new Error(code), { code });
  const cases: [unknown, string][] = [
    [new ApiError(410, "gone"), "gone"],
    [new ApiError(500, "too old resource version: 5 (9)"), "gone"],
    [new ApiError(401, "x"), "unauthorized"],
    [new ApiError(403, "x"), "forbidden"],
    [new ApiError(429, "x"), "throttled"],
    [new ApiError(404, "x"), "client_error"],
    [new ApiError(503, "x"), "server_error"],
    [net("ECONNREFUSED"), "connection_refused"],
    [net("ECONNRESET"), "network"],
    [net("UND_ERR_SOCKET"), "network"],
    [new Error("socket hang up"), "network"],
    [Object.assign(new Error("t"), { name: "TimeoutError" }), "timeout"],
    [new InactivityError("quiet"), "inactivity"],
    [new ShortWatchError("short"), "closed"],
    [new DecodeError("bad"), "decode"],
    ["a string", "unknown"],
  ];
  for (const [err, kind] of cases) {
    it(`${err instanceof Error ? `${err.name}: ${err.message}` : String(err)} is ${kind}`, () =>
      assert.equal(classifyFailure(err), kind));
  }

  it("maps a watch ERROR Status to an ApiError, defaulting the code to 500", () => {
    assert.equal(watchErrorToApiError({ code: 410, reason: "Expired", message: "too old" }).code, 410);
    assert.equal(watchErrorToApiError({ message: "?" }).code, 500);
  });
});

describe("restTransport", () => {
  it("lists with GET and watches with watch=true, decoding each line", async () => {
    const calls: unknown[] = [];
    const client: RestClient = {
      request: async (o) => {
        calls.push(["request", o.method, o.path, o.query]);
        return { items: [] } as never;
      },
      stream: async (o: StreamOptions) => {
        calls.push(["stream", o.path, o.query]);
        o.onOpen?.();
        o.onActivity?.();
        o.onLine('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}');
      },
    };
    const t = restTransport(client);
    const signal = new AbortController().signal;
    await t.list("/api/v1/pods", { limit: 1 }, signal);
    const events: WatchEvent[] = [];
    let opened = false;
    await t.watch("/api/v1/pods", { resourceVersion: "8" }, signal, {
      open: () => {
        opened = true;
      },
      activity: () => {},
      event: (e) => events.push(e),
    });
    assert.deepEqual(calls, [
      ["request", "GET", "/api/v1/pods", { limit: 1 }],
      ["stream", "/api/v1/pods", { resourceVersion: "8", watch: true }],
    ]);
    assert.equal(opened, true);
    assert.equal(events[0]?.type, "BOOKMARK");
  });
});
