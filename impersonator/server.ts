/**
 * The impersonation proxy's transport: one TLS port that speaks HTTP/2 (what kubectl negotiates for
 * ordinary requests) and HTTP/1.1 (what it opens, without ALPN, for exec, attach and port-forward
 * upgrades), asks a {@link RequestDecider} about every request, and forwards the accepted ones to
 * kube-apiserver with the decider's headers in place of the client's credentials.
 *
 * ```ts
 * const proxy = await startImpersonationProxy({
 *   port: 8444,
 *   tls: holder,                                  // ProxyTLSSource: serving cert + client CAs
 *   decide,                                       // RequestDecider
 *   upstream: { url: "https://10.96.0.1:443", caPEM },
 *   log, metrics,
 * });
 * proxy.port;          // the bound port (useful with port 0)
 * await proxy.close(); // listener, sessions, sockets, upgraded pairs, upstream connections
 * ```
 * or, for the impersonator-config reconciler, `new ImpersonationProxyRunner(options)`, a
 * {@link ProxyRunner} whose `start`/`stop` are idempotent.
 *
 * - TLS: until the source has material the port listens but every handshake fails (there is no
 *   certificate to offer), so a reconciler may start the runner before the certificate exists.
 *   Each change is applied with `setSecureContext`: new connections get it, open ones keep theirs.
 *   A client certificate counts only when it verified against the source's client CAs (never the
 *   system roots); it is then handed to the decider, otherwise the decider sees none.
 * - Normal requests go to kube-apiserver as streams on HTTP/2 sessions of at most
 *   kube-apiserver's `--http2-max-streams-per-connection` each (upstream.ts), or over pooled
 *   HTTP/1.1 keep-alive connections to an upstream without HTTP/2 (see {@link forwardRequest});
 *   bodies stream both ways unbuffered. HTTP/2 clients' streams are served raw, without Node's
 *   compatibility layer (exchange.ts).
 * - Upgrades get a connection to kube-apiserver of their own (see {@link forwardUpgrade}).
 * - Keepalive: HTTP/2 PINGs on every client session each `pingIntervalMs`, and WebSocket
 *   pings on upgraded WebSocket connections quiet for that long (see wskeepalive.ts), so that load
 *   balancers in front see traffic on a session whose only stream is a quiet watch; TCP keepalive
 *   on client and upstream sockets; no idle limit on upgraded streams unless
 *   `upgradeIdleTimeoutMs` is set.
 */
import type { X509Certificate } from "node:crypto";
import type { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  createSecureServer,
  type Http2SecureServer,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from "node:http2";
import { Agent } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { SecureContextOptions, TLSSocket } from "node:tls";
import { defaultProfileCiphers } from "../certs/ciphers.ts";
import { defaultHandshakeTimeoutMs, InFlightLimit } from "../kube/inflight.ts";
import { discardLogger, type Logger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { type ClientExchange, messageExchange, streamExchange } from "./exchange.ts";
import { forwardRequest, type Peer, type UpstreamTarget } from "./forward.ts";
import { clientAddress, isLongRunning } from "./headers.ts";
import { parseRequestInfo } from "./requestinfo.ts";
import { proxyMetrics } from "./servermetrics.ts";
import type { ProxyRunner, ProxyTLS, ProxyTLSSource, RequestDecider } from "./types.ts";
import { forwardUpgrade } from "./upgrade.ts";
import { UpstreamSessions } from "./upstream.ts";

export interface ImpersonationProxyOptions {
  /** 0 picks a free port; the bound one is on the result. */
  port: number;
  /** Default `0.0.0.0`. */
  host?: string;
  tls: ProxyTLSSource;
  decide: RequestDecider;
  upstream: {
    /** kube-apiserver, e.g. `https://10.96.0.1:443`; a path, if any, prefixes every request. */
    url: string;
    /** The CA(s) kube-apiserver's serving certificate chains to; default the system's roots. */
    caPEM?: string;
    /** TLS server name to ask for and verify; default the URL's host name. */
    servername?: string;
  };
  log?: Logger;
  metrics?: Metrics;
  /** Default 30 s; 0 sends none. */
  pingIntervalMs?: number;
  /** Default 0: an idle exec or port-forward stays open however long it is idle. */
  upgradeIdleTimeoutMs?: number;
  /** TCP keepalive initial delay on both sockets of every connection; default 30 s; 0 turns it off. */
  tcpKeepAliveMs?: number;
  /** Limit for requests that are not long-running (watch, exec, logs, ...); default none. */
  requestTimeoutMs?: number;
  /** Requests that are not long-running served at once; default 400, kube-apiserver's. */
  maxInFlight?: number;
  handshakeTimeoutMs?: number;
  /** Upstream's `tls.onedottwo.allowedCiphers`, validated (certs/ciphers.ts); default all of the profile's. */
  allowedCiphers?: readonly string[];
}

export interface ImpersonationProxyServer {
  readonly port: number;
  readonly server: Http2SecureServer;
  /** Closes the listener and every connection; resolves when the listener has closed. */
  close(): Promise<void>;
}

export const defaultPingIntervalMs = 30_000;
export const defaultTCPKeepAliveMs = 30_000;
export const defaultMaxInFlight = 400;

// Every long-running target names one of these words, or hides it behind a percent escape; most
// requests name none and skip parsing the target here (the decider parses it again).
const mayBeLongRunning = /watch|proxy|attach|exec|log|portforward|%/i;

// Watches and streams are exempt, as from kube-apiserver's max-in-flight filter: they are
// long-lived by design and carry no request body to buffer.
function longRunningTarget(method: string, target: string): boolean {
  if (!mayBeLongRunning.test(target)) return false;
  try {
    const info = parseRequestInfo(method, target);
    return isLongRunning(
      info.verb,
      info.subresource ? `${info.resource}/${info.subresource}` : info.resource,
    );
  } catch {
    return false;
  }
}

// Upstream Pinniped's "Default" profile: TLS 1.3, and TLS 1.2 with its ECDHE AEAD suites, as
// many of them as `tls.onedottwo.allowedCiphers` allows.
function secureContextOptions(tls: ProxyTLS | undefined, ciphers: string): SecureContextOptions {
  return {
    minVersion: "TLSv1.2",
    ciphers,
    // Always an array, even empty: without `ca` Node would verify client certificates against
    // its bundled public roots.
    ca: tls?.clientCAPEMs ?? [],
    ...(tls ? { cert: tls.certPEM, key: tls.keyPEM } : {}),
  };
}

function upstreamTarget(upstream: ImpersonationProxyOptions["upstream"]): UpstreamTarget {
  const url = new URL(upstream.url);
  if (url.protocol !== "https:") throw new Error(`upstream URL must be https, not ${url.protocol}`);
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: Number(url.port || 443),
    basePath: url.pathname.replace(/\/+$/, ""),
    servername: upstream.servername,
    caPEM: upstream.caPEM,
  };
}

// A connection's certificate never changes, and a client sends many requests over one.
const verified = new WeakMap<TLSSocket, X509Certificate | undefined>();

function peerOf(socket: TLSSocket | undefined): Peer {
  if (!socket) return { verifiedClientCertificate: undefined, remoteAddress: "" };
  let cert = verified.get(socket);
  if (!verified.has(socket)) {
    cert = socket.authorized ? socket.getPeerX509Certificate() : undefined;
    verified.set(socket, cert);
  }
  return { verifiedClientCertificate: cert, remoteAddress: clientAddress(socket.remoteAddress) };
}

export async function startImpersonationProxy(
  options: ImpersonationProxyOptions,
): Promise<ImpersonationProxyServer> {
  const log = (options.log ?? discardLogger()).child({ component: "impersonation-proxy" });
  const metrics = proxyMetrics(options.metrics ?? new Metrics());
  const upstream = upstreamTarget(options.upstream);
  const ciphers = defaultProfileCiphers(options.allowedCiphers);
  const pingIntervalMs = options.pingIntervalMs ?? defaultPingIntervalMs;
  const tcpKeepAliveMs = options.tcpKeepAliveMs ?? defaultTCPKeepAliveMs;

  const agent = new Agent({
    keepAlive: true,
    keepAliveMsecs: tcpKeepAliveMs > 0 ? tcpKeepAliveMs : defaultTCPKeepAliveMs,
    ca: upstream.caPEM,
    minVersion: "TLSv1.2",
    ...(upstream.servername ? { servername: upstream.servername } : {}),
  });
  const upstreamSessions = new UpstreamSessions(
    upstream,
    tcpKeepAliveMs > 0 ? tcpKeepAliveMs : defaultTCPKeepAliveMs,
    log,
  );
  const sockets = new Set<Duplex>();
  const sessions = new Set<ServerHttp2Session>();
  const track = (socket: Duplex) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  const server = createSecureServer({
    ...secureContextOptions(options.tls.get(), ciphers),
    allowHTTP1: true,
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: options.handshakeTimeoutMs ?? defaultHandshakeTimeoutMs,
  });
  const inFlight = new InFlightLimit(options.maxInFlight ?? defaultMaxInFlight);
  const forwardContext = {
    decide: options.decide,
    upstream,
    sessions: upstreamSessions,
    agent,
    log,
    metrics,
    requestTimeoutMs: options.requestTimeoutMs ?? 0,
  };
  const upgradeContext = {
    decide: options.decide,
    upstream,
    log,
    metrics,
    upgradeIdleTimeoutMs: options.upgradeIdleTimeoutMs ?? 0,
    websocketPingIntervalMs: pingIntervalMs,
    tcpKeepAliveMs,
    track,
  };
  const serve = (exchange: ClientExchange, socket: TLSSocket | undefined) => {
    if (!longRunningTarget(exchange.method, exchange.path)) {
      const release = inFlight.tryAcquire();
      if (!release) {
        metrics.requests.inc({ method: exchange.method, code: "429" });
        exchange.tooManyRequests();
        return;
      }
      exchange.response.on("close", release);
    }
    void forwardRequest(forwardContext, exchange, peerOf(socket));
  };
  // HTTP/1.1 requests (allowHTTP1) arrive here. Node's compatibility layer serves HTTP/2 streams
  // as 'request' events too once a 'request' listener exists; its listener is taken off again
  // so that HTTP/2 streams are served raw, below, and never twice.
  (server as unknown as EventEmitter).on("request", (req: IncomingMessage, res: ServerResponse) => {
    if ("stream" in req) return; // only if Node ever routed HTTP/2 here despite the above
    serve(messageExchange(req, res), req.socket as TLSSocket);
  });
  server.removeAllListeners("stream");
  // `rawHeaders`, the event's fourth argument, is missing from @types/node's signature.
  (server as unknown as EventEmitter).on(
    "stream",
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      // Without a listener a stream's error (a client's reset, say) would reach the session.
      stream.on("error", (err) => log.debug("HTTP/2 stream failed", { error: err }));
      serve(streamExchange(stream, headers, rawHeaders), stream.session?.socket as TLSSocket | undefined);
    },
  );
  (server as unknown as EventEmitter).on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void forwardUpgrade(upgradeContext, req, socket, head, peerOf(socket as TLSSocket));
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    track(socket);
    socket.setNoDelay(true);
    if (tcpKeepAliveMs > 0) socket.setKeepAlive(true, tcpKeepAliveMs);
  });
  server.on("session", (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    session.on("error", (err) => log.debug("HTTP/2 session failed", { error: err }));
    if (pingIntervalMs <= 0) return;
    const timer = setInterval(() => {
      if (session.closed || session.destroyed) return;
      const sent = session.ping((err) => {
        if (err) log.debug("HTTP/2 PING failed", { error: err });
      });
      // Refused once maxOutstandingPings are unanswered: the peer is gone without a FIN.
      if (!sent) {
        log.debug("HTTP/2 client stopped answering PINGs");
        session.destroy();
      }
    }, pingIntervalMs);
    timer.unref();
    session.once("close", () => clearInterval(timer));
  });
  server.on("tlsClientError", (err) => {
    metrics.errors.inc({ stage: "tls" });
    log.debug("TLS handshake failed", { error: err });
  });

  const unsubscribe = options.tls.onChange((tls) => {
    server.setSecureContext(secureContextOptions(tls, ciphers));
    log.info("serving certificate or client CAs changed", { present: tls !== undefined });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.host ?? "0.0.0.0", () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    unsubscribe();
    agent.destroy();
    upstreamSessions.close();
    throw err;
  }
  const { port } = server.address() as AddressInfo;
  log.info("listening", { host: options.host ?? "0.0.0.0", port, tls: options.tls.get() !== undefined });

  let closing: Promise<void> | undefined;
  return {
    port,
    server,
    close() {
      closing ??= new Promise<void>((resolve) => {
        unsubscribe();
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
        agent.destroy();
        upstreamSessions.close();
        log.info("stopped", { port });
      });
      return closing;
    },
  };
}

/** Runs the proxy for the impersonator-config reconciler: start and stop are idempotent. */
export class ImpersonationProxyRunner implements ProxyRunner {
  readonly #options: ImpersonationProxyOptions;
  #server: ImpersonationProxyServer | undefined;
  #starting: Promise<void> | undefined;

  constructor(options: ImpersonationProxyOptions) {
    this.#options = options;
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  /** The bound port while running. */
  get port(): number | undefined {
    return this.#server?.port;
  }

  start(): Promise<void> {
    if (this.#server) return Promise.resolve();
    this.#starting ??= startImpersonationProxy(this.#options)
      .then((server) => {
        this.#server = server;
      })
      .finally(() => {
        this.#starting = undefined;
      });
    return this.#starting;
  }

  async stop(): Promise<void> {
    if (this.#starting) await this.#starting.catch(() => {});
    const server = this.#server;
    this.#server = undefined;
    await server?.close();
  }
}
