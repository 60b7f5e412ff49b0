import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { ClusterAccess } from "./kubeconfig.ts";

/** A Kubernetes `Status` object, as returned with errors and in watch ERROR events. */
export interface KubeStatus {
  kind?: "Status";
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: unknown;
}

/** An HTTP error answer from the API server, carrying its `Status` when it sent one. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly code: number;
  readonly reason: string;
  readonly status: KubeStatus | undefined;

  constructor(code: number, message: string, status?: KubeStatus) {
    super(message);
    this.code = code;
    this.reason = status?.reason ?? "";
    this.status = status;
  }
}

export function isApiError(err: unknown, code?: number): err is ApiError {
  return err instanceof ApiError && (code === undefined || err.code === code);
}
export const isNotFound = (err: unknown): boolean => isApiError(err, 404);
export const isConflict = (err: unknown): boolean => isApiError(err, 409);
export const isAlreadyExists = (err: unknown): boolean =>
  isApiError(err, 409) && (err as ApiError).reason === "AlreadyExists";

/** The response ended before the server finished it (connection dropped mid-stream). */
export class StreamClosedError extends Error {
  override readonly name = "StreamClosedError";
}

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;
export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestOptions {
  method: Method;
  path: string;
  query?: Query;
  /** Sent as JSON unless it is already a string. */
  body?: unknown;
  /** Defaults to `application/json`; patches need their own type. */
  contentType?: string;
  signal?: AbortSignal;
  /** Overrides the client's default per-request timeout. */
  timeoutMs?: number;
}

export interface StreamOptions {
  path: string;
  query?: Query;
  signal: AbortSignal;
  /** The server accepted the request (HTTP 200); lines follow. */
  onOpen?: () => void;
  /** Any bytes arrived, even a partial line; feeds inactivity watchdogs. */
  onActivity?: () => void;
  /** One complete non-empty line of the body. Throwing from here ends the stream with that error. */
  onLine: (line: string) => void;
}

/** Raw access to the API server by URL path; what the informer, leases and status writes use. */
export interface RestClient {
  request<T = unknown>(options: RequestOptions): Promise<T>;
  /** GETs a streaming response (a watch); resolves when the server ends it cleanly. */
  stream(options: StreamOptions): Promise<void>;
  /** Closes pooled connections, for a clean shutdown. */
  close?(): void;
}

export interface KubeRestClientOptions {
  /** Per-request timeout for non-streaming requests; default 60 s. */
  timeoutMs?: number;
  userAgent?: string;
  /** Connections to the API server for requests at once, per TLS identity; default 64. */
  maxSockets?: number;
  /** Idle connections kept for reuse, per pool; default 8. */
  maxFreeSockets?: number;
  /** How long an idle pooled connection is kept; default 30 s. */
  idleSocketTimeoutMs?: number;
  /** Told of every request's outcome, for client-go's rest_client metrics (controllers/runtime/manager.ts). */
  onResult?: (result: RequestResult) => void;
}

/** One request as client-go's rest_client metrics label it. */
export interface RequestResult {
  method: string;
  /** The API server's host:port. */
  host: string;
  /** The HTTP status, or `<error>` when none arrived (client-go's word). */
  code: string;
  /** Until the response headers (a watch's too), as client-go measures request latency. */
  seconds: number;
}

const TCP_KEEPALIVE_MS = 30_000;
const DEFAULT_MAX_SOCKETS = 64;
const DEFAULT_MAX_FREE_SOCKETS = 8;
const DEFAULT_IDLE_SOCKET_TIMEOUT_MS = 30_000;

/**
 * One TLS identity's pools. Watches get their own: each holds its connection for as long as it
 * runs, so sharing the bounded request pool would let enough open watches queue every request
 * behind them. The watch pool is unbounded because the number of watches is fixed by the
 * informers (and the proxy forwards clients' watches over its own agent, not this one).
 */
interface Pools {
  requests: https.Agent;
  streams: https.Agent;
}

/**
 * A RestClient over a ClusterAccess (kubeconfig.ts, or client-node's KubeConfig in tests and
 * tools): `applyToHTTPSOptions` supplies the server's CA, client certificates, tokens (re-read as
 * they rotate) and TLS server name, so this file only does HTTP. Raw paths rather than typed
 * clients: status subresources of any kind, and a watch stream with our own inactivity rules.
 */
export class KubeRestClient implements RestClient {
  readonly #kc: ClusterAccess;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #maxSockets: number;
  readonly #maxFreeSockets: number;
  readonly #idleSocketTimeoutMs: number;
  readonly #onResult: ((result: RequestResult) => void) | undefined;
  readonly #pools = new Map<string, Pools>();

  constructor(kc: ClusterAccess, options: KubeRestClientOptions = {}) {
    this.#kc = kc;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#userAgent = options.userAgent ?? "concierge";
    this.#maxSockets = options.maxSockets ?? DEFAULT_MAX_SOCKETS;
    this.#maxFreeSockets = options.maxFreeSockets ?? DEFAULT_MAX_FREE_SOCKETS;
    this.#idleSocketTimeoutMs = options.idleSocketTimeoutMs ?? DEFAULT_IDLE_SOCKET_TIMEOUT_MS;
    this.#onResult = options.onResult;
  }

  /** Reports a request to `onResult` once: its status when headers arrive, `<error>` if none did. */
  #observe(req: http.ClientRequest, method: string, url: URL): void {
    const onResult = this.#onResult;
    if (!onResult) return;
    const started = performance.now();
    let reported = false;
    const report = (code: string) => {
      if (reported) return;
      reported = true;
      onResult({ method, host: url.host, code, seconds: (performance.now() - started) / 1000 });
    };
    req.once("response", (res: http.IncomingMessage) => report(String(res.statusCode ?? 0)));
    req.once("error", () => report("<error>"));
  }

  async request<T = unknown>(options: RequestOptions): Promise<T> {
    const timeout = AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const payload =
      options.body === undefined
        ? undefined
        : typeof options.body === "string"
          ? options.body
          : JSON.stringify(options.body);
    const headers: Record<string, string> = {};
    if (payload !== undefined) {
      headers["Content-Type"] = options.contentType ?? "application/json";
      headers["Content-Length"] = String(Buffer.byteLength(payload));
    }
    const { url, request } = await this.#prepare(
      "requests",
      options.method,
      options.path,
      options.query,
      headers,
      signal,
    );
    const { code, text } = await new Promise<{ code: number; text: string }>((resolve, reject) => {
      const req = request((res) => {
        res.setEncoding("utf8");
        let text = "";
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve({ code: res.statusCode ?? 0, text }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(payload);
    });
    if (code < 200 || code > 299) throw apiError(options.method, url, code, text);
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  async stream(options: StreamOptions): Promise<void> {
    const { url, request } = await this.#prepare(
      "streams",
      "GET",
      options.path,
      options.query,
      {},
      options.signal,
    );
    await new Promise<void>((resolve, reject) => {
      const req = request((res) => {
        res.setEncoding("utf8");
        if (res.statusCode !== 200) {
          let text = "";
          res.on("data", (chunk: string) => {
            text += chunk;
          });
          res.on("end", () => reject(apiError("GET", url, res.statusCode ?? 0, text)));
          res.on("error", reject);
          return;
        }
        // Rejects with the caller's error before destroying, so it wins over the close that follows.
        const failWith = (err: unknown) => {
          const error = err instanceof Error ? err : new Error(String(err));
          reject(error);
          req.destroy(error);
        };
        try {
          options.onOpen?.();
        } catch (err) {
          failWith(err);
          return;
        }
        let pending = "";
        res.on("data", (chunk: string) => {
          try {
            options.onActivity?.();
            pending += chunk;
            for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
              const line = pending.slice(0, nl);
              pending = pending.slice(nl + 1);
              if (line.trim() !== "") options.onLine(line);
            }
          } catch (err) {
            failWith(err);
          }
        });
        res.on("end", () => resolve());
        res.on("error", reject);
        res.on("close", () => {
          if (!res.complete)
            reject(new StreamClosedError("watch stream closed before the server finished it"));
        });
      });
      req.on("error", reject);
      req.end();
    });
  }

  async #prepare(
    pool: keyof Pools,
    method: Method,
    path: string,
    query: Query | undefined,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<{ url: URL; request: (onResponse: (res: http.IncomingMessage) => void) => http.ClientRequest }> {
    const cluster = this.#kc.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    const url = new URL(cluster.server.replace(/\/+$/, "") + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const options: https.RequestOptions = {
      method,
      headers: { Accept: "application/json", "User-Agent": this.#userAgent, ...headers },
      signal,
    };
    await this.#kc.applyToHTTPSOptions(options);
    if (url.protocol === "https:" && !cluster.proxyUrl) options.agent = this.#keepAliveAgents(options)[pool];
    const transport = url.protocol === "http:" ? http : https;
    return {
      url,
      request: (onResponse) => {
        const req = transport.request(url, options, onResponse);
        this.#observe(req, method, url);
        // Lets the kernel notice a silently dead peer on long-lived watches.
        req.on("socket", (socket) => socket.setKeepAlive(true, TCP_KEEPALIVE_MS));
        return req;
      },
    };
  }

  /**
   * client-node builds a new agent on every `applyToHTTPSOptions`, which would cost a TLS
   * handshake per request. Keep-alive pools per TLS identity instead: a rotated client
   * certificate or CA gets fresh pools, and the replaced ones close their sockets.
   */
  #keepAliveAgents(options: https.RequestOptions): Pools {
    const identity = createHash("sha256")
      .update(
        JSON.stringify([
          String(options.ca ?? ""),
          String(options.cert ?? ""),
          String(options.key ?? ""),
          options.servername ?? "",
          options.rejectUnauthorized ?? "",
        ]),
      )
      .digest("hex");
    let pools = this.#pools.get(identity);
    if (!pools) {
      this.close();
      const agent = (maxSockets: number) =>
        new https.Agent({
          keepAlive: true,
          // Bounds the connections a burst opens (excess requests queue in the agent), so that
          // N concurrent SubjectAccessReviews do not leave N idle TLS connections behind.
          maxSockets,
          maxFreeSockets: this.#maxFreeSockets,
          // Node applies this to every socket, but only destroys free ones when it fires: on a
          // socket in use it is just a 'timeout' event nobody here listens to, so a quiet watch
          // stays up (rest-keepalive.test.ts checks both).
          timeout: this.#idleSocketTimeoutMs,
          ca: options.ca,
          cert: options.cert,
          key: options.key,
          servername: options.servername,
          ...(options.rejectUnauthorized === undefined
            ? {}
            : { rejectUnauthorized: options.rejectUnauthorized }),
        });
      pools = { requests: agent(this.#maxSockets), streams: agent(Infinity) };
      this.#pools.set(identity, pools);
    }
    return pools;
  }

  /** Closes pooled connections; requests after this open new ones. */
  close(): void {
    for (const { requests, streams } of this.#pools.values()) {
      requests.destroy();
      streams.destroy();
    }
    this.#pools.clear();
  }
}

function apiError(method: Method, url: URL, code: number, text: string): ApiError {
  let status: KubeStatus | undefined;
  try {
    const parsed = JSON.parse(text) as KubeStatus;
    if (parsed && typeof parsed === "object" && parsed.kind === "Status") status = parsed;
  } catch {
    // Not a Status (a proxy's HTML page, an empty body): the code alone has to do.
  }
  const detail = status?.message ?? (http.STATUS_CODES[code] || "unexpected response");
  return new ApiError(code, `${method} ${url.pathname}: ${detail} (HTTP ${code})`, status);
}
