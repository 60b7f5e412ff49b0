// The HTTPS endpoint kube-apiserver calls with AdmissionReviews. It bounds what it reads (size,
// time), answers every failure with a metav1.Status, counts and times every request, and logs
// names and field paths but never object contents.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { SecureContextOptions } from "node:tls";
import { jwtAuthenticator } from "../apis/index.ts";
import type { ServingCert, ServingCertHolder } from "../certs/servingcert.ts";
import { GroupSuffix } from "../kube/groupsuffix.ts";
import {
  answerTooManyRequests,
  defaultHandshakeTimeoutMs,
  InFlightLimit,
  resetIfUnread,
} from "../kube/inflight.ts";
import { BodyCutShortError, BodyTooLargeError } from "../kube/requestbody.ts";
import { discardLogger, type Logger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import {
  type AdmissionOptions,
  denyUnread,
  MalformedAdmissionReview,
  reviewAdmission,
  type ValidatedKind,
} from "./admission.ts";
import { defaultMaxDrainBytes, defaultMaxReviewBytes, readReviewBody, uidFromPrefix } from "./reviewbody.ts";

/**
 * Both kinds share one path: the handler tells them apart by the review's kind. The path stays
 * the same under any API group suffix; only the install's webhook configuration points at it.
 */
export const validatePath = "/validate-authentication-concierge-pinniped-dev-v1alpha1";

/** An UPDATE review of the largest object etcd stores: the old and the new one both. */
export const defaultMaxBodyBytes = defaultMaxReviewBytes;
export const defaultRequestTimeoutMs = 30_000;
/**
 * kube-apiserver sends a review per write of our two kinds, which are rare; this bounds the memory
 * a flood of large bodies can hold (each up to maxBodyBytes) on a listener anyone can reach.
 */
export const defaultMaxInFlight = 16;

export interface WebhookHandlerOptions {
  logger?: Logger;
  metrics?: Metrics;
  maxBodyBytes?: number;
  /** Past maxBodyBytes, a review is read and dropped up to this, to answer it with a denial. */
  maxDrainBytes?: number;
  /** Reviews read at once: each may buffer maxBodyBytes. */
  maxInFlight?: number;
  /** A configured strategy's credential carries extras (the JWTCredential strategy). */
  extrasDeliverable?: boolean;
  /** The install's API groups (kube/groupsuffix.ts): the group whose kinds it validates. */
  groups?: GroupSuffix;
}

export interface WebhookServerOptions extends WebhookHandlerOptions {
  certs: ServingCertHolder;
  host: string;
  /** 0 picks a free port; the chosen one is on the result. */
  port: number;
  /** The whole request, headers and body, must arrive within this. */
  requestTimeoutMs?: number;
}

export interface WebhookServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

type Result = "allowed" | "denied" | "bad_request" | "error" | "throttled";

class HTTPError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

/** The request handler alone, so the webhook can share a listener with other endpoints. */
export function createWebhookHandler(
  options: WebhookHandlerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const log = (options.logger ?? discardLogger()).child({ component: "admission-webhook" });
  const limits = {
    body: options.maxBodyBytes ?? defaultMaxBodyBytes,
    drain: Math.max(options.maxDrainBytes ?? defaultMaxDrainBytes, options.maxBodyBytes ?? 0),
  };
  const metrics = options.metrics ?? new Metrics();
  const admission: AdmissionOptions = {
    extrasDeliverable: options.extrasDeliverable ?? false,
    group: (options.groups ?? new GroupSuffix()).served(jwtAuthenticator.group),
  };
  // `kind` is only ever one of our two kinds or "other": a label must not take values from requests.
  const requests = metrics.counter({
    name: "admission_webhook_requests_total",
    help: "Admission requests by kind and result: allowed, denied, bad_request, error, throttled.",
    labelNames: ["kind", "result"] as const,
  });
  const duration = metrics.histogram({
    name: "admission_webhook_request_duration_seconds",
    help: "Time from the request's arrival to the end of the response.",
    labelNames: ["kind"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });

  const record = (kind: ValidatedKind | undefined, result: Result, started: number) => {
    const label = kind ?? "other";
    requests.inc({ kind: label, result });
    duration.observe({ kind: label }, (performance.now() - started) / 1000);
  };

  const inFlight = new InFlightLimit(options.maxInFlight ?? defaultMaxInFlight);
  return (req, res) => {
    const started = performance.now();
    const release = inFlight.tryAcquire();
    if (!release) {
      record(undefined, "throttled", started);
      answerTooManyRequests(req, res);
      return;
    }
    res.once("close", release);
    serve(req, res, limits, admission).then(
      (decision) => {
        const result = decision.allowed ? "allowed" : "denied";
        record(decision.kind, result, started);
        const fields = {
          uid: decision.review.response.uid,
          kind: decision.kind ?? "other",
          name: decision.name,
          operation: decision.operation,
          durationMs: Math.round(performance.now() - started),
        };
        if (!decision.allowed) log.info("denied", { ...fields, fields: decision.deniedFields });
        else if (decision.warnedFields.length > 0) {
          log.info("admitted with warnings", { ...fields, fields: decision.warnedFields });
        } else log.debug("admitted", fields);
      },
      (err: unknown) => {
        const known = err instanceof HTTPError;
        record(undefined, known ? "bad_request" : "error", started);
        if (known) {
          log.warn("refused a request", {
            method: req.method,
            path: pathOf(req),
            code: err.code,
            error: err.message,
          });
          sendStatus(res, err.code, err.reason, err.message);
          resetIfUnread(req, err.code);
        } else {
          log.error("failed to answer a request", { method: req.method, path: pathOf(req), error: err });
          sendStatus(res, 500, "InternalError", "internal error while validating the request");
        }
      },
    );
  };
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  limits: { body: number; drain: number },
  admission: AdmissionOptions,
) {
  const path = pathOf(req);
  if (path !== validatePath) throw new HTTPError(404, "NotFound", `no such path ${JSON.stringify(path)}`);
  if (req.method !== "POST") {
    res.setHeader("Allow", "POST");
    throw new HTTPError(405, "MethodNotAllowed", `method ${req.method} is not allowed; use POST`);
  }
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HTTPError(
      415,
      "UnsupportedMediaType",
      `content type ${JSON.stringify(type)} is not application/json`,
    );
  }
  const read = await readBody(req, res, limits);
  if ("tooLarge" in read) {
    const uid = uidFromPrefix(read.prefix);
    const message = `the object is too large to validate: the review is larger than ${limits.body} bytes`;
    if (uid === undefined) throw new HTTPError(413, "RequestEntityTooLarge", message);
    const review = denyUnread(uid, message);
    res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(review));
    return {
      review,
      kind: undefined,
      operation: "",
      name: "",
      allowed: false,
      deniedFields: [],
      warnedFields: [],
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(read.body.toString("utf8"));
  } catch {
    // V8's message quotes the body; this one must not.
    throw new HTTPError(400, "BadRequest", "the body is not valid JSON");
  }
  let decision: ReturnType<typeof reviewAdmission>;
  try {
    decision = reviewAdmission(parsed, admission);
  } catch (err) {
    if (err instanceof MalformedAdmissionReview) throw new HTTPError(400, "BadRequest", err.message);
    throw err;
  }
  res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(decision.review));
  return decision;
}

// The request target without its query (kube-apiserver adds `?timeout=10s`), taken verbatim.
function pathOf(req: IncomingMessage): string {
  return (req.url ?? "").split("?")[0] ?? "";
}

async function readBody(req: IncomingMessage, res: ServerResponse, limits: { body: number; drain: number }) {
  try {
    return await readReviewBody(req, limits.body, limits.drain);
  } catch (err) {
    if (err instanceof BodyTooLargeError) {
      // The rest of the body is never read, so this connection cannot carry another request.
      res.setHeader("Connection", "close");
      throw new HTTPError(413, "RequestEntityTooLarge", `the body is larger than ${limits.drain} bytes`);
    }
    if (err instanceof BodyCutShortError)
      throw new HTTPError(400, "BadRequest", "the request body was cut short");
    throw err;
  }
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(code, { "Content-Type": "application/json" }).end(
    JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      code,
    }),
  );
}

// Like the aggregated API's "Secure" profile: the only client is kube-apiserver, which speaks
// TLS 1.3, so nothing older is offered.
function secureOptions(cert: ServingCert | undefined): SecureContextOptions {
  return { minVersion: "TLSv1.3", ...(cert ? { cert: cert.certPEM, key: cert.keyPEM } : {}) };
}

/**
 * Listens until closed. Until the holder has a certificate, TLS handshakes fail, as upstream's
 * aggregated API does before its serving cert is loaded; each certificate set later applies to
 * new connections.
 */
export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const log = (options.logger ?? discardLogger()).child({ component: "admission-webhook" });
  const server = createServer(
    { ...secureOptions(options.certs.get()), handshakeTimeout: defaultHandshakeTimeoutMs },
    createWebhookHandler(options),
  );
  server.requestTimeout = options.requestTimeoutMs ?? defaultRequestTimeoutMs;
  server.headersTimeout = Math.min(server.requestTimeout, 10_000);
  // Longer than the 90 s for which Go's HTTP client keeps an idle connection, so the client, not
  // this server, closes it: a POST on a connection the server is closing fails instead of retrying.
  server.keepAliveTimeout = 120_000;
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
  log.info("listening", { host: options.host, port, path: validatePath });
  return {
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        unsubscribe();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
