// HTTP/1.1 Upgrade requests (exec, attach, port-forward; `POST` + `SPDY/3.1` as well as
// `GET` + `websocket`): ask the decider, send the request to kube-apiserver on a connection of its
// own, and on `101 Switching Protocols` pipe both sockets byte for byte. Any other answer is relayed
// and then both connections are closed: a failed upgrade must never leave a connection to
// kube-apiserver that the client could keep talking on with the proxy's credentials
// (CVE-2018-1002105).
//
// Node's HTTP client does the upstream half rather than a hand-written parser on a raw TLS socket:
// it emits `upgrade` only for a 101, and parses a refusal's body (content-length or chunked)
// properly, so the relay stays a plain, bounded copy.
import { type ClientRequest, type IncomingMessage, STATUS_CODES } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import type { Logger } from "../observability/logger.ts";
import { auditFields, type Peer, type UpstreamTarget } from "./forward.ts";
import {
  decideFailedResponse,
  downstreamHeaders,
  type ErrorResponse,
  incomingHeaders,
  invalidUpstreamRequestResponse,
  pathWithoutQuery,
  refusalResponse,
  SECURITY_HEADERS,
  serializeHead,
  statusResponse,
  unreachableUpstreamResponse,
  upstreamHeaders,
} from "./headers.ts";
import { type ProxyMetrics, upgradeProtocol } from "./servermetrics.ts";
import type { Decision, IncomingRequest, RequestDecider } from "./types.ts";
import { keepWebSocketAlive } from "./wskeepalive.ts";

export interface UpgradeContext {
  decide: RequestDecider;
  upstream: UpstreamTarget;
  log: Logger;
  metrics: ProxyMetrics;
  /** 0: an idle upgraded stream stays open for as long as both ends keep it. */
  upgradeIdleTimeoutMs: number;
  /** WebSocket pings towards the client on a quiet upgraded connection; 0 sends none. */
  websocketPingIntervalMs: number;
  /** 0: no TCP keepalive on the connection to kube-apiserver. */
  tcpKeepAliveMs: number;
  /** Registers an upstream socket so that stopping the proxy can close it. */
  track(socket: Duplex): void;
}

/** A refusal's body is a Status of a few hundred bytes; this only bounds what we hold. */
const MAX_REFUSAL_BODY = 1024 * 1024;
/** How long a closing side may take to flush before it is cut. */
const CLOSE_GRACE_MS = 5_000;

function writeErrorAndClose(socket: Duplex, error: ErrorResponse): void {
  if (socket.destroyed) return;
  const head = serializeHead(`HTTP/1.1 ${error.code} ${STATUS_CODES[error.code] ?? ""}`, {
    ...SECURITY_HEADERS,
    "content-type": error.contentType,
    "content-length": String(Buffer.byteLength(error.body)),
    connection: "close",
  });
  socket.end(head + error.body, () => socket.destroy());
}

/** Serves one upgrade request; never throws. */
export async function forwardUpgrade(
  ctx: UpgradeContext,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  peer: Peer,
): Promise<void> {
  const started = performance.now();
  const method = req.method ?? "GET";
  const path = req.url ?? "/";
  const protocol = upgradeProtocol(req.headers.upgrade);
  const client = new AbortController();
  socket.once("close", () => client.abort());
  socket.on("error", (err) => ctx.log.debug("upgrade client connection failed", { error: err }));
  const incoming: IncomingRequest = {
    method,
    path,
    headers: incomingHeaders(req.rawHeaders),
    verifiedClientCertificate: peer.verifiedClientCertificate,
    remoteAddress: peer.remoteAddress,
    upgrade: true,
  };
  const finish = (code: number, outcome: string, audit: Record<string, unknown>) => {
    ctx.metrics.upgrades.inc({ protocol, outcome });
    ctx.log.info("audit", {
      ...audit,
      method,
      path: pathWithoutQuery(path),
      upgrade: protocol,
      code,
      latencyMs: Math.round(performance.now() - started),
    });
  };

  // Only the protocols kubectl speaks reach kube-apiserver (kubernetes#72112 locked its own
  // proxying down the same way after CVE-2018-1002105); anything else never gets a connection.
  if (protocol === "other") {
    writeErrorAndClose(
      socket,
      statusResponse(
        400,
        "BadRequest",
        "unsupported upgrade protocol: only SPDY/3.1 and websocket are proxied",
      ),
    );
    finish(400, "refused", { refused: "BadRequest" });
    return;
  }

  let decision: Decision;
  try {
    decision = await ctx.decide(incoming, client.signal);
  } catch (err) {
    if (client.signal.aborted) return;
    ctx.metrics.errors.inc({ stage: "decide" });
    ctx.log.error("deciding on an upgrade request failed", {
      error: err,
      method,
      path: pathWithoutQuery(path),
    });
    writeErrorAndClose(socket, decideFailedResponse);
    finish(500, "error", {});
    return;
  }
  if (client.signal.aborted) return;
  if (decision.action === "refuse") {
    writeErrorAndClose(socket, refusalResponse(decision));
    finish(decision.code, "refused", { refused: decision.reason });
    return;
  }

  const audit = auditFields(decision.audit);
  const { upstream } = ctx;
  const headers = upstreamHeaders(incoming.headers, decision, peer.remoteAddress);
  headers.connection = "Upgrade";
  headers.upgrade = req.headers.upgrade ?? "";
  const sentAt = performance.now();
  let upReq: ClientRequest;
  try {
    upReq = httpsRequest({
      // A connection of its own, never pooled: after the upgrade it belongs to this client alone,
      // and after a refusal it is closed.
      agent: false,
      host: upstream.host,
      port: upstream.port,
      servername: upstream.servername,
      ca: upstream.caPEM,
      // No ALPN offer, like kubectl's own upgrade connections: the server can only answer HTTP/1.1.
      minVersion: "TLSv1.2",
      method,
      path: upstream.basePath + path,
      headers,
    });
  } catch (err) {
    // Node refuses header values it cannot send (a decider's extra value with a newline, say).
    ctx.metrics.errors.inc({ stage: "upstream-request" });
    ctx.log.error("the upgrade request for kube-apiserver could not be built", { error: err });
    writeErrorAndClose(socket, invalidUpstreamRequestResponse);
    finish(500, "error", audit);
    return;
  }
  upReq.on("socket", (s: Socket) => {
    ctx.track(s);
    if (ctx.tcpKeepAliveMs > 0) s.setKeepAlive(true, ctx.tcpKeepAliveMs);
  });
  socket.once("close", () => upReq.destroy());

  upReq.on("upgrade", (upRes: IncomingMessage, upSocket: Socket, upHead: Buffer) => {
    ctx.metrics.upstreamLatency.observe({ kind: "upgrade" }, (performance.now() - sentAt) / 1000);
    if (socket.destroyed) {
      upSocket.destroy();
      return;
    }
    // kube-apiserver's 101 goes to the client as sent, like Go's UpgradeAwareHandler relays it.
    socket.write(serializeHead(`HTTP/1.1 101 ${upRes.statusMessage ?? ""}`, upRes.rawHeaders));
    if (upHead.length > 0) socket.write(upHead);
    if (head.length > 0) upSocket.write(head);
    splice(ctx, socket, upSocket);
    if (protocol === "websocket") {
      keepWebSocketAlive(socket, upSocket, {
        intervalMs: ctx.websocketPingIntervalMs,
        alreadySent: upHead,
        onPing: () => ctx.metrics.websocketPings.inc(),
      });
    }
    finish(101, "upgraded", audit);
  });

  upReq.on("response", (upRes: IncomingMessage) => {
    ctx.metrics.upstreamLatency.observe({ kind: "upgrade" }, (performance.now() - sentAt) / 1000);
    const code = upRes.statusCode ?? 502;
    const chunks: Buffer[] = [];
    let size = 0;
    upRes.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REFUSAL_BODY) {
        ctx.metrics.errors.inc({ stage: "upgrade-response" });
        upReq.destroy();
        socket.destroy();
        return;
      }
      chunks.push(chunk);
    });
    upRes.on("end", () => {
      upReq.destroy();
      if (socket.destroyed) return;
      const body = Buffer.concat(chunks);
      const relayed = downstreamHeaders(upRes.headersDistinct);
      relayed["content-length"] = String(body.length);
      relayed.connection = "close";
      socket.write(serializeHead(`HTTP/1.1 ${code} ${upRes.statusMessage ?? ""}`, relayed));
      socket.end(body, () => socket.destroy());
      finish(code, "rejected", audit);
    });
    upRes.on("error", () => {
      upReq.destroy();
      socket.destroy();
    });
  });

  upReq.on("error", (err) => {
    if (client.signal.aborted || socket.destroyed) return;
    ctx.metrics.errors.inc({ stage: "upgrade-connect" });
    ctx.log.warn("kube-apiserver could not be reached for an upgrade", {
      error: err,
      method,
      path: pathWithoutQuery(path),
    });
    writeErrorAndClose(socket, unreachableUpstreamResponse(err));
    finish(502, "error", audit);
  });
  upReq.end();
}

/**
 * Pipes the two sockets both ways until either closes. When one side closes, the other is ended so
 * that bytes already in flight still arrive, and cut if it does not finish in time.
 */
function splice(ctx: UpgradeContext, client: Duplex, upstream: Socket): void {
  ctx.metrics.openUpgrades.inc();
  let closed = false;
  const close = (first: Duplex, second: Duplex) => {
    if (!closed) {
      closed = true;
      ctx.metrics.openUpgrades.dec();
    }
    if (!second.destroyed) {
      second.end();
      setTimeout(() => second.destroy(), CLOSE_GRACE_MS).unref();
    }
    first.destroy();
  };
  const cut = () => {
    client.destroy();
    upstream.destroy();
  };
  client.once("close", () => close(client, upstream));
  upstream.once("close", () => close(upstream, client));
  client.on("error", cut);
  upstream.on("error", (err) => {
    ctx.metrics.errors.inc({ stage: "upgrade-stream" });
    ctx.log.debug("upgraded connection to kube-apiserver failed", { error: err });
    cut();
  });
  const idle = ctx.upgradeIdleTimeoutMs;
  for (const s of [client, upstream] as Socket[]) {
    // Also clears whatever request timeout the HTTP server had put on the client's socket.
    s.setTimeout(idle);
    if (idle > 0) {
      s.on("timeout", () => {
        ctx.metrics.errors.inc({ stage: "upgrade-idle" });
        cut();
      });
    }
  }
  client.pipe(upstream);
  upstream.pipe(client);
}
