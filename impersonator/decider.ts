// The impersonation proxy's decision for one request, in the order of the generic apiserver's
// handler chain upstream builds on: request info, authentication, nested impersonation,
// authorization; then how to forward it (upstream's getTransportForUser).
import { type Clock, realClock } from "../kube/clock.ts";
import { goQuote } from "../kube/goquote.ts";
import { isApiError, type RestClient } from "../kube/rest.ts";
import type { UserInfo } from "../kube/userinfo.ts";
import { discardLogger, type Logger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import {
  type AnonymousPolicy,
  anonymousUser,
  bearerToken,
  conciergeCredentialRequest,
  userFromCertificate,
  withAuthenticatedGroup,
} from "./authn.ts";
import { type Attributes, createAuthorizer, forbiddenMessage, sanitize } from "./authz.ts";
import {
  hasImpersonationHeaders,
  ImpersonationHeaderError,
  impersonatedUser,
  impersonationAttributes,
  impersonationHeaders,
  parseImpersonationHeaders,
  UnsupportedIdentityError,
} from "./impersonation.ts";
import { parseRequestInfo, type RequestInfo, RequestInfoError } from "./requestinfo.ts";
import { createTokenReviewer, defaultReviewTimeoutMs, defaultTokenReviewCacheTTLMs } from "./tokenreview.ts";
import type { AuditInfo, Decision, Forward, Refusal, RequestDecider } from "./types.ts";

export interface RequestDeciderOptions {
  /** The Concierge's own credentials: TokenReviews and SubjectAccessReviews are sent with them. */
  client: RestClient;
  /** The impersonation proxy ServiceAccount's current token; undefined while none was fetched. */
  proxyToken: () => string | undefined;
  clock?: Clock;
  log?: Logger;
  metrics?: Metrics;
  /** How long a successful TokenReview is reused (failures never are); default 10 s, 0 disables. */
  tokenReviewCacheTTLMs?: number;
  /** The most distinct tokens the cache holds; default 4096. */
  tokenReviewCacheSize?: number;
  /**
   * How long an allowing SubjectAccessReview is reused for the same user and request attributes;
   * default 10 s (the generic apiserver's delegating authorizer), 0 disables.
   */
  allowCacheTTLMs?: number;
  /**
   * How long a denying SubjectAccessReview is reused; default 10 s, 0 disables. An RBAC grant
   * therefore takes up to this long to show through the proxy, as with kube-apiserver's webhooks.
   */
  denyCacheTTLMs?: number;
  /** Per TokenReview or SubjectAccessReview; default 10 s. */
  reviewTimeoutMs?: number;
  /**
   * Which requests without credentials are forwarded, as system:anonymous. Default: only the
   * Concierge's credential APIs (conciergeCredentialRequest); the Concierge passes
   * clusterAnonymousPolicy, which follows the cluster's anonymous authentication.
   */
  anonymousAllowed?: AnonymousPolicy;
}

export const unableToAct = "unimplemented functionality - unable to act as current user";
export const noProxyTokenMessage = "no impersonator service account token available";

type Outcome = "forward" | "passthrough" | "unauthorized" | "forbidden" | "invalid" | "error";
type AuthenticatedBy = AuditInfo["authenticatedBy"] | "none";

const refuse = (code: number, reason: string, message: string): Refusal => ({
  action: "refuse",
  code,
  reason,
  message,
});
const unauthorized = () => refuse(401, "Unauthorized", "Unauthorized");
// apierrors.NewInternalError: the error is repeated as the one cause.
const internalError = (err: string): Refusal => ({
  ...refuse(500, "InternalError", `Internal error occurred: ${err}`),
  details: { causes: [{ message: err }] },
});
// responsewriters.InternalError, what kube-apiserver's request-info and impersonation filters
// answer with: Go's http.Error, plain text naming the request URI, not a Status.
const internalServerError = (requestURI: string, err: string): Refusal => ({
  ...refuse(500, "InternalError", sanitize(`Internal Server Error: ${goQuote(requestURI)}: ${err}`)),
  plainText: true,
});
const unavailable = (message: string) => refuse(503, "ServiceUnavailable", message);

export function createRequestDecider(options: RequestDeciderOptions): RequestDecider {
  const clock = options.clock ?? realClock;
  const log = (options.log ?? discardLogger()).child({ component: "impersonation-proxy" });
  const metrics = options.metrics ?? new Metrics();
  const timeoutMs = options.reviewTimeoutMs ?? defaultReviewTimeoutMs;
  const anonymousAllowed = options.anonymousAllowed ?? conciergeCredentialRequest;
  const reviewToken = createTokenReviewer({
    client: options.client,
    clock,
    metrics,
    cacheTTLMs: options.tokenReviewCacheTTLMs ?? defaultTokenReviewCacheTTLMs,
    ...(options.tokenReviewCacheSize !== undefined ? { cacheSize: options.tokenReviewCacheSize } : {}),
    timeoutMs,
  });
  const authorize = createAuthorizer({
    client: options.client,
    clock,
    metrics,
    timeoutMs,
    ...(options.allowCacheTTLMs !== undefined ? { allowCacheTTLMs: options.allowCacheTTLMs } : {}),
    ...(options.denyCacheTTLMs !== undefined ? { denyCacheTTLMs: options.denyCacheTTLMs } : {}),
  });
  const decisions = metrics.counter({
    name: "impersonation_proxy_decisions_total",
    help: "Requests the impersonation proxy decided on, by outcome and how the caller authenticated.",
    labelNames: ["outcome", "authenticated_by"] as const,
  });
  const reviewErrors = metrics.counter({
    name: "impersonation_proxy_review_errors_total",
    help: "TokenReviews and SubjectAccessReviews the impersonation proxy could not get an answer to.",
    labelNames: ["review"] as const,
  });

  const count = (decision: Decision, outcome: Outcome, by: AuthenticatedBy): Decision => {
    decisions.inc({ outcome, authenticated_by: by });
    if (decision.action === "refuse") {
      log.debug("impersonation proxy refused a request", {
        code: decision.code,
        reason: decision.reason,
        authenticatedBy: by,
      });
    }
    return decision;
  };

  // Answers a review that failed (kube-apiserver down, slow, or refusing the Concierge) with a
  // 503 the client may retry, never with a 401/403 that would send it to log in again.
  const reviewFailed = (review: "token" | "subject-access", err: unknown, by: AuthenticatedBy): Decision => {
    reviewErrors.inc({ review });
    // An error answer's body is not logged: a TokenReview's could echo what was sent.
    log.warn(`impersonation proxy could not complete a ${review} review`, {
      error: isApiError(err)
        ? `HTTP ${err.code} ${err.reason}`
        : err instanceof Error
          ? err.message
          : String(err),
    });
    const what = review === "token" ? "authenticate" : "authorize";
    return count(
      unavailable(`unable to ${what} the request: kube-apiserver did not answer the ${review} review`),
      "error",
      by,
    );
  };

  return async (request, signal) => {
    let info: RequestInfo;
    try {
      info = parseRequestInfo(request.method, request.path);
    } catch (err) {
      if (!(err instanceof RequestInfoError)) throw err;
      return count(
        internalServerError(request.path, `failed to create RequestInfo: ${err.message}`),
        "invalid",
        "none",
      );
    }

    // Authentication: certificate, else bearer token, else anonymous.
    let user: UserInfo;
    let authenticatedBy: AuditInfo["authenticatedBy"];
    const token = bearerToken(request.headers);
    const certUser =
      request.verifiedClientCertificate && userFromCertificate(request.verifiedClientCertificate);
    if (certUser) {
      user = certUser;
      authenticatedBy = "certificate";
    } else if (token !== undefined) {
      let reviewed: UserInfo | undefined;
      try {
        reviewed = await reviewToken(token, signal);
      } catch (err) {
        return reviewFailed("token", err, "token");
      }
      if (!reviewed) return count(unauthorized(), "unauthorized", "token");
      user = withAuthenticatedGroup(reviewed);
      authenticatedBy = "token";
    } else {
      if (!(await anonymousAllowed(info, signal))) return count(unauthorized(), "unauthorized", "anonymous");
      user = anonymousUser();
      authenticatedBy = "anonymous";
    }

    const audit: AuditInfo = {
      user,
      authenticatedBy,
      passthrough: false,
      verb: info.verb,
      resource: info.subresource ? `${info.resource}/${info.subresource}` : info.resource,
    };

    // Nested impersonation: each requested part must be allowed for the authenticated user.
    let effective = user;
    let nested = false;
    if (hasImpersonationHeaders(request.headers)) {
      let parts: ReturnType<typeof parseImpersonationHeaders>;
      try {
        parts = parseImpersonationHeaders(request.headers);
      } catch (err) {
        if (!(err instanceof ImpersonationHeaderError)) throw err;
        return count(internalServerError(request.path, err.message), "invalid", authenticatedBy);
      }
      if (parts.length > 0) {
        for (const part of parts) {
          const attributes = impersonationAttributes(part);
          let result: Awaited<ReturnType<typeof authorize>>;
          try {
            result = await authorize(user, attributes, signal);
          } catch (err) {
            return reviewFailed("subject-access", err, authenticatedBy);
          }
          if (!result.allowed) {
            return count(forbidden(user, attributes, result.reason), "forbidden", authenticatedBy);
          }
        }
        effective = impersonatedUser(parts);
        nested = true;
        audit.impersonatedUser = effective;
      }
    }

    // Authorization of the request itself, for whoever it runs as. The anonymous credential
    // requests skip it: kube-apiserver authorizes the forwarded request as system:anonymous anyway,
    // and the Concierge's RBAC grants exactly these to everyone, even on clusters that disable
    // anonymous authentication (where a SubjectAccessReview could not say more).
    if (!(authenticatedBy === "anonymous" && !nested && conciergeCredentialRequest(info))) {
      const attributes = requestAttributes(info);
      let result: Awaited<ReturnType<typeof authorize>>;
      try {
        result = await authorize(effective, attributes, signal);
      } catch (err) {
        return reviewFailed("subject-access", err, authenticatedBy);
      }
      if (!result.allowed) {
        return count(forbidden(effective, attributes, result.reason), "forbidden", authenticatedBy);
      }
    }

    // Forwarding. Kubernetes before KEP-4412 could not impersonate a UID, so a user with one can
    // only be forwarded with their own token, and only when that token is what authenticated them.
    if (effective.uid) {
      if (nested || authenticatedBy !== "token" || token === undefined) {
        log.debug("impersonation proxy cannot act as a user with a UID", { nested, authenticatedBy });
        return count(internalError(unableToAct), "error", authenticatedBy);
      }
      // The TokenReview that authenticated this user was for this very token, so kube-apiserver
      // authenticates it as the same user (upstream re-reviews it through the same cache).
      const decision: Forward = {
        action: "forward",
        headers: { Authorization: `Bearer ${token}` },
        audit: { ...audit, passthrough: true },
      };
      return count(decision, "passthrough", authenticatedBy);
    }

    let headers: Record<string, string | string[]>;
    try {
      headers = impersonationHeaders(effective, nested ? user : undefined);
    } catch (err) {
      if (!(err instanceof UnsupportedIdentityError)) throw err;
      log.debug("impersonation proxy cannot act as the user", { problem: err.message });
      return count(internalError(unableToAct), "error", authenticatedBy);
    }
    const proxyToken = options.proxyToken();
    if (!proxyToken) return count(unavailable(noProxyTokenMessage), "error", authenticatedBy);
    return count(
      { action: "forward", headers: { Authorization: `Bearer ${proxyToken}`, ...headers }, audit },
      "forward",
      authenticatedBy,
    );
  };
}

function requestAttributes(info: RequestInfo): Attributes {
  if (!info.isResourceRequest) return { verb: info.verb, resourceRequest: false, path: info.path };
  return {
    verb: info.verb,
    resourceRequest: true,
    namespace: info.namespace,
    apiGroup: info.apiGroup,
    apiVersion: info.apiVersion,
    resource: info.resource,
    subresource: info.subresource,
    name: info.name,
  };
}

// apierrors.NewForbidden's details: the resource and name, or nothing (`{}`) for a path.
function forbidden(user: UserInfo, attributes: Attributes, reason: string): Refusal {
  const details = attributes.resourceRequest
    ? { name: attributes.name, group: attributes.apiGroup, kind: attributes.resource }
    : {};
  return { ...refuse(403, "Forbidden", forbiddenMessage(user, attributes, reason)), details };
}
