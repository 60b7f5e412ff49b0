// HTTP/2 sessions to kube-apiserver for forwarded requests. Over HTTP/1.1 every request in flight
// holds a TLS connection of its own, so each open watch cost the proxy a connection (about 85 KiB
// of RSS, mostly TLS buffers) and a file descriptor; over HTTP/2 it is a stream in a shared
// session. An upstream that does not speak HTTP/2 is reached over HTTP/1.1, as before.
import { type ClientHttp2Session, connect } from "node:http2";
import { isIP } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { Logger } from "../observability/logger.ts";

/** Where kube-apiserver is and how its certificate is checked. */
export interface UpstreamSessionTarget {
  host: string;
  port: number;
  servername: string | undefined;
  caPEM: string | undefined;
}

/** kube-apiserver's own default; a server that allows more still gets no more from one session. */
export const maxStreamsPerSession = 250;
// Go's HTTP/2 client windows are larger still (4 MiB per stream); these keep a list of a few MiB
// flowing at loopback speed while bounding what one slow client can make the proxy buffer.
const streamWindowBytes = 1 << 20;
const sessionWindowBytes = 16 << 20;
// Past this, the request goes over HTTP/1.1, whose own attempt says what is wrong.
const connectTimeoutMs = 10_000;

/**
 * Whether a failed HTTP/2 connection means "this server speaks only HTTP/1.1": Node's own TLS
 * servers refuse the ALPN offer with an alert; a server that ignores ALPN answers without it.
 */
export function meansHTTP1Only(
  err: { code?: unknown } | undefined,
  alpnProtocol: string | false | undefined,
) {
  return err?.code === "ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL" || alpnProtocol === false;
}

/**
 * The oldest session with room for one more stream, if any: filling sessions in order keeps their
 * number at what the load needs.
 */
export function pickSession<S>(
  sessions: ReadonlyMap<S, number>,
  limit: (session: S) => number,
): S | undefined {
  for (const [session, streams] of sessions) if (streams < limit(session)) return session;
  return undefined;
}

export class UpstreamSessions {
  readonly #target: UpstreamSessionTarget;
  readonly #tcpKeepAliveMs: number;
  readonly #log: Logger;
  /** Usable sessions and how many streams each has open. */
  readonly #sessions = new Map<ClientHttp2Session, number>();
  #connecting: Promise<ClientHttp2Session | undefined> | undefined;
  #http1Only = false;
  #closed = false;

  constructor(target: UpstreamSessionTarget, tcpKeepAliveMs: number, log: Logger) {
    this.#target = target;
    this.#tcpKeepAliveMs = tcpKeepAliveMs;
    this.#log = log;
  }

  /**
   * A session with room for one more stream, counted as taken until `release` is called (once the
   * stream has closed); undefined when the request should go over HTTP/1.1: the upstream speaks
   * nothing else, or no session could be made now (the HTTP/1.1 attempt then reports why).
   */
  async acquire(): Promise<{ session: ClientHttp2Session; release: () => void } | undefined> {
    if (this.#http1Only || this.#closed) return undefined;
    let session = pickSession(this.#sessions, streamLimit);
    if (!session) {
      this.#connecting ??= this.#connect().finally(() => {
        this.#connecting = undefined;
      });
      session = await this.#connecting;
      // Others waited for the same new session; past its limit, this request opens the next one.
      if (session && (this.#sessions.get(session) ?? 0) >= streamLimit(session)) return this.acquire();
    }
    if (!session || !this.#sessions.has(session)) return undefined;
    const taken = session;
    this.#sessions.set(taken, (this.#sessions.get(taken) ?? 0) + 1);
    let released = false;
    return {
      session: taken,
      release: () => {
        if (released) return;
        released = true;
        const streams = this.#sessions.get(taken);
        if (streams !== undefined) this.#sessions.set(taken, streams - 1);
      },
    };
  }

  #connect(): Promise<ClientHttp2Session | undefined> {
    const { host, port, servername, caPEM } = this.#target;
    return new Promise((resolve) => {
      const authority = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
      const session = connect(authority, {
        settings: { initialWindowSize: streamWindowBytes, enablePush: false },
        // Made here so that TCP keep-alive can be set: a session's socket cannot be touched.
        createConnection: () => {
          const socket = tlsConnect({
            host,
            port,
            ...(caPEM === undefined ? {} : { ca: caPEM }),
            servername: servername ?? (isIP(host) ? "" : host),
            minVersion: "TLSv1.2",
            ALPNProtocols: ["h2"],
          });
          if (this.#tcpKeepAliveMs > 0) socket.setKeepAlive(true, this.#tcpKeepAliveMs);
          return socket;
        },
      });
      const timer = setTimeout(
        () => fail(new Error(`no HTTP/2 session within ${connectTimeoutMs} ms`)),
        connectTimeoutMs,
      );
      const closedEarly = () => fail(new Error("the connection closed before the HTTP/2 settings"));
      const fail = (err: Error | undefined) => {
        clearTimeout(timer);
        session.off("close", closedEarly);
        session.on("error", () => {}); // whatever the dying session still reports, it is not used
        if (meansHTTP1Only(err as { code?: unknown }, session.alpnProtocol)) {
          this.#http1Only = true;
          this.#log.info("kube-apiserver does not speak HTTP/2; forwarding over HTTP/1.1");
        } else {
          this.#log.debug("HTTP/2 session to kube-apiserver failed", { error: err });
        }
        session.destroy();
        resolve(undefined);
      };
      session.once("error", fail);
      session.once("close", closedEarly);
      session.once("remoteSettings", () => {
        clearTimeout(timer);
        session.off("error", fail);
        session.off("close", closedEarly);
        if (this.#closed || session.alpnProtocol !== "h2") {
          fail(undefined);
          return;
        }
        session.setLocalWindowSize(sessionWindowBytes);
        // Streams in flight fail on their own; a session going away takes no new ones.
        session.on("error", (e) => this.#log.debug("HTTP/2 session to kube-apiserver failed", { error: e }));
        const forget = () => this.#sessions.delete(session);
        session.once("goaway", forget);
        session.once("close", forget);
        this.#sessions.set(session, 0);
        resolve(session);
      });
    });
  }

  close(): void {
    this.#closed = true;
    for (const session of this.#sessions.keys()) session.destroy();
    this.#sessions.clear();
  }
}

function streamLimit(session: ClientHttp2Session): number {
  return Math.min(session.remoteSettings.maxConcurrentStreams ?? maxStreamsPerSession, maxStreamsPerSession);
}
