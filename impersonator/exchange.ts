// One client request as forward.ts serves it, from either of the proxy's two front ends: an HTTP/1.1
// request through Node's `http` objects, or an HTTP/2 stream served raw. HTTP/2 clients (kubectl's
// ordinary requests) skip Node's compatibility layer, whose request and response objects, header
// copies and per-stream proxies cost about as much CPU as forwarding itself.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { Readable } from "node:stream";
import { answerTooManyRequests } from "../kube/inflight.ts";
import { SECURITY_HEADERS } from "./headers.ts";

/** The response's head and whole answers (the body itself goes to `ClientExchange.sink`). */
export interface ClientResponse {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  writeHead(code: number, headers: OutgoingHttpHeaders): unknown;
  end(body?: string): unknown;
  destroy(): unknown;
  on(event: "close" | "finish", listener: () => void): unknown;
  /** HTTP/1.1 only: sends the head before the first body chunk. */
  flushHeaders?: () => void;
}

export interface ClientExchange {
  readonly method: string;
  /** Path and query, as received. */
  readonly path: string;
  /** Name, value, name, value, ...; HTTP/2 pseudo-headers included. */
  readonly rawHeaders: readonly string[];
  /** The client's request body. */
  readonly body: Readable;
  readonly response: ClientResponse;
  /** Where kube-apiserver's response body goes: 'finish' once it was all handed on. */
  readonly sink: NodeJS.WritableStream;
  /** kube-apiserver's 429 when the in-flight limit is reached, the body left unread. */
  tooManyRequests(): void;
}

/** An HTTP/1.1 request (or, should one arrive there, an HTTP/2 one through the compat layer). */
export function messageExchange(req: IncomingMessage, res: ServerResponse): ClientExchange {
  return {
    method: req.method ?? "GET",
    path: req.url ?? "/",
    rawHeaders: req.rawHeaders,
    body: req,
    response: res as unknown as ClientResponse,
    sink: res,
    tooManyRequests: () => answerTooManyRequests(req, res, SECURITY_HEADERS),
  };
}

/** An HTTP/2 stream as the server's 'stream' event hands it over. */
export function streamExchange(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  rawHeaders: readonly string[],
): ClientExchange {
  const response: ClientResponse = {
    get headersSent() {
      return stream.headersSent;
    },
    get destroyed() {
      return stream.destroyed;
    },
    writeHead(code, head) {
      stream.respond({ ...head, ":status": code });
    },
    end: (body) => stream.end(body),
    destroy: () => stream.destroy(),
    on: (event, listener) => stream.on(event, listener),
  };
  return {
    method: headers[":method"] ?? "GET",
    path: headers[":path"] ?? "/",
    rawHeaders,
    body: stream,
    response,
    sink: stream,
    // The shape answerTooManyRequests reads of an HTTP/2 request: complete once the body was
    // read, and the stream, which it resets when the client may still be sending.
    tooManyRequests: () =>
      answerTooManyRequests(
        { complete: stream.readableEnded, stream } as unknown as IncomingMessage,
        {
          writeHead(code: number, head: Record<string, string>) {
            stream.respond({ ...head, ":status": code });
            return { end: (body: string) => stream.end(body) };
          },
        } as unknown as ServerResponse,
      ),
  };
}
