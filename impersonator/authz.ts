// Delegated authorization: a SubjectAccessReview to kube-apiserver for the user the proxy
// authenticated, so that a request the user may not make never reaches kube-apiserver with the
// proxy's impersonation rights behind it. Denials are worded as Kubernetes' WithAuthorization
// filter words them, with upstream's marker appended so it is clear who decided.
import { createHash } from "node:crypto";
import type { Clock } from "../kube/clock.ts";
import { goQuote } from "../kube/goquote.ts";
import type { RestClient } from "../kube/rest.ts";
import type { UserInfo } from "../kube/userinfo.ts";
import type { Metrics } from "../observability/metrics.ts";
import { callWithDeadline } from "./authn.ts";

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

export const defaultAllowCacheTTLMs = 10_000;
export const defaultDenyCacheTTLMs = 10_000;
export const defaultAuthorizationCacheSize = 10_000;

export interface AuthorizerOptions {
  client: RestClient;
  clock: Clock;
  metrics: Metrics;
  timeoutMs?: number;
  /** How long an allowing review is reused; 0 disables. Default 10 s. */
  allowCacheTTLMs?: number;
  /** How long a denying review is reused; 0 disables. Default 10 s. */
  denyCacheTTLMs?: number;
  /** The most distinct reviews remembered at once; the oldest entry goes first. */
  cacheSize?: number;
}

interface SubjectAccessReviewStatus {
  allowed?: boolean;
  denied?: boolean;
  reason?: string;
}

/** One SubjectAccessReview on the wire, shared by every caller asking the same question meanwhile. */
interface Flight {
  result: Promise<AuthorizationResult>;
  /** Aborts the review once no caller waits for it any more. */
  abort: AbortController;
  waiters: number;
}

/**
 * Throws when the review cannot be made; the caller answers the client itself.
 *
 * Answers are cached like the generic apiserver's delegating authorizer (a webhook authorizer
 * with AllowCacheTTL and DenyCacheTTL of 10 s), because every request through the proxy needs
 * one review, and one per impersonated part. Denials are cached too, for parity with upstream and
 * so that a client retrying a forbidden request in a loop costs kube-apiserver nothing extra; the
 * price is that an RBAC change takes up to the TTL to show through the proxy, as it does for
 * kube-apiserver's own webhook authorizers. Errors are never cached.
 */
export function createAuthorizer(options: AuthorizerOptions): Authorizer {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const allowTTLMs = options.allowCacheTTLMs ?? defaultAllowCacheTTLMs;
  const denyTTLMs = options.denyCacheTTLMs ?? defaultDenyCacheTTLMs;
  const maxEntries = options.cacheSize ?? defaultAuthorizationCacheSize;
  const { client, clock } = options;
  // Keyed by the SHA-256 of the review's spec exactly as sent, so that two questions share an
  // entry only when kube-apiserver would have been asked the same thing.
  const cache = new Map<string, { result: AuthorizationResult; expiresAt: number }>();
  const flights = new Map<string, Flight>();
  const lookups = options.metrics.counter({
    name: "impersonation_proxy_subject_access_review_cache_total",
    help:
      "Authorizations by the impersonation proxy, by whether a cached review answered (hit), one " +
      "already in flight did (shared) or a new review was sent (miss).",
    labelNames: ["result"] as const,
  });
  const duration = options.metrics.histogram({
    name: "impersonation_proxy_subject_access_review_duration_seconds",
    help: "SubjectAccessReviews sent by the impersonation proxy, by result.",
    labelNames: ["result"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });

  const review = async (body: unknown, signal: AbortSignal): Promise<AuthorizationResult> => {
    const started = performance.now();
    let result = "error";
    try {
      const answer = await callWithDeadline(signal, timeoutMs, (deadline) =>
        client.request<{ status?: SubjectAccessReviewStatus }>({
          method: "POST",
          path: "/apis/authorization.k8s.io/v1/subjectaccessreviews",
          body,
          signal: deadline,
          timeoutMs,
        }),
      );
      const allowed = answer?.status?.allowed === true;
      result = allowed ? "allowed" : "denied";
      const reason = answer?.status?.reason ?? "";
      return { allowed, reason: reason === "" ? decisionMarker : `${reason}, ${decisionMarker}` };
    } finally {
      duration.observe({ result }, (performance.now() - started) / 1000);
    }
  };

  const remember = (key: string, result: AuthorizationResult) => {
    const ttlMs = result.allowed ? allowTTLMs : denyTTLMs;
    if (ttlMs <= 0 || maxEntries <= 0) return;
    cache.delete(key);
    if (cache.size >= maxEntries) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(key, { result: { ...result }, expiresAt: clock.now() + ttlMs });
  };

  return async (user, attributes, signal) => {
    // upstream: request info has had bugs that left the verb empty, so an empty verb never passes.
    if (attributes.verb === "") return { allowed: false, reason: `invalid verb, ${decisionMarker}` };
    signal.throwIfAborted();
    const body = subjectAccessReview(user, attributes);
    const key = createHash("sha256").update(JSON.stringify(body)).digest("base64");
    const cached = cache.get(key);
    if (cached && cached.expiresAt > clock.now()) {
      lookups.inc({ result: "hit" });
      return { ...cached.result };
    }
    if (cached) cache.delete(key);

    let flight = flights.get(key);
    if (flight) {
      lookups.inc({ result: "shared" });
    } else {
      lookups.inc({ result: "miss" });
      const abort = new AbortController();
      const started: Flight = {
        abort,
        waiters: 0,
        result: review(body, abort.signal).then((result) => {
          remember(key, result);
          return result;
        }),
      };
      // Settled flights leave at once, so a failure is retried by the next caller, never reused.
      const land = () => {
        if (flights.get(key) === started) flights.delete(key);
      };
      started.result.then(land, land);
      flights.set(key, started);
      flight = started;
    }

    // Each caller stops waiting on its own signal; the shared review is cancelled only when the
    // last of them has gone, so one impatient client cannot fail the others.
    const joined = flight;
    joined.waiters++;
    try {
      return { ...(await callWithDeadline(signal, timeoutMs, () => joined.result)) };
    } finally {
      if (--joined.waiters === 0 && flights.get(key) === joined) {
        flights.delete(key);
        joined.abort.abort(signal.reason);
      }
    }
  };
}

export function subjectAccessReview(user: UserInfo, attributes: Attributes): unknown {
  const spec: Record<string, unknown> = {
    user: user.username,
    ...(user.uid ? { uid: user.uid } : {}),
    groups: [...user.groups],
    ...(Object.keys(user.extra ?? {}).length > 0 ? { extra: copyExtra(user.extra ?? {}) } : {}),
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

// A string-to-strings map needs no structuredClone, which serialises (and cost more than the
// rest of building the review on every proxied request).
function copyExtra(extra: Readonly<Record<string, readonly string[]>>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [key, values] of Object.entries(extra)) out[key] = [...values];
  return out;
}

/** responsewriters' sanitizer: the message may be shown as HTML by some clients. */
export const sanitize = (s: string) =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

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
