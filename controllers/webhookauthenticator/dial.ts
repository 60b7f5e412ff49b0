// The WebhookConnectionValid probe: a TLS handshake with host:port that trusts the CA bundle
// (ptls.Default: TLS 1.2 or later), then closes. Its errors read like Go's crypto/tls and net
// errors, because upstream puts them verbatim into the condition message and users compare
// conditions across implementations.
import type { X509Certificate } from "node:crypto";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { rootCertificates, type TLSSocket, connect as tlsConnect } from "node:tls";
import { rfc3339 } from "../runtime/clock.ts";
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

const joinHostPort = (host: string, port: number | string) =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;

// Go's syscall.Errno strings for what connect(2) reports.
const CONNECT_ERRNO: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  EHOSTUNREACH: "no route to host",
  ENETUNREACH: "network is unreachable",
  ETIMEDOUT: "connection timed out",
  EADDRNOTAVAIL: "cannot assign requested address",
  ECONNRESET: "connection reset by peer",
};

// Go's tls alert descriptions, where they differ from OpenSSL's names.
const ALERTS: Record<string, string> = {
  PROTOCOL_VERSION: "protocol version not supported",
  UNKNOWN_CA: "unknown certificate authority",
  DECRYPT_ERROR: "error decrypting message",
  BAD_RECORD_MAC: "bad record MAC",
  UNRECOGNIZED_NAME: "unrecognized name",
  NO_APPLICATION_PROTOCOL: "no application protocol",
};

interface NodeError extends Error {
  code?: string;
  syscall?: string;
  address?: string;
  port?: number;
  hostname?: string;
}

/** The message Go's net.Dial gives for a failure to connect. */
function connectError(err: NodeError, target: HostPort): string {
  if (err.syscall === "getaddrinfo") {
    const why = err.code === "ENOTFOUND" ? "no such host" : (err.code ?? err.message);
    return `dial tcp: lookup ${target.host}: ${why}`;
  }
  const address = joinHostPort(err.address ?? target.host, err.port ?? target.port);
  const errno = (err.code && CONNECT_ERRNO[err.code]) ?? err.message;
  return `dial tcp ${address}: connect: ${errno}`;
}

/** The message Go's tls.Conn.Handshake gives for a failure after the TCP connection was made. */
function handshakeError(err: NodeError, socket: Socket): string {
  const code = err.code ?? "";
  if (code === "ECONNRESET" && /disconnected before secure TLS connection/.test(err.message)) return "EOF";
  if (code === "ECONNRESET" || code === "EPIPE") {
    const local = joinHostPort(socket.localAddress ?? "", socket.localPort ?? "");
    const remote = joinHostPort(socket.remoteAddress ?? "", socket.remotePort ?? "");
    const op = code === "EPIPE" ? "write" : "read";
    return `${op} tcp ${local}->${remote}: ${op}: ${code === "EPIPE" ? "broken pipe" : "connection reset by peer"}`;
  }
  if (
    /^ERR_SSL_(WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|RECORD_LAYER_FAILURE)$/.test(code)
  ) {
    return "tls: first record does not look like a TLS handshake";
  }
  const alert = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z_]+)$/.exec(code)?.[1];
  if (alert) return `remote error: tls: ${ALERTS[alert] ?? alert.toLowerCase().replaceAll("_", " ")}`;
  // OpenSSL's "<lib>:error:<code>:SSL routines:<function>:<reason>:<file>:<line>:" → the reason.
  const reason = /SSL routines:[^:]*:([^:]+):/.exec(err.message)?.[1];
  return reason ? `tls: ${reason}` : err.message;
}

// Go's verifier says "signed by unknown authority" whenever no chain to a root was found.
const UNKNOWN_AUTHORITY = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
]);

function chainError(code: string): string {
  if (UNKNOWN_AUTHORITY.has(code)) return "x509: certificate signed by unknown authority";
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return "x509: certificate has expired or is not yet valid";
  }
  if (code === "INVALID_PURPOSE") return "x509: certificate specifies an incompatible key usage";
  return `x509: ${code.toLowerCase().replaceAll("_", " ")}`;
}

/** Go's net.IP.String(): IPv4 dotted, IPv6 compressed lower case. */
function canonicalIP(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const compressed = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(compressed);
  if (!mapped) return compressed;
  const [hi, lo] = [Number.parseInt(mapped[1] ?? "0", 16), Number.parseInt(mapped[2] ?? "0", 16)];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

interface SANs {
  present: boolean;
  dns: string[];
  ips: string[];
}

function subjectAltNames(cert: X509Certificate): SANs {
  const text = cert.subjectAltName;
  const sans: SANs = { present: text !== undefined, dns: [], ips: [] };
  for (const [, kind, raw = ""] of (text ?? "").matchAll(/(DNS|IP Address):("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw.trim();
    if (kind === "DNS") sans.dns.push(value);
    else sans.ips.push(canonicalIP(value));
  }
  return sans;
}

/** Go's matchHostnames: label by label, a leading "*" matches one label, no trailing dots. */
function matchHostnames(pattern: string, host: string): boolean {
  const p = pattern.replace(/\.$/, "").toLowerCase();
  const h = host.replace(/\.$/, "").toLowerCase();
  if (p === "" || h === "") return false;
  if (p === h) return true;
  const pl = p.split(".");
  const hl = h.split(".");
  return pl.length === hl.length && pl.every((part, i) => (i === 0 && part === "*") || part === hl[i]);
}

/** Go's Certificate.VerifyHostname and HostnameError messages. */
export function verifyHostname(cert: X509Certificate, host: string): string | undefined {
  const sans = subjectAltNames(cert);
  const candidateIP = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const ip = isIP(candidateIP) !== 0;
  const wanted = ip ? canonicalIP(candidateIP) : host;
  if (ip ? sans.ips.includes(wanted) : sans.dns.some((p) => matchHostnames(p, host))) return undefined;
  const commonName = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? "";
  if (!sans.present && matchHostnames(commonName, wanted)) {
    return "x509: certificate relies on legacy Common Name field, use SANs instead";
  }
  if (ip && sans.ips.length === 0) {
    return `x509: cannot validate certificate for ${wanted} because it doesn't contain any IP SANs`;
  }
  const valid = (ip ? sans.ips : sans.dns).join(", ");
  if (valid === "") return `x509: certificate is not valid for any names, but wanted to match ${wanted}`;
  return `x509: certificate is valid for ${valid}, not ${wanted}`;
}

/** Go's order: validity period, then the host name, then the chain. */
function verify(socket: TLSSocket, host: string, nowMs: number): string | undefined {
  const leaf = socket.getPeerX509Certificate();
  if (!leaf) return "tls: server did not send a certificate";
  const notBefore = leaf.validFromDate.getTime();
  const notAfter = leaf.validToDate.getTime();
  let problem: string | undefined;
  if (nowMs < notBefore) {
    problem = `x509: certificate has expired or is not yet valid: current time ${rfc3339(nowMs)} is before ${rfc3339(notBefore)}`;
  } else if (nowMs > notAfter) {
    problem = `x509: certificate has expired or is not yet valid: current time ${rfc3339(nowMs)} is after ${rfc3339(notAfter)}`;
  }
  problem ??= verifyHostname(leaf, host);
  const chain = socket.authorizationError;
  if (!problem && chain) problem = chainError(typeof chain === "string" ? chain : chain.message);
  return problem && `tls: failed to verify certificate: ${problem}`;
}

/** The real probe: upstream's ptls Dialer.IsReachableAndTLSValidationSucceeds. */
export const tlsDial: Dialer = (target, { caPEM, signal, timeoutMs = defaultDialTimeoutMs }) =>
  new Promise<void>((resolve, reject) => {
    let tls: TLSSocket | undefined;
    let settled = false;
    const tcp = netConnect({ host: target.host, port: target.port });
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
    tcp.on("error", (err: NodeError) => finish(tls ? handshakeError(err, tcp) : connectError(err, target)));
    tcp.once("connect", () => {
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
    });
  });
