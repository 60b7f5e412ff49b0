// The answer kube-apiserver's max-in-flight filter gives, which every listener with an in-flight
// limit here (aggregated API, impersonation proxy) must give too.
import assert from "node:assert/strict";

export function assertTooManyRequests(reply: {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}): void {
  assert.equal(reply.status, 429);
  assert.equal(reply.headers["retry-after"], "1");
  assert.deepEqual(JSON.parse(reply.body), {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: "Too many requests, please try again later.",
    reason: "TooManyRequests",
    details: { retryAfterSeconds: 1 },
    code: 429,
  });
}
