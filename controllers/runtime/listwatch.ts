import type { KubeObject } from "../../kube/resource.ts";
import {
  ApiError,
  type KubeStatus,
  type Query,
  type RestClient,
  StreamClosedError,
} from "../../kube/rest.ts";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject | KubeStatus;
}

export interface ListPage {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: KubeObject[];
}

/** What a watch reports while it runs. */
export interface WatchSink {
  /** The server accepted the watch. */
  open(): void;
  /** Bytes arrived (an event, a bookmark, or part of one). */
  activity(): void;
  event(event: WatchEvent): void;
}

/**
 * How an informer reaches the API server. The real one speaks HTTP; tests pass scripted fakes
 * so that relisting, backoff and the watchdog are tested without a cluster.
 */
export interface InformerTransport {
  list(path: string, query: Query, signal: AbortSignal): Promise<ListPage>;
  /** Resolves when the server ends the watch cleanly; rejects on any failure or abort. */
  watch(path: string, query: Query, signal: AbortSignal, sink: WatchSink): Promise<void>;
}

/** A watch line that is not a watch event. */
export class DecodeError extends Error {
  override readonly name = "DecodeError";
}

/** The watchdog ended a watch that stayed silent for too long. */
export class InactivityError extends Error {
  override readonly name = "InactivityError";
}

/** The server ended a watch at once without sending anything; retried with backoff to avoid a hot loop. */
export class ShortWatchError extends Error {
  override readonly name = "ShortWatchError";
}

export function restTransport(client: RestClient): InformerTransport {
  return {
    list: (path, query, signal) => client.request<ListPage>({ method: "GET", path, query, signal }),
    watch: (path, query, signal, sink) =>
      client.stream({
        path,
        query: { ...query, watch: true },
        signal,
        onOpen: () => sink.open(),
        onActivity: () => sink.activity(),
        onLine: (line) => sink.event(parseWatchLine(line)),
      }),
  };
}

export function parseWatchLine(line: string): WatchEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new DecodeError(`watch line is not JSON (${line.length} bytes)`);
  }
  const event = parsed as Partial<WatchEvent> | null;
  if (!event || typeof event.type !== "string" || typeof event.object !== "object" || !event.object) {
    throw new DecodeError("watch line is not a watch event");
  }
  return event as WatchEvent;
}

/** A watch ERROR event as an ApiError, so that it is classified like an HTTP error. */
export function watchErrorToApiError(status: KubeStatus): ApiError {
  const code = typeof status.code === "number" ? status.code : 500;
  return new ApiError(code, `watch error: ${status.message ?? status.reason ?? "unknown"} (${code})`, status);
}

/** Bounded label values for `watch_errors_total{kind}`; also drives the retry decision. */
export type FailureKind =
  | "gone"
  | "unauthorized"
  | "forbidden"
  | "throttled"
  | "client_error"
  | "server_error"
  | "connection_refused"
  | "network"
  | "timeout"
  | "stream_closed"
  | "closed"
  | "inactivity"
  | "decode"
  | "unknown";

const NETWORK_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

export function classifyFailure(err: unknown): FailureKind {
  if (err instanceof ApiError) {
    if (err.code === 410 || /too old resource version/i.test(err.message)) return "gone";
    if (err.code === 401) return "unauthorized";
    if (err.code === 403) return "forbidden";
    if (err.code === 429) return "throttled";
    return err.code >= 500 ? "server_error" : "client_error";
  }
  if (err instanceof InactivityError) return "inactivity";
  if (err instanceof ShortWatchError) return "closed";
  if (err instanceof DecodeError || err instanceof SyntaxError) return "decode";
  if (err instanceof StreamClosedError) return "stream_closed";
  if (err instanceof Error) {
    if (err.name === "TimeoutError") return "timeout";
    const code = (err as { code?: unknown }).code;
    if (code === "ECONNREFUSED") return "connection_refused";
    if (typeof code === "string" && (NETWORK_CODES.has(code) || code.startsWith("UND_ERR"))) return "network";
    if (/socket hang up|other side closed|terminated/i.test(err.message)) return "network";
  }
  return "unknown";
}
