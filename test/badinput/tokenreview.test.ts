// Bad answers from a token-authentication webhook: each is refused with its exact message (which
// never quotes the answer), or read as "not authenticated", never as a user it does not state.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MalformedTokenReviewError, parseTokenReview } from "../../authenticators/webhook/tokenreview.ts";

const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
const v1 = "authentication.k8s.io/v1";
const ok = (user: unknown) =>
  JSON.stringify({ apiVersion: v1, kind: "TokenReview", status: { authenticated: true, user } });

const malformed: [string, string, string][] = [
  ["an empty body", "", "the answer is not JSON (0 bytes)"],
  ["HTML", "<html>502</html>", "the answer is not JSON (16 bytes)"],
  ["truncated JSON", '{"status":{"authenticated":tr', "the answer is not JSON (29 bytes)"],
  ["unbalanced nesting", "[".repeat(5000), "the answer is not JSON (5000 bytes)"],
  ["null", "null", "the answer is not a JSON object"],
  ["an array", "[]", "the answer is not a JSON object"],
  ["5,000 nested arrays", deep(5000), "the answer is not a JSON object"],
  ["a string", '"authenticated"', "the answer is not a JSON object"],
  ["a number", "1", "the answer is not a JSON object"],
  ["another kind", '{"kind":"Status"}', 'the answer has kind "Status", not TokenReview'],
  [
    "a kind of 5,000 nested arrays",
    `{"kind":${deep(5000)}}`,
    "the answer has kind an array, not TokenReview",
  ],
  [
    "a kind that is a long string",
    JSON.stringify({ kind: "K".repeat(1000) }),
    "the answer has kind a string of 1000 characters, not TokenReview",
  ],
  ["a kind that is a number", '{"kind":7}', "the answer has kind a number, not TokenReview"],
  [
    "another group",
    '{"apiVersion":"example.com/v1"}',
    'the answer has unsupported apiVersion "example.com/v1"',
  ],
  [
    "v2",
    '{"apiVersion":"authentication.k8s.io/v2"}',
    'the answer has unsupported apiVersion "authentication.k8s.io/v2"',
  ],
  ["an apiVersion object", '{"apiVersion":{}}', "the answer has unsupported apiVersion a object"],
  [
    "an apiVersion of nested arrays",
    `{"apiVersion":${deep(3000)}}`,
    "the answer has unsupported apiVersion an array",
  ],
  ["status as a string", '{"status":"ok"}', "status is not an object"],
  ["status as an array", '{"status":[{"authenticated":true}]}', "status is not an object"],
  ["user as a string", ok("admin"), "status.user is not an object"],
  ["user as an array", ok(["admin"]), "status.user is not an object"],
  ["a username number", ok({ username: 0 }), "status.user.username is not a string"],
  ["a username list", ok({ username: ["a"] }), "status.user.username is not a string"],
  ["a uid number", ok({ username: "a", uid: 1 }), "status.user.uid is not a string"],
  [
    "groups as a string",
    ok({ username: "a", groups: "admins" }),
    "status.user.groups is not a list of strings",
  ],
  [
    "groups with a number",
    ok({ username: "a", groups: ["a", 1] }),
    "status.user.groups is not a list of strings",
  ],
  ["groups with null", ok({ username: "a", groups: [null] }), "status.user.groups is not a list of strings"],
  ["groups nested", ok({ username: "a", groups: [["a"]] }), "status.user.groups is not a list of strings"],
  ["extra as a list", ok({ username: "a", extra: [] }), "status.user.extra is not an object"],
  ["extra as a string", ok({ username: "a", extra: "x" }), "status.user.extra is not an object"],
  [
    "an extra value that is a string",
    ok({ username: "a", extra: { k: "v" } }),
    'status.user.extra["k"] is not a list of strings',
  ],
  [
    "an extra value with an object",
    ok({ username: "a", extra: { k: [{}] } }),
    'status.user.extra["k"] is not a list of strings',
  ],
];

const notAuthenticated: [string, string, string | undefined][] = [
  ["no status", "{}", undefined],
  ["authenticated as a string", '{"status":{"authenticated":"true"}}', undefined],
  ["authenticated as 1", '{"status":{"authenticated":1}}', undefined],
  [
    "authenticated false with a user",
    '{"status":{"authenticated":false,"user":{"username":"root"}}}',
    undefined,
  ],
  ["an error message", '{"status":{"authenticated":false,"error":"token expired"}}', "token expired"],
  ["an empty error", '{"status":{"authenticated":false,"error":""}}', undefined],
  ["an error that is not a string", '{"status":{"authenticated":false,"error":{"a":1}}}', undefined],
  ["a status of null", '{"status":null}', undefined],
];

describe(`TokenReview answers (${malformed.length + notAuthenticated.length} bad ones)`, () => {
  for (const [name, body, message] of malformed) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => parseTokenReview(Buffer.from(body)),
        (err: unknown) => err instanceof MalformedTokenReviewError && err.message === message,
      );
    });
  }
  for (const [name, body, error] of notAuthenticated) {
    it(`reads ${name} as not authenticated`, () => {
      assert.deepEqual(parseTokenReview(Buffer.from(body)), {
        authenticated: false,
        error,
        version: undefined,
      });
    });
  }
});
