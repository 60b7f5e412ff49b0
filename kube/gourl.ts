// Go's url.Parse, as far as deciding whether a URL parses, with Go's error text
// (`parse "<url>": invalid character " " in host name`), and what its scheme and host are.
// WHATWG's URL (Node's `URL`) accepts and rejects different strings (it checks the port range,
// punycodes hosts, takes spaces out, and reads `https:///x` as host `x`), so the issuer, JWKS and
// webhook endpoint checks, whose messages upstream makes from Go's parser, start here.
import { goQuote } from "./goquote.ts";

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

export interface GoURL {
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
