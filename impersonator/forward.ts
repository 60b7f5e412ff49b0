// Normal (non-upgrade) requests, from HTTP/2 and HTTP/1.1 clients alike: ask the decider, then
// stream the request to kube-apiserver and its answer back without buffering either body, so that
// watch events and `logs -f` lines reach the client as soon as kube-apiserver writes them.
import type { X509Certificate } from "node:crypto";
import {
  type ClientRequest as ClientRequestToUpstream,
  type OutgoingHttpHeaders,
  validateHeaderName,
  validateHeaderValue,
} from "node:http";
import { type ClientHttp2Session, constants } from "node:http2";
import { type Agent, request as httpsRequest } from "node:https";
import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";
import type { Logger } from "../observability/logger.ts";
import type { ClientExchange, ClientResponse } from "./exchange.ts";
import {
  decideFailedResponse,
  downstreamHeaders,
  type ErrorResponse,
  incomingHeaders,
  invalidUpstreamRequestResponse,
  isLongRunning,
  pathWithoutQuery,
  refusalResponse,
  SECURITY_HEADERS,
  statusResponse,
  unreachableUpstreamResponse,
  upstreamHeaders,
} from "./headers.ts";
import type { ProxyMetrics } from "./servermetrics.ts";
import type { AuditInfo, Decision, IncomingRequest, RequestDecider } from "./types.ts";
import type { UpstreamSessions } from "./upstream.ts";

/** Where and how to reach kube-apiserver. */
export interface UpstreamTarget {
  host: string;
  port: number;
  /** Prefix of every forwarded path; empty for a plain `https://host:port` URL. */
  basePath: string;
  servername: string | undefined;
  /** Undefined: the system's roots (a managed cluster's API server may have a public certificate). */
  caPEM: string | undefined;
}

export interface ForwardContext {
  decide: RequestDecider;
  upstream: UpstreamTarget;
  /** HTTP/2 sessions to kube-apiserver, shared by every request in flight. */
  sessions: UpstreamSessions;
  /** Pooled keep-alive HTTP/1.1 connections, for an upstream without HTTP/2; one per request in flight. */
  agent: Agent;
  log: Logger;
  metrics: ProxyMetrics;
  /** 0: no limit. Never applied to long-running requests (watch, exec, logs, ...). */
  requestTimeoutMs: number;
}

/** The TLS facts about the client's connection. */
export interface Peer {
  verifiedClientCertificate: X509Certificate | undefined;
  remoteAddress: string;
}

/** Writes an error as the whole response, unless the response has already begun. */
export function sendError(r: ClientResponse, error: ErrorResponse): void {
  if (r.headersSent || r.destroyed) {
    r.destroy();
    return;
  }
  r.writeHead(error.code, {
    ...SECURITY_HEADERS,
    "content-type": error.contentType,
    "content-length": Buffer.byteLength(error.body),
  });
  r.end(error.body);
}

export function auditFields(audit: AuditInfo): Record<string, unknown> {
  return {
    user: audit.user.username,
    groups: audit.user.groups,
    authenticatedBy: audit.authenticatedBy,
    impersonatedUser: audit.impersonatedUser?.username,
    passthrough: audit.passthrough,
    verb: audit.verb,
    resource: audit.resource,
  };
}

/** Serves one request; never throws (every failure becomes a Status or a reset stream). */
export async function forwardRequest(
  ctx: ForwardContext,
  exchange: ClientExchange,
  peer: Peer,
): Promise<void> {
  const started = performance.now();
  const { method, path, response: r } = exchange;
  const client = new AbortController();
  let done = false;
  ctx.metrics.inFlight.inc();
  // A response's own state cannot tell a reset from a completed response (HTTP/2's compat layer
  // emits `finish` for both), so whatever is still under way is aborted; once the response was
  // finished nothing is, and the abort (whose DOMException captures a stack) is skipped.
  r.on("close", () => {
    ctx.metrics.inFlight.dec();
    if (!done) client.abort();
  });
  const incoming: IncomingRequest = {
    method,
    path,
    headers: incomingHeaders(exchange.rawHeaders),
    verifiedClientCertificate: peer.verifiedClientCertificate,
    remoteAddress: peer.remoteAddress,
    upgrade: false,
  };
  const finish = (code: number, audit: Record<string, unknown>) => {
    if (done) return;
    done = true;
    ctx.metrics.requests.inc({ method, code: String(code) });
    ctx.log.info("audit", {
      ...audit,
      method,
      path: pathWithoutQuery(path),
      code,
      latencyMs: Math.round(performance.now() - started),
    });
  };

  let decision: Decision;
  try {
    decision = await ctx.decide(incoming, client.signal);
  } catch (err) {
    if (client.signal.aborted) return;
    ctx.metrics.errors.inc({ stage: "decide" });
    ctx.log.error("deciding on a request failed", { error: err, method, path: pathWithoutQuery(path) });
    sendError(r, decideFailedResponse);
    finish(500, {});
    return;
  }
  if (client.signal.aborted) return;
  if (decision.action === "refuse") {
    sendError(r, refusalResponse(decision));
    finish(decision.code, { refused: decision.reason });
    return;
  }

  const audit = auditFields(decision.audit);
  const h2 = await ctx.sessions.acquire();
  if (client.signal.aborted) {
    h2?.release();
    return;
  }
  const sentAt = performance.now();
  let upReq: UpstreamCall;
  try {
    const headers = upstreamHeaders(incoming.headers, decision, peer.remoteAddress);
    const upstreamPath = ctx.upstream.basePath + path;
    upReq = h2
      ? http2Call(h2.session, h2.release, method, upstreamPath, headers)
      : http1Call(ctx, method, upstreamPath, headers);
  } catch (err) {
    h2?.release();
    // Node refuses header values it cannot send (a decider's extra value with a newline, say).
    ctx.metrics.errors.inc({ stage: "upstream-request" });
    ctx.log.error("the request for kube-apiserver could not be built", {
      error: err,
      method,
      path: pathWithoutQuery(path),
    });
    sendError(r, invalidUpstreamRequestResponse);
    finish(500, audit);
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  let upstreamEnded = false;
  if (ctx.requestTimeoutMs > 0 && !isLongRunning(decision.audit.verb, decision.audit.resource)) {
    timer = setTimeout(() => {
      ctx.metrics.errors.inc({ stage: "timeout" });
      upReq.destroy();
      sendError(
        r,
        statusResponse(504, "Timeout", "Timeout: request did not complete within the allowed duration"),
      );
      finish(504, audit);
    }, ctx.requestTimeoutMs);
  }
  r.on("close", () => {
    clearTimeout(timer);
    if (!upstreamEnded) upReq.destroy();
  });

  upReq.onResponse((code, distinctHeaders, upRes) => {
    upRes.once("end", () => {
      upstreamEnded = true;
    });
    ctx.metrics.upstreamLatency.observe({ kind: "request" }, (performance.now() - sentAt) / 1000);
    if (done || client.signal.aborted || r.headersSent) {
      upRes.destroy();
      return;
    }
    try {
      r.writeHead(code, downstreamHeaders(distinctHeaders));
    } catch (err) {
      // HTTP/2 refuses some header sets HTTP/1.1 allows (a repeated single-value header).
      ctx.metrics.errors.inc({ stage: "upstream-response" });
      ctx.log.warn("kube-apiserver's response headers could not be relayed", { error: err });
      upRes.destroy();
      upReq.destroy();
      sendError(
        r,
        statusResponse(502, "InternalError", "Internal error occurred: invalid upstream response"),
      );
      finish(502, audit);
      return;
    }
    // An HTTP/1.1 response otherwise holds its head until the first body chunk, which for a
    // quiet watch may be minutes away.
    r.flushHeaders?.();
    // pipe and listeners, not pipeline: pipeline aborts an AbortController of its own at the end
    // of every response, and the DOMException that makes captures a stack.
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err && !client.signal.aborted) {
        ctx.metrics.errors.inc({ stage: "upstream-response" });
        ctx.log.warn("kube-apiserver's response broke off", {
          error: err,
          method,
          path: pathWithoutQuery(path),
        });
      }
      finish(code, audit);
    };
    const { sink } = exchange;
    sink.once("finish", () => settle());
    sink.once("close", () => settle(new Error("the client's connection closed before the response ended")));
    upRes.once("error", (err) => {
      r.destroy();
      settle(err);
    });
    upRes.once("close", () => {
      if (upstreamEnded) return;
      r.destroy();
      settle(new Error("kube-apiserver closed the response before its end"));
    });
    upRes.pipe(sink);
  });
  upReq.onError((err) => {
    if (done || client.signal.aborted) return;
    clearTimeout(timer);
    if (r.headersSent) {
      r.destroy();
      return;
    }
    ctx.metrics.errors.inc({ stage: "upstream-connect" });
    ctx.log.warn("kube-apiserver could not be reached", { error: err, method, path: pathWithoutQuery(path) });
    sendError(r, unreachableUpstreamResponse(err));
    finish(502, audit);
  });
  // Without this the head waits for the first body chunk, and a client that sends its body late
  // (or never ends an empty one) would stall before kube-apiserver even sees the request.
  upReq.flushHeaders();
  // pipe, not pipeline: a failing upstream request must not destroy the client's request, whose
  // connection still has to carry the 502.
  exchange.body.pipe(upReq.body);
}

/** One request to kube-apiserver, over HTTP/2 or HTTP/1.1 alike. */
interface UpstreamCall {
  /** Where the client's request body goes. */
  body: NodeJS.WritableStream;
  /** The response head; `body` is kube-apiserver's response body. */
  onResponse(listener: (code: number, headers: NodeJS.Dict<string[]>, body: Readable) => void): void;
  onError(listener: (err: Error) => void): void;
  /** Sends the head now instead of with the first body chunk. */
  flushHeaders(): void;
  destroy(): void;
}

function http1Call(
  ctx: ForwardContext,
  method: string,
  path: string,
  headers: OutgoingHttpHeaders,
): UpstreamCall {
  const { upstream } = ctx;
  const upReq: ClientRequestToUpstream = httpsRequest({
    agent: ctx.agent,
    host: upstream.host,
    port: upstream.port,
    method,
    path,
    headers,
  });
  return {
    body: upReq,
    onResponse: (listener) =>
      upReq.on("response", (upRes) => listener(upRes.statusCode ?? 502, upRes.headersDistinct, upRes)),
    onError: (listener) => upReq.on("error", listener),
    flushHeaders: () => upReq.flushHeaders(),
    destroy: () => upReq.destroy(),
  };
}

function http2Call(
  session: ClientHttp2Session,
  release: () => void,
  method: string,
  path: string,
  headers: OutgoingHttpHeaders,
): UpstreamCall {
  // HTTP/2 framing could carry what HTTP/1.1 cannot (a newline in a value); the same checks for both.
  for (const [name, value] of Object.entries(headers)) {
    validateHeaderName(name);
    for (const v of Array.isArray(value) ? value : [value]) validateHeaderValue(name, String(v));
  }
  const stream = session.request({ ...headers, ":method": method, ":path": path });
  stream.once("close", release);
  return {
    body: stream,
    onResponse: (listener) =>
      stream.once("response", (head) => {
        const distinct: NodeJS.Dict<string[]> = {};
        for (const [name, value] of Object.entries(head)) {
          if (name.startsWith(":") || value === undefined) continue;
          distinct[name] = Array.isArray(value) ? value : [String(value)];
        }
        listener(Number(head[":status"] ?? 502), distinct, stream);
      }),
    onError: (listener) => stream.on("error", listener),
    // HTTP/2 sends the head at once.
    flushHeaders: () => {},
    destroy: () => {
      if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
    },
  };
}
