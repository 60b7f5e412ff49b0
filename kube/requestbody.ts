// Reads a request body with a size limit, for the aggregated API (the admission webhook reads
// reviews with reviewbody.ts, which shares these errors); each turns them into a Status.
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";

export class BodyTooLargeError extends Error {}
export class BodyCutShortError extends Error {}

export function readLimitedBody(req: IncomingMessage | Http2ServerRequest, limit: number): Promise<Buffer> {
  if (Number(req.headers["content-length"] ?? 0) > limit) return Promise.reject(new BodyTooLargeError());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.pause();
        reject(new BodyTooLargeError());
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
    // A client that goes away (or runs past the server's request timeout) leaves the body
    // incomplete, and no "end" follows.
    req.on("close", () => {
      if (!req.complete) reject(new BodyCutShortError());
    });
  });
}
