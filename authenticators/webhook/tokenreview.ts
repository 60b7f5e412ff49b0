// The TokenReview wire format of a token-authentication webhook (Kubernetes'
// `authentication.k8s.io` v1 and v1beta1, whose request and status shapes are identical):
// what we send, and how an answer is read.

import { isObject } from "../../kube/isobject.ts";
import { shownValue } from "../../kube/shown.ts";
import type { UserInfo } from "../types.ts";

export type TokenReviewVersion = "v1beta1" | "v1";

export const tokenReviewGroup = "authentication.k8s.io";

/**
 * The request body, shaped as client-go serialises it (empty metadata and status included),
 * with the token and no audiences: upstream passes none to the webhook.
 */
export function tokenReviewRequest(version: TokenReviewVersion, token: string): string {
  return JSON.stringify({
    kind: "TokenReview",
    apiVersion: `${tokenReviewGroup}/${version}`,
    metadata: { creationTimestamp: null },
    spec: { token },
    status: { user: {} },
  });
}

export type TokenReviewAnswer =
  | { authenticated: true; user: UserInfo; version: TokenReviewVersion | undefined }
  | { authenticated: false; error: string | undefined; version: TokenReviewVersion | undefined };

/** A body that is not a usable TokenReview; its message never quotes the body. */
export class MalformedTokenReviewError extends Error {
  override readonly name = "MalformedTokenReviewError";
}

function stringList(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new MalformedTokenReviewError(`${field} is not a list of strings`);
  }
  return [...value];
}

/**
 * Reads a 2xx answer. Like client-go's decoder, a body without `apiVersion` or `kind` is read
 * as the version that was asked for; a different kind or group is refused. `version` reports
 * the version the webhook stated, so the caller can learn which one it speaks.
 */
export function parseTokenReview(body: Buffer): TokenReviewAnswer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw new MalformedTokenReviewError(`the answer is not JSON (${body.length} bytes)`);
  }
  if (!isObject(parsed)) throw new MalformedTokenReviewError("the answer is not a JSON object");
  const { kind, apiVersion, status } = parsed;
  if (kind !== undefined && kind !== "TokenReview") {
    throw new MalformedTokenReviewError(`the answer has kind ${shownValue(kind, 64)}, not TokenReview`);
  }
  let version: TokenReviewVersion | undefined;
  if (apiVersion === `${tokenReviewGroup}/v1`) version = "v1";
  else if (apiVersion === `${tokenReviewGroup}/v1beta1`) version = "v1beta1";
  else if (apiVersion !== undefined) {
    throw new MalformedTokenReviewError(
      `the answer has unsupported apiVersion ${shownValue(apiVersion, 64)}`,
    );
  }
  // null is Go's zero value, as for an absent status.
  if (status !== undefined && status !== null && !isObject(status)) {
    throw new MalformedTokenReviewError("status is not an object");
  }
  if (status?.authenticated !== true) {
    const error = typeof status?.error === "string" && status.error !== "" ? status.error : undefined;
    return { authenticated: false, error, version };
  }
  const user = status.user ?? {};
  if (!isObject(user)) throw new MalformedTokenReviewError("status.user is not an object");
  const { username = "", uid, groups, extra } = user;
  if (typeof username !== "string")
    throw new MalformedTokenReviewError("status.user.username is not a string");
  if (uid !== undefined && typeof uid !== "string") {
    throw new MalformedTokenReviewError("status.user.uid is not a string");
  }
  const info: UserInfo = { username, groups: stringList(groups, "status.user.groups") };
  // Empty values are Go's zero values: upstream cannot tell them from absent ones either.
  if (uid) info.uid = uid;
  if (extra !== undefined && extra !== null) {
    if (!isObject(extra)) throw new MalformedTokenReviewError("status.user.extra is not an object");
    info.extra = Object.fromEntries(
      Object.entries(extra).map(([k, v]) => [k, stringList(v, `status.user.extra[${JSON.stringify(k)}]`)]),
    );
  }
  return { authenticated: true, user: info, version };
}
