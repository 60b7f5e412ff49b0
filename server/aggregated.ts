// The aggregated API server: login.concierge.pinniped.dev (TokenCredentialRequest) and
// identity.concierge.pinniped.dev (WhoAmIRequest), or those groups under the install's suffix
// (`options.groups`), reached only through kube-apiserver's aggregator. One HTTPS listener speaks HTTP/1.1 to every client that offers it (the aggregator
// and the webhook client do; see `chooseProtocol`) and HTTP/2 to the others; every request but
// the health checks must come from the front proxy (see frontproxy.ts), whose authentication and
// authorization kube-apiserver has already done.
import { randomUUID, X509Certificate } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  constants as http2constants,
  type ServerHttp2Session,
} from "node:http2";
import type { AddressInfo } from "node:net";
import type { PeerCertificate, SecureContextOptions, TLSSocket } from "node:tls";
import { whoAmIRequest } from "../apis/index.ts";
import { maxTokenBytes } from "../authenticators/jwt/authenticator.ts";
import type { ServingCert, ServingCertHolder } from "../certs/servingcert.ts";
import { GroupSuffix } from "../kube/groupsuffix.ts";
import {
  answerTooManyRequests,
  defaultHandshakeTimeoutMs,
  InFlightLimit,
  resetIfUnread,
  unreadBodyHeaders,
} from "../kube/inflight.ts";
import { BodyCutShortError, BodyTooLargeError, readLimitedBody } from "../kube/requestbody.ts";
import { discardLogger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { createOptions } from "./createoptions.ts";
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  emptyList,
  emptyTable,
  kindFor,
  openAPIV2,
  openAPIV3GroupVersion,
  openAPIV3Index,
  servedKinds,
} from "./discovery.ts";
import { type FrontProxyConfigHolder, pairHeaders, type RequestUser } from "./frontproxy.ts";
import { type APIResponse, badRequest, failure } from "./status.ts";
import { kindShape, type StrictDecoding, strictErrors } from "./strictdecode.ts";
import {
  createTokenCredentialRequestHandler,
  type TokenCredentialRequestOptions,
} from "./tokencredentialrequest.ts";
import { warningHeaders } from "./warning.ts";
import { createWhoAmIRequest } from "./whoamirequest.ts";

/**
 * The largest valid request: a TokenCredentialRequest with a token of the most any authenticator
 * takes, plus room for its other fields.
 */
export const defaultMaxBodyBytes = maxTokenBytes + 16 * 1024;
/** kube-apiserver's --max-requests-inflight default. */
export const defaultMaxInFlight = 400;
/** kube-apiserver sends a body at once; one that trickles in holds a slot for nothing. */
export const defaultBodyTimeoutMs = 10_000;

export interface AggregatedAPIOptions extends TokenCredentialRequestOptions {
  frontProxy: FrontProxyConfigHolder;
  maxBodyBytes?: number;
  bodyTimeoutMs?: number;
}

/** What Node hands the handler for HTTP/1.1 and for HTTP/2 requests. */
export type IncomingRequest = IncomingMessage | Http2ServerRequest;
export type OutgoingResponse = ServerResponse | Http2ServerResponse;

const healthPaths = new Set(["/healthz", "/readyz", "/livez"]);

type Resource = "tokencredentialrequests" | "whoamirequests" | "discovery" | "openapi" | "health" | "other";
type Verb = "create" | "list" | "get" | "other";

class HTTPError extends Error {
  readonly response: APIResponse;
  constructor(response: APIResponse) {
    super((response.body as { message: string }).message);
    this.response = response;
  }
}

const unauthorized = (): APIResponse => failure(401, "Unauthorized", "Unauthorized");
const notFound = (): APIResponse =>
  failure(404, "NotFound", "the server could not find the requested resource");
const methodNotAllowed = (): APIResponse =>
  failure(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");

// For HTTP/2 the session's socket (one proxy object per connection, where `req.socket` is a new
// one per stream); on such proxies `in` finds nothing, so the method is looked up instead.
function tlsSocket(req: IncomingRequest): TLSSocket | undefined {
  const socket = ("stream" in req ? req.stream.session?.socket : req.socket) as
    | Partial<TLSSocket>
    | undefined;
  return typeof socket?.getPeerCertificate === "function" ? (socket as TLSSocket) : undefined;
}

// A connection's certificates never change, and kube-apiserver sends many requests over one.
const chains = new WeakMap<TLSSocket, X509Certificate[]>();

/** The client's certificates, leaf first, as sent in the handshake. */
function peerChain(socket: TLSSocket | undefined): X509Certificate[] {
  if (!socket) return [];
  const cached = chains.get(socket);
  if (cached) return cached;
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let cert: PeerCertificate | undefined = socket.getPeerCertificate(true);
  while (cert?.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    chain.push(new X509Certificate(cert.raw));
    cert = (cert as { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  chains.set(socket, chain);
  return chain;
}

type Negotiated = { as: "json" } | { as: "table"; version: "v1" | "v1beta1" };

// The first acceptable media range in the client's order: plain JSON, or a meta.k8s.io Table
// (what `kubectl get` asks for first) where the endpoint offers one.
function negotiate(accept: string | undefined, tables: boolean): Negotiated | undefined {
  if (!accept) return { as: "json" };
  for (const range of accept.split(",")) {
    const [type = "", ...rest] = range.split(";").map((s) => s.trim());
    const params = new Map(
      rest.map((p) => {
        const [k = "", v = ""] = p.split("=");
        return [k.trim().toLowerCase(), v.trim()];
      }),
    );
    const mediaType = type.toLowerCase();
    if (mediaType === "*/*" || mediaType === "application/*") return { as: "json" };
    if (mediaType !== "application/json") continue;
    const as = params.get("as");
    if (as === undefined) return { as: "json" };
    const version = params.get("v");
    if (
      tables &&
      as === "Table" &&
      params.get("g") === "meta.k8s.io" &&
      (version === "v1" || version === "v1beta1")
    )
      return { as: "table", version };
  }
  return undefined;
}

const notAcceptable = () =>
  failure(406, "NotAcceptable", "only the following media types are accepted: application/json");

async function readBody(req: IncomingRequest, limit: number, timeoutMs: number): Promise<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new HTTPError(failure(408, "Timeout", `the request body did not arrive within ${timeoutMs} ms`)),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([readLimitedBody(req, limit), late]);
  } catch (err) {
    if (err instanceof HTTPError) throw err;
    if (err instanceof BodyTooLargeError) {
      throw new HTTPError(
        failure(413, "RequestEntityTooLarge", `the request body is larger than ${limit} bytes`),
      );
    }
    if (err instanceof BodyCutShortError) throw new HTTPError(badRequest("the request body was cut short"));
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

interface Route {
  resource: Resource;
  verb: Verb;
  serve: () => Promise<APIResponse> | APIResponse;
}

/** The request handler alone (for tests, or to share a listener). */
export function createAggregatedAPIHandler(
  options: AggregatedAPIOptions,
): (req: IncomingRequest, res: OutgoingResponse) => void {
  const log = (options.log ?? discardLogger()).child({ component: "aggregated-api" });
  const metrics = options.metrics ?? new Metrics();
  const maxBodyBytes = options.maxBodyBytes ?? defaultMaxBodyBytes;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? defaultBodyTimeoutMs;
  const createTCR = createTokenCredentialRequestHandler({ ...options, metrics });
  const requests = metrics.counter({
    name: "aggregated_api_requests_total",
    help: "Requests to the aggregated API by resource, verb and HTTP code.",
    labelNames: ["resource", "verb", "code"] as const,
  });
  const duration = metrics.histogram({
    name: "aggregated_api_request_duration_seconds",
    help: "Time from the request's arrival to the end of the response, by resource and verb.",
    labelNames: ["resource", "verb"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  // The kinds under the install's groups; the documents are precomputed: they depend only on the
  // schemas and the groups.
  const kinds = servedKinds(options.groups ?? new GroupSuffix());
  const openAPI = { v2: openAPIV2(kinds), v3: openAPIV3Index(kinds) };
  const shapes = new Map(kinds.map((k) => [k, kindShape(k.schema)]));

  /** The body's text, in a media type we decode. */
  async function bodyText(req: IncomingRequest): Promise<string> {
    const type = (req.headers["content-type"] ?? "application/json").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json") {
      throw new HTTPError(
        failure(
          415,
          "UnsupportedMediaType",
          `the body of the request was in an unknown format - accepted media types include: application/json`,
        ),
      );
    }
    return (await readBody(req, maxBodyBytes, bodyTimeoutMs)).toString("utf8");
  }

  function parse(text: string): unknown {
    try {
      return JSON.parse(text);
    } catch {
      // V8's message quotes the body; this one must not.
      throw new HTTPError(badRequest("the body of the request is not valid JSON"));
    }
  }

  function route(req: IncomingRequest, url: URL, user: RequestUser, signal: AbortSignal): Route {
    const method = req.method ?? "";
    const get = (resource: Resource, document: unknown): Route => ({
      resource,
      verb: "get",
      serve: () =>
        method === "GET" ? (document ? { code: 200, body: document } : notFound()) : methodNotAllowed(),
    });
    const parts = url.pathname.split("/").filter((p) => p !== "");
    const [root, g, v, ...rest] = parts;
    if (root === "openapi") {
      if (g === "v2" && parts.length === 2) return get("openapi", openAPI.v2);
      if (g === "v3" && parts.length === 2) return get("openapi", openAPI.v3);
      if (g === "v3" && v === "apis" && rest.length === 2)
        return get("openapi", openAPIV3GroupVersion(rest[0]!, rest[1]!, kinds));
      return { resource: "other", verb: "other", serve: notFound };
    }
    if (root !== "apis") return { resource: "other", verb: "other", serve: notFound };
    if (g === undefined) return get("discovery", apiGroupList(kinds));
    if (v === undefined) return get("discovery", apiGroup(g, kinds));
    if (rest.length === 0) return get("discovery", apiResourceList(g, v, kinds));

    let namespace: string | undefined;
    let resourcePath = rest;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      // Taken as sent: a namespace name is a DNS label, which needs no percent-decoding.
      namespace = rest[1]!;
      resourcePath = rest.slice(2);
    }
    const kind = resourcePath.length === 1 ? kindFor(g, v, resourcePath[0]!, kinds) : undefined;
    if (!kind) return { resource: "other", verb: "other", serve: notFound };
    const resource = kind.plural as Resource;
    if (method === "GET" && namespace === undefined) {
      return {
        resource,
        verb: "list",
        serve: () => {
          const negotiated = negotiate(req.headers.accept, true);
          if (!negotiated) return notAcceptable();
          return {
            code: 200,
            body: negotiated.as === "table" ? emptyTable(kind, negotiated.version) : emptyList(kind),
          };
        },
      };
    }
    if (method !== "POST") {
      // Cluster-scoped: a namespaced path exists only for create, to give upstream's error.
      return { resource, verb: "other", serve: namespace === undefined ? methodNotAllowed : notFound };
    }
    return {
      resource,
      verb: "create",
      serve: async () => {
        if (!negotiate(req.headers.accept, false)) return notAcceptable();
        // The generic apiserver's order: read the body, check the query, decode.
        const text = await bodyText(req);
        const query = createOptions(url.searchParams);
        if ("code" in query) return query;
        const object = parse(text);
        const strict: StrictDecoding = {
          directive: query.fieldValidation,
          errors: query.fieldValidation === "Ignore" ? [] : strictErrors(text, shapes.get(kind)!),
          warnings: [],
        };
        const ctx = { ...(namespace ? { namespace } : {}), dryRun: query.dryRun, strict };
        const answer =
          kind.kind === whoAmIRequest.kind
            ? createWhoAmIRequest(object, { ...ctx, user }, kind)
            : await createTCR(object, {
                ...ctx,
                auditID: headerString(req.headers["audit-id"]) ?? randomUUID(),
                signal,
              });
        return strict.warnings.length > 0 ? { ...answer, warnings: strict.warnings } : answer;
      },
    };
  }

  async function handle(req: IncomingRequest, signal: AbortSignal) {
    let url: URL;
    try {
      // Concatenated, not resolved: a target like `//x/y` must stay a path, not name a host.
      url = new URL(`https://localhost${req.url ?? "/"}`);
    } catch {
      return {
        resource: "other" as const,
        verb: "other" as const,
        response: badRequest("malformed request target"),
      };
    }
    const path = url.pathname;
    if (healthPaths.has(path)) {
      return { resource: "health" as const, verb: "get" as const, text: "ok" };
    }
    const authn = options.frontProxy.authenticate(peerChain(tlsSocket(req)), pairHeaders(req.rawHeaders));
    if (!authn.ok) {
      log.debug("refused an unauthenticated request", { method: req.method, path, reason: authn.reason });
      return { resource: "other" as const, verb: "other" as const, response: unauthorized() };
    }
    const r = route(req, url, authn.user, signal);
    try {
      return { resource: r.resource, verb: r.verb, response: await r.serve() };
    } catch (err) {
      if (err instanceof HTTPError) return { resource: r.resource, verb: r.verb, response: err.response };
      log.error("failed to answer a request", { method: req.method, path, error: err });
      return {
        resource: r.resource,
        verb: r.verb,
        response: failure(500, "InternalError", "Internal error occurred: the request could not be served"),
      };
    }
  }

  return (req, res) => {
    const started = performance.now();
    const clientGone = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) clientGone.abort(new Error("the client went away"));
    });
    handle(req, clientGone.signal).then(
      (result) => {
        const code = "text" in result ? 200 : result.response.code;
        if (!res.headersSent && !res.destroyed) {
          const [type, payload = ""] =
            "text" in result
              ? ["text/plain; charset=utf-8", result.text]
              : ["application/json", JSON.stringify(result.response.body)];
          const warnings = "text" in result ? undefined : result.response.warnings;
          if (warnings) res.setHeader("warning", warningHeaders(warnings));
          // Bytes, not a string: Node sends a string body in one write with the head, encoding
          // both as UTF-8, which would encode a Warning's UTF-8 bytes (latin1 characters) twice.
          const body = Buffer.from(payload);
          // A body left unread (refused as too large or too slow) would otherwise hold its
          // stream, and so its in-flight slot, open for as long as the client keeps sending.
          // Both response classes share this part of their API; TypeScript cannot call it on the union.
          (res as ServerResponse)
            .writeHead(code, {
              "content-type": type,
              "cache-control": "no-cache, private",
              // Without it an HTTP/1.1 answer (the aggregator's) goes out chunked.
              "content-length": body.length,
              ...unreadBodyHeaders(req, code),
            })
            .end(body);
          resetIfUnread(req, code);
        }
        requests.inc({ resource: result.resource, verb: result.verb, code: String(code) });
        duration.observe(
          { resource: result.resource, verb: result.verb },
          (performance.now() - started) / 1000,
        );
      },
      (err: unknown) => {
        log.error("request handler failed", { error: err });
        res.destroy();
      },
    );
  };
}

function headerString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export interface AggregatedAPIServerOptions extends AggregatedAPIOptions {
  certs: ServingCertHolder;
  host: string;
  /** 0 picks a free port; the chosen one is on the result. */
  port: number;
  /**
   * Other handlers on the same listener, by exact path (query ignored). kube-apiserver reaches the
   * admission webhook through the same Service; admission calls carry no front-proxy identity, so
   * they must not go through the aggregated API handler.
   */
  extraRoutes?: ReadonlyMap<string, (req: IncomingRequest, res: OutgoingResponse) => void>;
  /** Requests served at once, extra routes included, health checks not; default 400. */
  maxInFlight?: number;
  handshakeTimeoutMs?: number;
}

/**
 * HTTP/1.1 whenever the client offers it, HTTP/2 only to clients that offer nothing else.
 *
 * A draining pod must answer every request the aggregator sends it, and the aggregator cannot
 * retry one whose body it has sent (a TokenCredentialRequest is a POST). Over HTTP/1.1 that holds:
 * each answer during the drain says `Connection: close`, so the client sends nothing more on that
 * connection and opens the next one through the Service to a ready pod. Over HTTP/2 it cannot:
 * nghttp2 (Node's HTTP/2) silently drops every stream that arrives after it has sent any GOAWAY,
 * even one whose last stream ID promises to take it, so a request that crosses the GOAWAY on the
 * wire is refused by the final one and the aggregator answers 503. The same connection choice
 * also spreads the aggregator's requests over the replicas (kube-proxy balances connections; one
 * HTTP/2 connection carried all of them to one pod).
 */
export function chooseProtocol({ protocols }: { protocols: string[] }): string | undefined {
  if (protocols.includes("http/1.1")) return "http/1.1";
  return protocols.includes("h2") ? "h2" : undefined;
}

/** Between the shutdown notice and the final GOAWAY: golang.org/x/net/http2's goAwayTimeout. */
const goawayNoticeMs = 1000;
/** How often a drain checks whether the last connection has gone. */
const drainTickMs = 100;

export interface AggregatedAPIServer {
  readonly port: number;
  readonly server: Http2SecureServer;
  /**
   * Drains: HTTP/2 sessions get GOAWAY and finish their streams, HTTP/1.1 connections answer
   * their next request with `Connection: close` and idle ones stay until the client closes them;
   * a connection that still arrives is served the same way. Stops listening once none has been open for a moment;
   * whatever is still open after `graceMs` (default 0) is cut. The listener stays open for at
   * least `listenAtLeastMs` (within `graceMs`): connections kube-proxy still sends here, on a
   * node whose rules lag behind the endpoints, are answered rather than refused or lost.
   */
  close(graceMs?: number, listenAtLeastMs?: number): Promise<void>;
}

// Upstream's "Secure" TLS profile: TLS 1.3 only, which kube-apiserver speaks. The client
// certificate is asked for but checked per request, against the front-proxy CA of that moment.
function secureOptions(cert: ServingCert | undefined): SecureContextOptions {
  return { minVersion: "TLSv1.3", ...(cert ? { cert: cert.certPEM, key: cert.keyPEM } : {}) };
}

/**
 * Listens until closed. Until the holder has a serving certificate, handshakes fail (kube-apiserver
 * then reports the APIService unavailable, as upstream); later certificates apply to new connections.
 */
export async function startAggregatedAPIServer(
  options: AggregatedAPIServerOptions,
): Promise<AggregatedAPIServer> {
  const log = (options.log ?? discardLogger()).child({ component: "aggregated-api" });
  const api = createAggregatedAPIHandler(options);
  const extraRoutes = options.extraRoutes ?? new Map();
  let draining = false;
  // HTTP/1.1 answers in flight: a drain turns those not yet begun into `Connection: close`.
  const http1Responses = new Set<ServerResponse>();
  const inFlight = new InFlightLimit(options.maxInFlight ?? defaultMaxInFlight);
  const metrics = options.metrics ?? new Metrics();
  const throttled = metrics.counter({
    name: "aggregated_api_throttled_requests_total",
    help: "Requests answered 429 because the listener's in-flight limit was reached.",
  });
  const server = createSecureServer(
    {
      ...secureOptions(options.certs.get()),
      allowHTTP1: true,
      ALPNCallback: chooseProtocol,
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: options.handshakeTimeoutMs ?? defaultHandshakeTimeoutMs,
    },
    (req, res) => {
      // allowHTTP1 hands HTTP/1.1 requests to this handler as node:http's objects.
      if (req.httpVersionMajor === 1) {
        const response = res as unknown as ServerResponse;
        if (draining) response.shouldKeepAlive = false;
        http1Responses.add(response);
        res.once("close", () => http1Responses.delete(response));
      }
      const path = (req.url ?? "").split("?")[0] ?? "";
      const handler = extraRoutes.get(path) ?? api;
      if (healthPaths.has(path)) return handler(req, res);
      const release = inFlight.tryAcquire();
      if (!release) {
        throttled.inc();
        answerTooManyRequests(req, res as unknown as ServerResponse);
        return;
      }
      res.once("close", release);
      handler(req, res);
    },
  );
  // Idle connections: longer than Go's 90 s idle timeout, so the aggregator closes them first.
  server.setTimeout(120_000);
  const sockets = new Set<TLSSocket>();
  const sessions = new Set<ServerHttp2Session>();
  server.on("secureConnection", (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  let noticeMs = goawayNoticeMs;
  // For clients that speak only HTTP/2: Go's two-step GOAWAY, "no new streams" with the largest
  // stream ID, then the real last stream a moment later. nghttp2 still drops a stream that
  // crosses the first one on the wire (see chooseProtocol), so the kube-apiserver gets HTTP/1.1.
  const drainSession = (session: ServerHttp2Session) => {
    session.goaway(http2constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
    setTimeout(() => session.close(), noticeMs);
  };
  server.on("session", (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (draining) drainSession(session);
  });
  server.on("tlsClientError", (err) => log.debug("TLS handshake failed", { error: err }));
  const unsubscribe = options.certs.onChange((cert) => {
    server.setSecureContext(secureOptions(cert));
    log.info("serving certificate changed");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  log.info("listening", { host: options.host, port });
  return {
    port,
    server,
    close: (graceMs = 0, listenAtLeastMs = 0) =>
      new Promise<void>((resolve) => {
        unsubscribe();
        draining = true;
        noticeMs = Math.min(goawayNoticeMs, graceMs);
        for (const session of sessions) drainSession(session);
        // HTTP/1.1: only the client may end a connection it was promised it could keep. One
        // closed here as the client writes its next request on it loses that request (the
        // aggregator answers 503 "EOF"). So answers not yet begun say `Connection: close`, after
        // which Node closes; an answer already sent with keep-alive leaves its connection idle;
        // idle connections get `Connection: close` on their next request or are closed by the
        // client (Go's after 90 s idle, within the grace period the Deployment gives).
        for (const response of http1Responses) if (!response.headersSent) response.shouldKeepAlive = false;
        // The listener stays open until no connection has been open for a moment (or the grace
        // period ends): a client still routed here by a Service whose endpoints have not caught
        // up everywhere is answered (and told to go away) rather than refused.
        const started = Date.now();
        let quietSince: number | undefined;
        const timer = setInterval(() => {
          const now = Date.now();
          if (now - started < graceMs) {
            if (now - started < listenAtLeastMs || sockets.size > 0) {
              quietSince = undefined;
              return;
            }
            quietSince ??= now;
            if (now - quietSince < noticeMs) return;
          } else if (sockets.size > 0) {
            log.info("drain deadline passed; closing connections", { open: sockets.size });
          }
          clearInterval(timer);
          server.close(() => resolve());
          for (const socket of sockets) socket.destroy();
        }, drainTickMs);
      }),
  };
}
