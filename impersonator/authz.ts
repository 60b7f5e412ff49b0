// Delegated authorization: a SubjectAccessReview to kube-apiserver for the user the proxy
// authenticated, so that a request the user may not make never reaches kube-apiserver with the
// proxy's impersonation rights behind it. Denials are worded as Kubernetes' WithAuthorization
// filter words them, with upstream's marker appended so it is clear who decided.
import type { RestClient } from "../controllers/runtime/rest.ts";
import type { Metrics } from "../observability/metrics.ts";
import { callWithDeadline } from "./authn.ts";
import type { UserInfo } from "./types.ts";

export const decisionMarker = "decision made by impersonation-proxy.concierge.pinniped.dev";

/** authorizer.Attributes: a resource request when `resource` is set, otherwise a path. */
export interface Attributes {
  verb: string;
  resourceRequest: boolean;
  namespace?: string;
  apiGroup?: string;
  apiVersion?: string;
  resource?: string;
  subresource?: string;
  name?: string;
  path?: string;
}

export interface AuthorizationResult {
  allowed: boolean;
  /** Kubernetes' reason with the marker appended; what a denial message ends with. */
  reason: string;
}

export type Authorizer = (
  user: UserInfo,
  attributes: Attributes,
  signal: AbortSignal,
) => Promise<AuthorizationResult>;

export interface AuthorizerOptions {
  client: RestClient;
  metrics: Metrics;
  timeoutMs?: number;
}

interface SubjectAccessReviewStatus {
  allowed?: boolean;
  denied?: boolean;
  reason?: string;
}

/** Throws when the review cannot be made; the caller answers the client itself. */
export function createAuthorizer(options: AuthorizerOptions): Authorizer {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const duration = options.metrics.histogram({
    name: "impersonation_proxy_subject_access_review_duration_seconds",
    help: "SubjectAccessReviews sent by the impersonation proxy, by result.",
    labelNames: ["result"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  return async (user, attributes, signal) => {
    // upstream: request info has had bugs that left the verb empty, so an empty verb never passes.
    if (attributes.verb === "") return { allowed: false, reason: `invalid verb, ${decisionMarker}` };
    const started = performance.now();
    let result = "error";
    try {
      const review = await callWithDeadline(signal, timeoutMs, (deadline) =>
        options.client.request<{ status?: SubjectAccessReviewStatus }>({
          method: "POST",
          path: "/apis/authorization.k8s.io/v1/subjectaccessreviews",
          body: subjectAccessReview(user, attributes),
          signal: deadline,
          timeoutMs,
        }),
      );
      const allowed = review?.status?.allowed === true;
      result = allowed ? "allowed" : "denied";
      const reason = review?.status?.reason ?? "";
      return { allowed, reason: reason === "" ? decisionMarker : `${reason}, ${decisionMarker}` };
    } finally {
      duration.observe({ result }, (performance.now() - started) / 1000);
    }
  };
}

export function subjectAccessReview(user: UserInfo, attributes: Attributes): unknown {
  const spec: Record<string, unknown> = {
    user: user.username,
    ...(user.uid ? { uid: user.uid } : {}),
    groups: [...user.groups],
    ...(Object.keys(user.extra).length > 0 ? { extra: structuredClone(user.extra) } : {}),
  };
  if (attributes.resourceRequest) {
    spec.resourceAttributes = {
      namespace: attributes.namespace ?? "",
      verb: attributes.verb,
      group: attributes.apiGroup ?? "",
      version: attributes.apiVersion ?? "",
      resource: attributes.resource ?? "",
      subresource: attributes.subresource ?? "",
      name: attributes.name ?? "",
    };
  } else {
    spec.nonResourceAttributes = { path: attributes.path ?? "", verb: attributes.verb };
  }
  return { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec };
}

// responsewriters' sanitizer: the message may be shown as HTML by some clients.
const sanitize = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

/**
 * apierrors.NewForbidden around responsewriters.forbiddenMessage, e.g. `pods "x" is forbidden:
 * User "u" cannot get resource "pods" in API group "" in the namespace "ns": <reason>`.
 */
export function forbiddenMessage(user: UserInfo, attributes: Attributes, reason: string): string {
  let detail: string;
  if (!attributes.resourceRequest) {
    detail = `User ${goQuote(user.username)} cannot ${attributes.verb} path ${goQuote(attributes.path ?? "")}`;
  } else {
    const resource = attributes.subresource
      ? `${attributes.resource ?? ""}/${attributes.subresource}`
      : (attributes.resource ?? "");
    const scope = attributes.namespace
      ? `in the namespace ${goQuote(attributes.namespace)}`
      : "at the cluster scope";
    detail = `User ${goQuote(user.username)} cannot ${attributes.verb} resource ${goQuote(resource)} in API group ${goQuote(attributes.apiGroup ?? "")} ${scope}`;
  }
  const err = reason === "" ? sanitize(detail) : `${sanitize(detail)}: ${reason}`;
  const group = attributes.resourceRequest ? (attributes.apiGroup ?? "") : "";
  const resource = attributes.resourceRequest ? (attributes.resource ?? "") : "";
  if (group === "" && resource === "") return `forbidden: ${err}`;
  const qualified = group === "" ? resource : `${resource}.${group}`;
  const name = attributes.resourceRequest ? (attributes.name ?? "") : "";
  return name === ""
    ? `${qualified} is forbidden: ${err}`
    : `${qualified} ${goQuote(name)} is forbidden: ${err}`;
}

/** Go's %q for the printable strings names are; other characters escaped as Go would. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}
