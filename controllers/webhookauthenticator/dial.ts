// The WebhookConnectionValid probe: a TLS handshake with host:port that trusts the CA bundle
// (ptls.Default: TLS 1.2 or later), then closes. Its errors read like Go's crypto/tls and net
// errors (worded by authenticators/goerrors.ts), because upstream puts them verbatim into the
// condition message.
import { isIP, connect as netConnect } from "node:net";
import { rootCertificates, type TLSSocket, connect as tlsConnect } from "node:tls";
import {
  chainError,
  dialError,
  handshakeError,
  joinHostPort,
  type NodeError,
  validityError,
  verifyFailure,
  verifyHostname,
} from "../../authenticators/goerrors.ts";
import { guardedLookup, refusedHost } from "../../authenticators/outbound.ts";
import { openTunnel, proxyFor } from "../../authenticators/proxy.ts";
import type { HostPort } from "./endpoint.ts";

export interface DialOptions {
  caPEM: string | undefined;
  signal: AbortSignal;
  /** Upstream's 30 s when absent. */
  timeoutMs?: number;
}

/** Resolves when a verified TLS connection could be made; rejects with a Go-style message. */
export type Dialer = (target: HostPort, options: DialOptions) => Promise<void>;

export const defaultDialTimeoutMs = 30_000;

/** Go's order: validity period, then the host name, then the chain. */
function verify(socket: TLSSocket, host: string, nowMs: number): string | undefined {
  const leaf = socket.getPeerX509Certificate();
  if (!leaf) return "tls: server did not send a certificate";
  let problem = validityError(leaf, nowMs) ?? verifyHostname(leaf, host);
  const chain = socket.authorizationError;
  if (!problem && chain) {
    const code = typeof chain === "string" ? chain : chain.message;
    // Codes Go has no counterpart for keep OpenSSL's name, readably.
    problem = chainError(code) ?? `x509: ${code.toLowerCase().replaceAll("_", " ")}`;
  }
  return problem && verifyFailure(problem);
}

/** The real probe: upstream's ptls Dialer.IsReachableAndTLSValidationSucceeds. */
export const tlsDial: Dialer = (target, { caPEM, signal, timeoutMs = defaultDialTimeoutMs }) =>
  new Promise<void>((resolve, reject) => {
    let tls: TLSSocket | undefined;
    let settled = false;
    const refused = refusedHost(target.host);
    if (refused) {
      reject(new Error(`dial tcp ${joinHostPort(target.host, target.port)}: ${refused}`));
      return;
    }
    let proxy: URL | undefined;
    try {
      proxy = proxyFor(target.host, target.port);
    } catch (err) {
      reject(err);
      return;
    }
    // Behind HTTPS_PROXY the probe goes the way TokenReviews will: through a CONNECT tunnel.
    const tunnel = proxy && openTunnel(proxy, target.host, target.port);
    const tcp = tunnel
      ? tunnel.socket
      : netConnect({ host: target.host, port: target.port, lookup: guardedLookup });
    const finish = (message?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      tls?.destroy();
      tcp.destroy();
      if (message === undefined) resolve();
      else reject(new Error(message));
    };
    // Go's messages: a deadline during connect(2) is an i/o timeout, during the handshake the
    // context's own error.
    const timer = setTimeout(
      () =>
        finish(
          tls
            ? "context deadline exceeded"
            : `dial tcp ${joinHostPort(target.host, target.port)}: i/o timeout`,
        ),
      timeoutMs,
    );
    const onAbort = () => finish("context canceled");
    if (signal.aborted) return finish("context canceled");
    signal.addEventListener("abort", onAbort, { once: true });
    tcp.on("error", (err: NodeError) => {
      if (tls) finish(handshakeError(err, tcp));
      else if (proxy) {
        finish(
          `proxyconnect tcp: ${dialError(err, { host: proxy.hostname, port: Number(proxy.port || 80) })}`,
        );
      } else finish(dialError(err, target));
    });
    const startTLS = () => {
      tls = tlsConnect({
        socket: tcp,
        // SNI carries names only; Go sends none for an IP address either.
        ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
        ca: caPEM ?? [...rootCertificates],
        minVersion: "TLSv1.2",
        ALPNProtocols: ["h2", "http/1.1"],
        // Verified below, in Go's order and with Go's messages.
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      });
      tls.once("secureConnect", () => {
        if (tls) finish(verify(tls, target.host, Date.now()));
      });
      tls.once("error", (err: NodeError) => finish(handshakeError(err, tcp)));
    };
    if (tunnel) {
      tunnel.ready.then(startTLS, (err: Error) => finish(`proxyconnect tcp: ${err.message}`));
    } else tcp.once("connect", startTLS);
  });
