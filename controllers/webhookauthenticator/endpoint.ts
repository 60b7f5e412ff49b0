// spec.endpoint validation with upstream's semantics and messages: Go's url.Parse, then
// Pinniped's endpointaddr.ParseFromURL (host[:port], default port 443). WHATWG URL parsing
// accepts and rejects different strings (it checks the port range, punycodes hosts, and
// takes spaces out), so the parts of Go's parser that decide validity are re-created here.
import { isIP } from "node:net";
import { refusedHost } from "../../authenticators/outbound.ts";
import { goQuote } from "../../kube/goquote.ts";

export interface HostPort {
  /** A hostname or an IP address, without brackets. */
  host: string;
  port: number;
}

export type EndpointValidation =
  | { ok: true; hostPort: HostPort }
  | { ok: false; reason: "InvalidEndpointURL" | "InvalidEndpointURLScheme"; message: string };

const isHex = (c: string | undefined) => c !== undefined && /^[0-9a-fA-F]$/.test(c);

// Go's shouldEscape(c, encodeHost) for ASCII: what may appear unescaped in a host.
function hostCharAllowed(c: string): boolean {
  return /^[A-Za-z0-9\-_.~!$&'()*+,;=:[\]<>"]$/.test(c);
}

/** Go's unescape(): validates %-escapes everywhere, and characters too in a host. */
function unescapeError(s: string, host: boolean): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s[i] ?? "";
    if (c === "%") {
      if (!isHex(s[i + 1]) || !isHex(s[i + 2])) return `invalid URL escape ${goQuote(s.slice(i, i + 3))}`;
      // Percent-encoded ASCII is not allowed in a host, except %25 (an IPv6 zone's "%").
      if (host && Number.parseInt(s[i + 1] ?? "", 16) < 8 && s.slice(i, i + 3) !== "%25") {
        return `invalid URL escape ${goQuote(s.slice(i, i + 3))}`;
      }
      i += 2;
    } else if (host && c.charCodeAt(0) < 0x80 && !hostCharAllowed(c)) {
      return `invalid character ${goQuote(c)} in host name`;
    }
  }
  return undefined;
}

const validOptionalPort = (port: string) => port === "" || /^:[0-9]*$/.test(port);

function parseHost(host: string): string | { error: string } {
  if (host.startsWith("[")) {
    const close = host.lastIndexOf("]");
    if (close < 0) return { error: "missing ']' in host" };
    const colonPort = host.slice(close + 1);
    if (!validOptionalPort(colonPort)) return { error: `invalid port ${goQuote(colonPort)} after host` };
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0) {
      const colonPort = host.slice(colon);
      if (!validOptionalPort(colonPort)) return { error: `invalid port ${goQuote(colonPort)} after host` };
    }
  }
  const error = unescapeError(host, true);
  return error ? { error } : decodeURIComponentLoose(host);
}

function decodeURIComponentLoose(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

interface GoURL {
  scheme: string;
  /** The authority's host[:port], unescaped; empty for URLs without an authority. */
  host: string;
}

/** The subset of Go's url.Parse that decides whether an absolute URL parses and what its host is. */
export function goParseURL(raw: string): GoURL | { error: string } {
  const hash = raw.indexOf("#");
  const u = hash < 0 ? raw : raw.slice(0, hash);
  const wrap = (url: string, err: string) => ({ error: `parse ${goQuote(url)}: ${err}` });
  if ([...u].some((ch) => ch < " " || ch === "\x7f")) {
    return wrap(u, "net/url: invalid control character in URL");
  }
  let scheme = "";
  let rest = u;
  for (let i = 0; i < u.length; i++) {
    const c = u[i] ?? "";
    if (/[A-Za-z]/.test(c)) continue;
    if (/[0-9+\-.]/.test(c)) {
      if (i === 0) break;
      continue;
    }
    if (c === ":") {
      if (i === 0) return wrap(u, "missing protocol scheme");
      scheme = u.slice(0, i).toLowerCase();
      rest = u.slice(i + 1);
    }
    break;
  }
  const query = rest.indexOf("?");
  if (query >= 0) rest = rest.slice(0, query);
  let host = "";
  if (!rest.startsWith("/")) {
    // A rootless path after a scheme is opaque: Go checks nothing more.
    if (scheme !== "") return { scheme, host };
    const segment = rest.split("/", 1)[0] ?? "";
    if (segment.includes(":")) return wrap(u, "first path segment in URL cannot contain colon");
  } else if ((scheme !== "" || !rest.startsWith("///")) && rest.startsWith("//")) {
    const afterSlashes = rest.slice(2);
    const slash = afterSlashes.indexOf("/");
    const authority = slash < 0 ? afterSlashes : afterSlashes.slice(0, slash);
    rest = slash < 0 ? "" : afterSlashes.slice(slash);
    const at = authority.lastIndexOf("@");
    const parsed = parseHost(authority.slice(at + 1));
    if (typeof parsed !== "string") return wrap(u, parsed.error);
    if (at >= 0) {
      const userinfo = authority.slice(0, at);
      if (!/^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(userinfo)) return wrap(u, "net/url: invalid userinfo");
      const userinfoError = userinfo.includes(":") ? undefined : unescapeError(userinfo, false);
      if (userinfoError) return wrap(u, userinfoError);
    }
    host = parsed;
  }
  const pathError = unescapeError(rest, false);
  if (pathError) return wrap(u, pathError);
  if (hash >= 0) {
    const fragmentError = unescapeError(raw.slice(hash + 1), false);
    if (fragmentError) return wrap(raw, fragmentError);
  }
  return { scheme, host };
}

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
