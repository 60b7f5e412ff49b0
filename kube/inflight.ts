import { turns } from "./turns.ts";

// A cap on concurrent requests for an HTTPS listener, answered as kube-apiserver's max-in-flight
// filter answers: 429 with Retry-After. Whatever a flood sends, no more than this many requests
// hold buffers, authenticators or upstream connections at once.

export class InFlightLimit {
  readonly max: number;
  #current = 0;

  constructor(max: number) {
    if (!(Number.isInteger(max) && max > 0))
      throw new Error(`in-flight limit must be a positive integer, got ${max}`);
    this.max = max;
  }

  get current(): number {
    return this.#current;
  }

  /** A release function (idempotent) when there is room, else undefined. */
  tryAcquire(): (() => void) | undefined {
    if (this.#current >= this.max) return undefined;
    this.#current++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#current--;
    };
  }
}

/** kube-apiserver's answer when its max-in-flight limit is reached. */
export const tooManyRequestsBody = JSON.stringify({
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message: "Too many requests, please try again later.",
  reason: "TooManyRequests",
  details: { retryAfterSeconds: 1 },
  code: 429,
});

export const tooManyRequestsHeaders = {
  "content-type": "application/json",
  "retry-after": "1",
  "cache-control": "no-cache, private",
} as const;

/** Handshakes that have not finished by then are dropped (Node's default keeps them for 120 s). */
export const defaultHandshakeTimeoutMs = 10_000;

interface Request {
  readonly complete: boolean;
}

/**
 * Whether the client may still be sending a body nobody will read. An HTTP/2 request counts as
 * complete only once its (possibly empty) body has been consumed, so a GET whose headers ended the
 * stream is not "unread" even though `complete` is still false.
 */
export function bodyUnread(req: Request): boolean {
  if (req.complete) return false;
  if (!("stream" in req)) return true;
  return !(req as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders;
}
interface Response {
  writeHead(code: number, headers: Record<string, string>): { end(body: string): unknown };
}

/** An answer that refused the request (4xx, 5xx): the only kind given without reading a body on purpose. */
function refused(status: number): boolean {
  return status >= 400;
}

/**
 * After a refusal given with the body unread (too large, too slow, too many at once): an HTTP/2
 * client would go on sending into a stream nobody reads, which then never closes, so the stream
 * is reset once the answer is out. A request that was served keeps its stream: the client may end
 * it as it likes. (An HTTP/1.1 refusal says `connection: close` instead; see `unreadBodyHeaders`.)
 */
export function resetIfUnread(req: Request, status: number): void {
  if (!refused(status) || !bodyUnread(req) || !("stream" in req)) return;
  const stream = (req as { stream: { close(): void } }).stream;
  // A turn rather than a bare setImmediate: a flood refused at once would close all its streams
  // in one event-loop phase.
  void turns.take().then(() => stream.close());
}

/** `connection: close` for an HTTP/1.1 refusal given with the body unread. */
export function unreadBodyHeaders(req: Request, status: number): Record<string, string> {
  return refused(status) && bodyUnread(req) && !("stream" in req) ? { connection: "close" } : {};
}

/** The 429, for a request whose body is never read. */
export function answerTooManyRequests(
  req: Request,
  res: Response,
  headers: Record<string, string> = {},
): void {
  res
    .writeHead(429, { ...headers, ...tooManyRequestsHeaders, ...unreadBodyHeaders(req, 429) })
    .end(tooManyRequestsBody);
  resetIfUnread(req, 429);
}
