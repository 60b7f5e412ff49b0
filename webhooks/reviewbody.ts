// Reads an AdmissionReview body. An UPDATE review carries the old and the new object, each up to
// what etcd stores (1.5 MiB by default), so the buffered limit covers two of those. Past it the
// review is still answered with a denial rather than an HTTP error, which kube-apiserver would
// turn into a 500 for the user: the rest of the body is read and dropped, and the request's uid
// is taken from its first bytes, where kube-apiserver's encoder puts it.
import type { IncomingMessage } from "node:http";
import { BodyCutShortError, BodyTooLargeError } from "../kube/requestbody.ts";

/** etcd's default --max-request-bytes: no stored object is larger. */
export const maxStoredObjectBytes = 1.5 * 1024 * 1024;
/** Old and new object, plus the review's own fields (user info, options). */
export const defaultMaxReviewBytes = 2 * maxStoredObjectBytes + 512 * 1024;
/**
 * kube-apiserver accepts request bodies up to 3 MiB, so a review can carry a new object up to that
 * (etcd would refuse it later) next to a stored old one; nothing it sends is larger than this.
 */
export const defaultMaxDrainBytes = 8 * 1024 * 1024;
/** Enough for the review's header fields, never the objects. */
const prefixBytes = 4096;

export type ReviewBody = { body: Buffer } | { tooLarge: true; prefix: Buffer };

/**
 * The body if it is at most `limit` bytes; else its first bytes, once the rest (up to `drainLimit`)
 * has been read and dropped. Throws BodyTooLargeError past `drainLimit`, BodyCutShortError when the
 * client goes away first.
 */
export function readReviewBody(req: IncomingMessage, limit: number, drainLimit: number): Promise<ReviewBody> {
  if (Number(req.headers["content-length"] ?? 0) > drainLimit) return Promise.reject(new BodyTooLargeError());
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    let prefix: Buffer | undefined;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > drainLimit) {
        req.removeAllListeners("data");
        req.pause();
        reject(new BodyTooLargeError());
        return;
      }
      if (prefix) return;
      chunks.push(chunk);
      if (size > limit) {
        prefix = Buffer.concat(chunks).subarray(0, prefixBytes);
        chunks = [];
      }
    });
    req.on("end", () => resolve(prefix ? { tooLarge: true, prefix } : { body: Buffer.concat(chunks) }));
    req.on("error", reject);
    req.on("close", () => {
      if (!req.complete) reject(new BodyCutShortError());
    });
  });
}

/**
 * The request uid of a review whose start this is, as encoding/json writes it: apiVersion and kind
 * first, then the request with its uid.
 */
export function uidFromPrefix(prefix: Buffer): string | undefined {
  const text = prefix.toString("latin1");
  if (!/"apiVersion"\s*:\s*"admission\.k8s\.io\/v1"/.test(text)) return undefined;
  return /"request"\s*:\s*\{\s*"uid"\s*:\s*"([0-9A-Za-z-]{1,64})"/.exec(text)?.[1];
}
