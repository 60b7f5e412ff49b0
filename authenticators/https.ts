// The HTTPS client the authenticators use to reach identity providers and webhooks:
// trusts the configured CA bundle (or the system roots), keeps connections alive per
// bundle, bounds time and response size, and never follows redirects.
import { Agent, request } from "node:https";
import { rootCertificates } from "node:tls";
import { deadline } from "../kube/deadline.ts";
import { guardedLookup, refusedHost } from "./outbound.ts";
import { proxyFor } from "./proxy.ts";

export interface HTTPSOptions {
  /** PEM bundle to trust instead of the system roots. */
  caPEM?: string | undefined;
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** Responses larger than this fail: a hostile endpoint cannot exhaust memory. */
  maxBytes?: number;
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface HTTPSResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export const defaultTimeoutMs = 30_000;
export const defaultMaxBytes = 4 * 1024 * 1024;

/** An agent whose bundle no request has used for this long is closed and forgotten. */
export const idleAgentMs = 10 * 60_000;

const agents = new Map<string, { agent: Agent; lastUsedMs: number }>();

/**
 * One keep-alive agent per CA bundle (system roots included) and proxy, so repeated JWKS fetches
 * and TokenReviews reuse TLS connections. TLS 1.2 is the floor, as upstream's Default profile.
 * Bundles come and go with authenticators (and a rotated CA is a new bundle), so agents left
 * idle are dropped on the next call instead of piling up with their sockets. Through a proxy,
 * Node's agent opens a CONNECT tunnel per connection; proxy.ts has already applied NO_PROXY.
 */
export function agentFor(caPEM: string | undefined, nowMs = Date.now(), proxy?: URL): Agent {
  const key = `${proxy?.href ?? ""}\n${caPEM ?? ""}`;
  for (const [other, entry] of agents) {
    if (other !== key && nowMs - entry.lastUsedMs > idleAgentMs && !busy(entry.agent)) {
      entry.agent.destroy();
      agents.delete(other);
    }
  }
  let entry = agents.get(key);
  if (!entry) {
    const agent = new Agent({
      keepAlive: true,
      maxSockets: 64,
      minVersion: "TLSv1.2",
      ca: caPEM ?? [...rootCertificates],
      lookup: guardedLookup,
      ...(proxy ? { proxyEnv: { HTTPS_PROXY: proxy.href } } : {}),
    });
    entry = { agent, lastUsedMs: nowMs };
    agents.set(key, entry);
  }
  entry.lastUsedMs = nowMs;
  return entry.agent;
}

/** Requests in flight or waiting for a socket; only free keep-alive sockets may be closed. */
function busy(agent: Agent): boolean {
  const count = (lists: NodeJS.ReadOnlyDict<unknown[]>) =>
    Object.values(lists).reduce((n, list) => n + (list?.length ?? 0), 0);
  return count(agent.sockets) + count(agent.requests) > 0;
}

export class HTTPSError extends Error {
  readonly url: string;
  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.url = url;
  }
}

export function httpsRequest(url: string, options: HTTPSOptions = {}): Promise<HTTPSResponse> {
  const parsed = new URL(url);
  if (parsed.protocol !== "https:")
    return Promise.reject(new HTTPSError(url, `refusing non-https URL ${url}`));
  // Names are checked by the agent's lookup; an address literal is dialled without one.
  const refused = refusedHost(parsed.hostname);
  if (refused) return Promise.reject(new HTTPSError(url, `refusing to connect to ${url}: ${refused}`));
  let proxy: URL | undefined;
  try {
    proxy = proxyFor(parsed.hostname, Number(parsed.port || 443));
  } catch (err) {
    return Promise.reject(new HTTPSError(url, (err as Error).message));
  }
  const maxBytes = options.maxBytes ?? defaultMaxBytes;
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  return new Promise((settle, fail) => {
    const { signal, clear } = deadline(timeoutMs, options.signal);
    const resolve = (response: HTTPSResponse) => {
      clear();
      settle(response);
    };
    const reject = (err: Error) => {
      clear();
      fail(err);
    };
    const req = request(
      parsed,
      {
        method: options.method ?? "GET",
        agent: agentFor(options.caPEM, Date.now(), proxy),
        headers: {
          accept: "application/json",
          ...(options.body === undefined
            ? {}
            : { "content-length": Buffer.byteLength(options.body).toString() }),
          ...options.headers,
        },
        signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            res.destroy();
            reject(new HTTPSError(url, `response from ${url} is larger than ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", (err) => reject(new HTTPSError(url, err.message, { cause: err })));
      },
    );
    req.on("error", (err) => {
      const message =
        signal.aborted && signal.reason instanceof DOMException && signal.reason.name === "TimeoutError"
          ? `request to ${url} timed out after ${timeoutMs} ms`
          : err.message;
      reject(new HTTPSError(url, message, { cause: err }));
    });
    req.end(options.body);
  });
}

/** GET and parse JSON; a non-2xx status or a body that is not JSON is an error. */
export async function httpsGetJSON(url: string, options: HTTPSOptions = {}): Promise<unknown> {
  const res = await httpsRequest(url, { ...options, method: "GET" });
  if (res.status < 200 || res.status > 299) {
    throw new HTTPSError(url, `${url} answered HTTP ${res.status}: ${res.body.toString("utf8", 0, 200)}`);
  }
  try {
    return JSON.parse(res.body.toString("utf8"));
  } catch (err) {
    throw new HTTPSError(url, `${url} did not answer JSON`, { cause: err });
  }
}
