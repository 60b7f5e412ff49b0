// /metrics on the aggregated API's HTTPS port, served as kube-apiserver's own components serve it:
// the caller's bearer token is checked with a TokenReview and `get` on the path with a
// SubjectAccessReview (delegated authentication and authorization), so a Prometheus whose
// ServiceAccount is bound to the ClusterRole `pinniped-concierge-metrics-reader` scrapes it and an
// anonymous caller is refused. Allowed tokens are remembered for 10 s (the delegating
// authenticator's and authorizer's TTL), by hash, so a scrape every few seconds costs no reviews.
import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { RestClient } from "../kube/rest.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { IncomingRequest, OutgoingResponse } from "./aggregated.ts";

export const metricsPath = "/metrics";
export const allowCacheTTLMs = 10_000;
const maxCachedTokens = 1000;

export interface MetricsEndpointOptions {
  client: RestClient;
  metrics: Metrics;
  log: Logger;
  /** Per review; default 10 s. */
  timeoutMs?: number;
  now?: () => number;
}

interface ReviewedUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** What to answer, from the reviews' outcomes; `undefined` user means the token was not accepted. */
export function decide(
  token: string | undefined,
  user: ReviewedUser | undefined,
  allowed: boolean,
): { code: 200 } | { code: 401 | 403; reason: string; message: string } {
  if (token === undefined || user === undefined) {
    return { code: 401, reason: "Unauthorized", message: "Unauthorized" };
  }
  if (!allowed) {
    return {
      code: 403,
      reason: "Forbidden",
      message: `forbidden: User "${user.username}" cannot get path "${metricsPath}"`,
    };
  }
  return { code: 200 };
}

// HTTP/1.1 and HTTP/2 compatibility responses share writeHead and end; TypeScript cannot call the union.
const asHTTP1 = (res: OutgoingResponse) => res as ServerResponse;

function status(res: OutgoingResponse, code: number, reason: string, message: string): void {
  asHTTP1(res).writeHead(code, { "content-type": "application/json", "cache-control": "no-cache, private" });
  res.end(
    JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      code,
    }),
  );
}

function bearerToken(req: IncomingRequest): string | undefined {
  const header = req.headers.authorization;
  const match = typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return match?.[1];
}

export function createMetricsHandler(options: MetricsEndpointOptions) {
  const { client, metrics, log } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const now = options.now ?? Date.now;
  const allowedUntil = new Map<string, number>();
  const scrapes = metrics.counter({
    name: "metrics_scrapes_total",
    help: "Requests for /metrics on the HTTPS port, by answer code.",
    labelNames: ["code"] as const,
  });

  async function review(token: string): Promise<{ user: ReviewedUser | undefined; allowed: boolean }> {
    const signal = AbortSignal.timeout(timeoutMs);
    const tokenReview = await client.request<{ status?: { authenticated?: boolean; user?: ReviewedUser } }>({
      method: "POST",
      path: "/apis/authentication.k8s.io/v1/tokenreviews",
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
      signal,
      timeoutMs,
    });
    const user = tokenReview?.status?.authenticated ? tokenReview.status.user : undefined;
    if (!user?.username) return { user: undefined, allowed: false };
    const sar = await client.request<{ status?: { allowed?: boolean } }>({
      method: "POST",
      path: "/apis/authorization.k8s.io/v1/subjectaccessreviews",
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: user.username,
          ...(user.uid ? { uid: user.uid } : {}),
          groups: user.groups ?? [],
          ...(user.extra ? { extra: user.extra } : {}),
          nonResourceAttributes: { path: metricsPath, verb: "get" },
        },
      },
      signal,
      timeoutMs,
    });
    return { user, allowed: sar?.status?.allowed === true };
  }

  return (req: IncomingRequest, res: OutgoingResponse): void => {
    const answer = async () => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return status(
          res,
          405,
          "MethodNotAllowed",
          "the server does not allow this method on the requested resource",
        );
      }
      const token = bearerToken(req);
      const key = token === undefined ? undefined : createHash("sha256").update(token).digest("hex");
      let verdict: ReturnType<typeof decide> = { code: 200 };
      if (key === undefined || (allowedUntil.get(key) ?? 0) <= now()) {
        const reviewed = token === undefined ? { user: undefined, allowed: false } : await review(token);
        verdict = decide(token, reviewed.user, reviewed.allowed);
        if (key !== undefined && verdict.code === 200) {
          if (allowedUntil.size >= maxCachedTokens) allowedUntil.clear();
          allowedUntil.set(key, now() + allowCacheTTLMs);
        }
      }
      scrapes.inc({ code: String(verdict.code) });
      if (verdict.code !== 200) return status(res, verdict.code, verdict.reason, verdict.message);
      const body = await metrics.text();
      asHTTP1(res)
        .writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-cache, private" })
        .end(req.method === "HEAD" ? "" : body);
    };
    answer().catch((err: unknown) => {
      log.warn("could not review a /metrics request", { error: err });
      scrapes.inc({ code: "503" });
      status(res, 503, "ServiceUnavailable", "could not review the request's credentials; try again");
    });
  };
}
