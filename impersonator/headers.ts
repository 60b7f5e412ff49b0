// Header handling shared by the proxy's request and upgrade paths: what the decider sees, what goes
// to kube-apiserver, what goes back to the client, and how refusals are written.
import { goJSON } from "./gojson.ts";
import type { Decision, Forward, StatusDetails } from "./types.ts";

export type HeaderMap = Record<string, string | string[]>;

/**
 * RFC 9110 hop-by-hop headers (Go's reverse proxy's list, with the proxy credentials a client
 * meant for some proxy on its way) plus the HTTP/2 ones Node refuses to send: they describe one
 * connection, so they never cross the proxy (an upgrade re-adds its own `Connection`/`Upgrade`).
 */
export const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "http2-settings",
]);

/** Upstream Pinniped's securityheader wrapper; set on every response, refusals included. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-xss-protection": "1; mode=block",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-dns-prefetch-control": "off",
  "cache-control": "no-cache,no-store,max-age=0,must-revalidate",
  pragma: "no-cache",
  expires: "0",
};

/**
 * Request headers as the decider sees them: lower-case names; repeated headers (several
 * `Impersonate-Group`s) kept as arrays instead of comma-joined, because a comma is legal inside a
 * group name; pseudo-headers, hop-by-hop headers and whatever `Connection` names dropped. `Host`
 * comes from `Host` or HTTP/2's `:authority`.
 */
export function incomingHeaders(rawHeaders: readonly string[]): HeaderMap {
  const all = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    const values = all.get(name);
    if (values) values.push(value);
    else all.set(name, [value]);
  }
  const listed = new Set(
    (all.get("connection") ?? []).flatMap((v) => v.split(",").map((t) => t.trim().toLowerCase())),
  );
  const out: HeaderMap = {};
  for (const [name, values] of all) {
    if (HOP_BY_HOP.has(name) || listed.has(name)) continue;
    if (name.startsWith(":")) {
      if (name === ":authority" && !all.has("host")) out.host = values[0]!;
      continue;
    }
    out[name] = values.length === 1 ? values[0]! : values;
  }
  return out;
}

/**
 * Headers whose client-sent values must never reach kube-apiserver. `X-Remote-*` (the front-proxy
 * identity headers) count too: kube-apiserver believes them only over a front-proxy client
 * certificate, which the proxy never presents, but nothing a client names itself should travel.
 */
export function isCredentialHeader(name: string): boolean {
  const n = name.toLowerCase();
  return (
    n === "authorization" ||
    n.startsWith("impersonate-") ||
    n.startsWith("x-remote-") ||
    n === "x-forwarded-for"
  );
}

/**
 * What goes upstream: the client's headers minus credentials and `Host` (the upstream request
 * names its own), plus the decision's headers and `X-Forwarded-For` set to the client's address.
 */
export function upstreamHeaders(headers: HeaderMap, decision: Forward, remoteAddress: string): HeaderMap {
  const out: HeaderMap = {};
  for (const [name, value] of Object.entries(headers)) {
    if (isCredentialHeader(name) || name === "host") continue;
    out[name] = value;
  }
  for (const [name, value] of Object.entries(decision.headers)) out[name.toLowerCase()] = value;
  if (remoteAddress) out["x-forwarded-for"] = remoteAddress;
  return out;
}

/** `::ffff:10.0.0.1` as `10.0.0.1`, as Go's reverse proxy would write it. */
export function clientAddress(remoteAddress: string | undefined): string {
  if (!remoteAddress) return "";
  return remoteAddress.startsWith("::ffff:") && remoteAddress.includes(".")
    ? remoteAddress.slice("::ffff:".length)
    : remoteAddress;
}

/** Response headers from kube-apiserver for the client: hop-by-hop ones dropped, security ones set. */
export function downstreamHeaders(distinct: NodeJS.Dict<string[]>): HeaderMap {
  const listed = new Set(
    (distinct.connection ?? []).flatMap((v) => v.split(",").map((t) => t.trim().toLowerCase())),
  );
  const out: HeaderMap = {};
  for (const [name, values] of Object.entries(distinct)) {
    if (!values || values.length === 0 || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    out[name] = values.length === 1 ? values[0]! : values;
  }
  return { ...out, ...SECURITY_HEADERS };
}

/** An error answer the proxy writes itself, whole. */
export interface ErrorResponse {
  code: number;
  contentType: string;
  body: string;
}

/**
 * A metav1.Status failure body byte for byte as kube-apiserver's JSON serializer writes it: Go's
 * field order, empty fields left out but `details` kept when present even if empty (`{}`), `<`,
 * `>` and `&` escaped as Go's encoder escapes them, and json.Encoder's trailing newline.
 */
export function statusBody(code: number, reason: string, message: string, details?: StatusDetails): string {
  const status: Record<string, unknown> = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
  };
  if (message !== "") status.message = message;
  if (reason !== "") status.reason = reason;
  if (details) status.details = goDetails(details);
  status.code = code;
  return `${goJSON(status)}\n`;
}

function goDetails(details: StatusDetails): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (details.name) out.name = details.name;
  if (details.group) out.group = details.group;
  if (details.kind) out.kind = details.kind;
  if (details.causes && details.causes.length > 0) {
    out.causes = details.causes.map((c) => {
      const cause: Record<string, string> = {};
      if (c.reason) cause.reason = c.reason;
      if (c.message) cause.message = c.message;
      if (c.field) cause.field = c.field;
      return cause;
    });
  }
  return out;
}

export function statusResponse(
  code: number,
  reason: string,
  message: string,
  details?: StatusDetails,
): ErrorResponse {
  return { code, contentType: "application/json", body: statusBody(code, reason, message, details) };
}

/** Go's http.Error: the text and a newline, as plain text. */
export function plainTextResponse(code: number, text: string): ErrorResponse {
  return { code, contentType: "text/plain; charset=utf-8", body: `${text}\n` };
}

/** The decider threw: a 500 that says no more (its error goes to the log). */
export const decideFailedResponse = statusResponse(
  500,
  "InternalError",
  "Internal error occurred: the impersonation proxy could not authenticate or authorize the request",
);

/** Node refused to build the upstream request (a header value it cannot send, say). */
export const invalidUpstreamRequestResponse = statusResponse(
  500,
  "InternalError",
  "Internal error occurred: invalid upstream request",
);

export function unreachableUpstreamResponse(err: Error): ErrorResponse {
  return statusResponse(
    502,
    "ServiceUnavailable",
    `error trying to reach the Kubernetes API server: ${err.message}`,
  );
}

export function refusalResponse(decision: Extract<Decision, { action: "refuse" }>): ErrorResponse {
  return decision.plainText
    ? plainTextResponse(decision.code, decision.message)
    : statusResponse(decision.code, decision.reason, decision.message, decision.details);
}

/** Serialises a request or response head for a raw HTTP/1.1 socket. */
export function serializeHead(startLine: string, headers: HeaderMap | readonly string[]): string {
  let head = `${startLine}\r\n`;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  } else {
    for (const [name, value] of Object.entries(headers as HeaderMap)) {
      for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
    }
  }
  return `${head}\r\n`;
}

/** The path without its query, for logs: queries can carry values nobody should read in a log. */
export function pathWithoutQuery(path: string): string {
  const q = path.indexOf("?");
  return q === -1 ? path : path.slice(0, q);
}

const LONG_RUNNING_VERBS = new Set(["watch", "proxy"]);
const LONG_RUNNING_SUBRESOURCES = new Set(["attach", "exec", "proxy", "log", "portforward"]);

/** kube-apiserver's long-running classification, which exempts a request from the request timeout. */
export function isLongRunning(verb: string, resource: string): boolean {
  if (LONG_RUNNING_VERBS.has(verb)) return true;
  const slash = resource.indexOf("/");
  return slash !== -1 && LONG_RUNNING_SUBRESOURCES.has(resource.slice(slash + 1));
}
