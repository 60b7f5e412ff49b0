// Node's network, TLS and certificate errors worded as Go's net, crypto/tls and crypto/x509
// word them. Upstream Pinniped puts those errors verbatim into condition messages (the
// WebhookAuthenticator's connection probe, the JWTAuthenticator's discovery), and users
// compare conditions across implementations, so both reconcilers word them from here.
import type { X509Certificate } from "node:crypto";
import { isIP, type Socket } from "node:net";
import { rfc3339 } from "../kube/clock.ts";
import { HTTPSError } from "./https.ts";

/** The fields Node sets on system and OpenSSL errors. */
export interface NodeError extends Error {
  code?: string;
  syscall?: string;
  address?: string;
  port?: number;
  hostname?: string;
}

/** Go's net.JoinHostPort: IPv6 addresses in brackets. */
export const joinHostPort = (host: string, port: number | string) =>
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

/**
 * The message Go's net.Dial gives for a failed lookup or connect(2) to `target`; the address
 * Node reports, when it has one, is the one Go names.
 */
export function dialError(err: NodeError, target: { host: string; port: number }): string {
  // ENOTFOUND is only ever a resolver's answer, whichever call reported it.
  // outbound.ts's lookup refused what the name resolved to.
  if (err.code === "EREFUSEDADDRESS") return `dial tcp: lookup ${target.host}: ${err.message}`;
  if (err.syscall === "getaddrinfo" || err.code === "ENOTFOUND") {
    const why = err.code === "ENOTFOUND" ? "no such host" : (err.code ?? err.message);
    return `dial tcp: lookup ${target.host}: ${why}`;
  }
  const address = joinHostPort(err.address ?? target.host, err.port ?? target.port);
  const errno = (err.code && CONNECT_ERRNO[err.code]) ?? err.message;
  return `dial tcp ${address}: connect: ${errno}`;
}

// Go's tls alert descriptions, where they differ from OpenSSL's names.
const ALERTS: Record<string, string> = {
  PROTOCOL_VERSION: "protocol version not supported",
  UNKNOWN_CA: "unknown certificate authority",
  DECRYPT_ERROR: "error decrypting message",
  BAD_RECORD_MAC: "bad record MAC",
  UNRECOGNIZED_NAME: "unrecognized name",
  NO_APPLICATION_PROTOCOL: "no application protocol",
};

/** The message Go's tls.Conn.Handshake gives for a failure after the TCP connection was made. */
export function handshakeError(err: NodeError, socket: Socket): string {
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

/** crypto/tls wraps every verification failure in this. */
export const verifyFailure = (x509: string) => `tls: failed to verify certificate: ${x509}`;

// Go's verifier says "signed by unknown authority" whenever no chain to a root was found.
const UNKNOWN_AUTHORITY = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
]);

/** Go's x509 words for an OpenSSL chain-verification code; undefined where Go has none to match. */
export function chainError(code: string): string | undefined {
  if (UNKNOWN_AUTHORITY.has(code)) return "x509: certificate signed by unknown authority";
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return "x509: certificate has expired or is not yet valid";
  }
  if (code === "INVALID_PURPOSE") return "x509: certificate specifies an incompatible key usage";
  return undefined;
}

/** Go's CertificateInvalidError for a leaf outside its validity period at `nowMs`. */
export function validityError(cert: X509Certificate, nowMs: number): string | undefined {
  const notBefore = cert.validFromDate.getTime();
  const notAfter = cert.validToDate.getTime();
  const expired = "x509: certificate has expired or is not yet valid";
  if (nowMs < notBefore) return `${expired}: current time ${rfc3339(nowMs)} is before ${rfc3339(notBefore)}`;
  if (nowMs > notAfter) return `${expired}: current time ${rfc3339(nowMs)} is after ${rfc3339(notAfter)}`;
  return undefined;
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

/**
 * The transport failure of an `httpsRequest` as Go's net/http would print it, for the failures
 * an administrator meets while configuring an issuer; others keep Node's words.
 */
export function goTransportError(err: unknown): string {
  const cause = (err instanceof HTTPSError ? err.cause : err) as NodeError | undefined;
  const code = cause?.code ?? "";
  if ((code === "ECONNREFUSED" && cause?.address) || (code === "ENOTFOUND" && cause?.hostname)) {
    return dialError(cause, { host: cause.hostname ?? cause.address ?? "", port: cause.port ?? 0 });
  }
  const x509 = chainError(code);
  if (x509) return verifyFailure(x509);
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return verifyFailure(`x509: ${cause?.message ?? ""}`);
  if (err instanceof Error && /timed out/.test(err.message)) {
    return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
  }
  return err instanceof Error ? err.message : String(err);
}
