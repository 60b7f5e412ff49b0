// spec.endpoint validation with upstream's semantics and messages: Go's url.Parse
// (kube/gourl.ts), then Pinniped's endpointaddr.ParseFromURL (host[:port], default port 443).
import { isIP } from "node:net";
import { refusedHost } from "../../authenticators/outbound.ts";
import { goQuote } from "../../kube/goquote.ts";
import { goParseURL } from "../../kube/gourl.ts";

export interface HostPort {
  /** A hostname or an IP address, without brackets. */
  host: string;
  port: number;
}

export type EndpointValidation =
  | { ok: true; hostPort: HostPort }
  | { ok: false; reason: "InvalidEndpointURL" | "InvalidEndpointURLScheme"; message: string };

/** Go's net.SplitHostPort. */
function splitHostPort(hostport: string): { host: string; port: string } | { error: string } {
  const fail = (why: string) => ({ error: `address ${hostport}: ${why}` });
  const i = hostport.lastIndexOf(":");
  if (i < 0) return fail("missing port in address");
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport.startsWith("[")) {
    const end = hostport.indexOf("]");
    if (end < 0) return fail("missing ']' in address");
    if (end + 1 === hostport.length) return fail("missing port in address");
    if (end + 1 !== i) return fail(hostport[end + 1] === ":" ? "too many colons" : "missing port in address");
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(":")) return fail("too many colons");
  }
  if (hostport.slice(j).includes("[")) return fail("unexpected '[' in address");
  if (hostport.slice(k).includes("]")) return fail("unexpected ']' in address");
  return { host, port: hostport.slice(i + 1) };
}

const joinHostPort = (host: string, port: string) =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;

// k8s IsValidIPForLegacyField: what netutils.ParseIPSloppy accepts (leading zeros allowed).
function isLegacyIP(host: string): boolean {
  if (isIP(host) !== 0) return true;
  const parts = host.split(".");
  return parts.length === 4 && parts.every((p) => /^[0-9]{1,3}$/.test(p) && Number(p) <= 255);
}

const DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN = new RegExp(`^${DNS1123_LABEL}(\\.${DNS1123_LABEL})*$`);

/** Pinniped's endpointaddr.Parse: "host", "host:port", "[ipv6]:port" with a default port. */
export function parseHostPort(endpoint: string, defaultPort: number): HostPort | { error: string } {
  let split = splitHostPort(endpoint);
  if ("error" in split) split = splitHostPort(joinHostPort(endpoint, String(defaultPort)));
  if ("error" in split) return split;
  const { host, port } = split;
  const number = /^[+-]?[0-9]+$/.test(port) ? Number(port) : 0;
  if (!(number >= 1 && number <= 65535)) return { error: `invalid port ${goQuote(port)}` };
  const lower = host.toLowerCase();
  if (!isLegacyIP(host) && !(lower.length <= 253 && DNS1123_SUBDOMAIN.test(lower))) {
    return { error: `host ${goQuote(host)} is not a valid hostname or IP address` };
  }
  return { host, port: number };
}

/** upstream's webhookcachefiller validateEndpoint, without the HTTPS_PROXY detection. */
export function validateEndpoint(endpoint: string): EndpointValidation {
  const url = goParseURL(endpoint);
  if ("error" in url) {
    return {
      ok: false,
      reason: "InvalidEndpointURL",
      message: `spec.endpoint URL cannot be parsed: ${url.error}`,
    };
  }
  if (url.scheme !== "https") {
    return {
      ok: false,
      reason: "InvalidEndpointURLScheme",
      message: `spec.endpoint URL ${endpoint} has invalid scheme, require 'https'`,
    };
  }
  // endpointaddr.ParseFromURL: a bracketed IPv6 literal without a port loses its brackets.
  const host = url.host.startsWith("[") && url.host.endsWith("]") ? url.host.slice(1, -1) : url.host;
  const hostPort = parseHostPort(host, 443);
  if ("error" in hostPort) {
    return {
      ok: false,
      reason: "InvalidEndpointURL",
      message: `spec.endpoint URL is not valid: ${hostPort.error}`,
    };
  }
  const refused = refusedHost(hostPort.host);
  if (refused) {
    return { ok: false, reason: "InvalidEndpointURL", message: `spec.endpoint URL host ${refused}` };
  }
  return { ok: true, hostPort };
}
