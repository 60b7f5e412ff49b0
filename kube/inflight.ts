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

/**
 * After an answer given with the body unread: an HTTP/2 client would go on sending into a stream
 * nobody reads, which then never closes, so the stream is reset once the answer is out. (An
 * HTTP/1.1 answer says `connection: close` instead; see `unreadBodyHeaders`.)
 */
export function resetIfUnread(req: Request): void {
  if (!bodyUnread(req) || !("stream" in req)) return;
  const stream = (req as { stream: { close(): void } }).stream;
  // A turn rather than a bare setImmediate: a flood refused at once would close all its streams
  // in one event-loop phase.
  void turns.take().then(() => stream.close());
}

/** `connection: close` for an HTTP/1.1 answer given with the body unread. */
export function unreadBodyHeaders(req: Request): Record<string, string> {
  return bodyUnread(req) && !("stream" in req) ? { connection: "close" } : {};
}

/** The 429, for a request whose body is never read. */
export function answerTooManyRequests(
  req: Request,
  res: Response,
  headers: Record<string, string> = {},
): void {
  res
    .writeHead(429, { ...headers, ...tooManyRequestsHeaders, ...unreadBodyHeaders(req) })
    .end(tooManyRequestsBody);
  resetIfUnread(req);
}
