// URL checks with the outcomes of Go's net/url, which upstream's messages are made of: Go accepts
// some URLs that WHATWG's URL rejects (a scheme-less jwks_uri) and words its refusals its own way.
import { goQuote } from "../../kube/goquote.ts";
import { goParseURL } from "../../kube/gourl.ts";

export type ParsedURL = { ok: true; scheme: string; url: URL | undefined } | { ok: false; error: string };

/**
 * `url.Parse`, as far as upstream's conditions can tell: a parse error worded like Go's
 * (`parse "<raw>": invalid character " " in host name`), else the lower-cased scheme and, when
 * WHATWG can represent it, the URL. A string without a scheme parses, with scheme "".
 */
export function parseURL(raw: string): ParsedURL {
  const parsed = goParseURL(raw);
  if ("error" in parsed) return { ok: false, error: parsed.error };
  if (parsed.scheme === "") return { ok: true, scheme: "", url: undefined };
  try {
    return { ok: true, scheme: parsed.scheme, url: new URL(raw) };
  } catch {
    return { ok: false, error: `parse ${goQuote(raw)}: invalid URL` };
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
