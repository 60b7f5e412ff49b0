// The answer kube-apiserver's max-in-flight filter gives, which every listener with an in-flight
// limit here (aggregated API, impersonation proxy) must give too.
import assert from "node:assert/strict";
import { tooManyRequestsBody, tooManyRequestsHeaders } from "../../kube/inflight.ts";

export function assertTooManyRequests(reply: {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}): void {
  assert.equal(reply.status, 429);
  assert.equal(reply.headers["retry-after"], tooManyRequestsHeaders["retry-after"]);
  assert.deepEqual(JSON.parse(reply.body), JSON.parse(tooManyRequestsBody));
}
