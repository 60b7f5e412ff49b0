// A real token-authentication webhook for tests: HTTPS on 127.0.0.1 with its own CA, a table
// of valid tokens, and failure modes a test switches on (slow, 5xx then ok, v1 only, a fixed
// answer). It records what it was asked, but never prints a token.
import { createServer as createNetServer } from "node:net";
import { startHTTPSServer } from "./tls.ts";

export interface WebhookUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export type WebhookBehaviour =
  | { mode: "normal" }
  /** Every answer waits this long first. */
  | { mode: "slow"; delayMs: number }
  /** The next `failures` requests get `status` (default 503), then answers are normal again. */
  | { mode: "fail-then-ok"; failures: number; status?: number }
  /** Speaks `authentication.k8s.io/v1` only: any other version gets a 400. */
  | { mode: "v1-only" }
  /** Every request gets exactly this answer. */
  | { mode: "fixed"; status: number; body: string | Buffer };

export interface ReviewRequest {
  method: string;
  path: string;
  contentType: string | undefined;
  apiVersion: unknown;
  kind: unknown;
  token: unknown;
  audiences: unknown;
}

export interface TokenReviewWebhook {
  /** `https://127.0.0.1:<port>/authenticate` */
  readonly url: string;
  readonly port: number;
  /** The CA that signed the serving certificate, PEM and base64 of the PEM (for spec.tls). */
  readonly caPEM: string;
  readonly caBase64: string;
  /** The serving key pair, e.g. for a `kubernetes.io/tls` Secret that also carries `ca.crt`. */
  readonly servingCertPEM: string;
  readonly servingKeyPEM: string;
  /** Valid tokens and whom they belong to; tests may change it. */
  readonly users: Map<string, WebhookUser>;
  /** Every request, in order. */
  readonly requests: ReviewRequest[];
  behave(behaviour: WebhookBehaviour): void;
  close(): Promise<void>;
}

export interface TokenReviewWebhookOptions {
  users?: Record<string, WebhookUser>;
  /** The address to listen on; 127.0.0.1 unless given (a real node's bridge address for pods). */
  host?: string;
}

export async function startTokenReviewWebhook(
  options: TokenReviewWebhookOptions = {},
): Promise<TokenReviewWebhook> {
  const users = new Map(Object.entries(options.users ?? {}));
  const requests: ReviewRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let behaviour: WebhookBehaviour = { mode: "normal" };

  const server = await startHTTPSServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      let review: { apiVersion?: unknown; kind?: unknown; spec?: { token?: unknown; audiences?: unknown } } =
        {};
      try {
        review = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        // Recorded as a request without fields; the answer below is still a TokenReview.
      }
      requests.push({
        method: req.method ?? "",
        path: req.url ?? "",
        contentType: req.headers["content-type"],
        apiVersion: review.apiVersion,
        kind: review.kind,
        token: review.spec?.token,
        audiences: review.spec?.audiences,
      });
      const send = (status: number, body: string | Buffer) => {
        if (res.destroyed) return;
        res.writeHead(status, { "content-type": "application/json" });
        res.end(body);
      };
      const answer = () => {
        const user = typeof review.spec?.token === "string" ? users.get(review.spec.token) : undefined;
        const status = user
          ? { authenticated: true, user: { groups: [], ...user } }
          : { authenticated: false, error: "unknown token" };
        send(
          200,
          JSON.stringify({
            apiVersion: review.apiVersion,
            kind: "TokenReview",
            status,
            spec: {},
            metadata: {},
          }),
        );
      };
      if (req.method !== "POST") return send(405, '{"kind":"Status","code":405}');
      switch (behaviour.mode) {
        case "normal":
          return answer();
        case "slow": {
          const timer = setTimeout(() => {
            timers.delete(timer);
            answer();
          }, behaviour.delayMs);
          timers.add(timer);
          return;
        }
        case "fail-then-ok":
          if (behaviour.failures > 0) {
            behaviour = { ...behaviour, failures: behaviour.failures - 1 };
            const status = behaviour.status ?? 503;
            return send(status, JSON.stringify({ kind: "Status", code: status }));
          }
          return answer();
        case "v1-only":
          if (review.apiVersion !== "authentication.k8s.io/v1") {
            return send(400, '{"kind":"Status","code":400,"message":"only authentication.k8s.io/v1"}');
          }
          return answer();
        case "fixed":
          return send(behaviour.status, behaviour.body);
      }
    });
  }, options.host);

  return {
    url: `${server.base}/authenticate`,
    port: server.port,
    caPEM: server.caPEM,
    caBase64: server.caBase64,
    servingCertPEM: server.serving.certPEM,
    servingKeyPEM: server.serving.keyPEM,
    users,
    requests,
    behave(next) {
      behaviour = next;
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await server.close();
    },
  };
}

/** A loopback port that nothing listens on (it was free a moment ago): for "connection refused". */
export async function unusedPort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
