import { goQuote } from "../../kube/goquote.ts";
// URL checks with the outcomes of Go's net/url, which upstream's messages are made of: Go accepts
// some URLs that WHATWG's URL rejects (a scheme-less jwks_uri) and words its refusals its own way.

export type ParsedURL = { ok: true; scheme: string; url: URL | undefined } | { ok: false; error: string };

// Bytes Go's url.Parse accepts in a host (shouldEscape in encodeHost mode); bytes ≥ 0x80 pass too.
const goHostByte = /^[A-Za-z0-9\-._~!$&'()*+,;=:[\]<>"%]$/;
const schemePrefix = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/**
 * `url.Parse`, as far as upstream's conditions can tell: a parse error worded like Go's
 * (`parse "<raw>": invalid character " " in host name`), else the lower-cased scheme and, when
 * WHATWG can represent it, the URL. A string without a scheme parses, with scheme "".
 */
export function parseURL(raw: string): ParsedURL {
  const fail = (why: string): ParsedURL => ({ ok: false, error: `parse ${goQuote(raw)}: ${why}` });
  if ([...raw].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) {
    return fail("net/url: invalid control character in URL");
  }
  const scheme = schemePrefix.exec(raw)?.[1]?.toLowerCase();
  if (scheme === undefined) return { ok: true, scheme: "", url: undefined };
  const authority = /^[^:]+:\/\/([^/?#]*)/.exec(raw)?.[1];
  if (authority !== undefined) {
    const host = authority.slice(authority.lastIndexOf("@") + 1);
    for (const ch of host) {
      if (ch.charCodeAt(0) < 0x80 && !goHostByte.test(ch)) {
        return fail(`invalid character ${goQuote(ch)} in host name`);
      }
    }
    let port = "";
    if (host.startsWith("[")) {
      const end = host.lastIndexOf("]");
      if (end < 0) return fail("missing ']' in host");
      port = host.slice(end + 1);
    } else if (host.includes(":")) {
      port = host.slice(host.lastIndexOf(":"));
    }
    if (port !== "" && !/^:\d*$/.test(port)) return fail(`invalid port ${goQuote(port)} after host`);
  }
  try {
    return { ok: true, scheme, url: new URL(raw) };
  } catch {
    return fail("invalid URL");
  }
}

/** Go's `url.Path`: the path with percent-escapes decoded (left as is where they are malformed). */
export function decodedPath(url: URL): string {
  try {
    return decodeURIComponent(url.pathname);
  } catch {
    return url.pathname;
  }
}

/** go-oidc's discovery URL: the issuer without a trailing slash, plus the well-known path. */
export function discoveryURL(issuer: string): string {
  return `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
}
