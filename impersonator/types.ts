// The contracts between the impersonation proxy's parts: the server (TLS, HTTP/2 and HTTP/1.1,
// forwarding and upgrades) asks a RequestDecider what to do with each request, and the decider
// (authentication, authorization, nested impersonation) answers with the headers to send to
// kube-apiserver or a refusal. The impersonator-config reconciler runs the server through a
// ProxyRunner and hands it TLS material through a ProxyTLSHolder.
import type { X509Certificate } from "node:crypto";
import type { UserInfo } from "../kube/userinfo.ts";

/** What the server knows about one request when it asks the decider. */
export interface IncomingRequest {
  method: string;
  /** Path and query, as received (`/api/v1/namespaces?watch=true`). */
  path: string;
  /**
   * Request headers with lower-case names; HTTP/2 pseudo-headers and HTTP/1.1 hop-by-hop
   * headers already removed. Multi-valued headers are arrays.
   */
  headers: Record<string, string | string[]>;
  /**
   * The client certificate chain (leaf first) when the TLS layer verified it against the trusted
   * client CAs; undefined when none was sent or it did not verify (then it counts for nothing).
   */
  verifiedClientCertificate: X509Certificate | undefined;
  remoteAddress: string;
  /** True for an HTTP/1.1 Upgrade request (exec, attach, port-forward). */
  upgrade: boolean;
}

/** metav1.StatusDetails; kube-apiserver omits empty fields. */
export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: { reason?: string; message?: string; field?: string }[];
}

/**
 * A refusal, written to the client as a Kubernetes Status, or, where kube-apiserver's filters
 * answer with Go's http.Error (responsewriters.InternalError), as that plain text.
 */
export interface Refusal {
  action: "refuse";
  code: number;
  reason: string;
  /** The Status message; with `plainText`, the whole text line. */
  message: string;
  /** The Status's details, which kube-apiserver sends with forbidden and internal errors. */
  details?: StatusDetails;
  plainText?: boolean;
}

export interface Forward {
  action: "forward";
  /**
   * Headers to add to the request sent upstream, after the server has removed every client-sent
   * `Authorization`, `Impersonate-*` and `X-Forwarded-For` header: the bearer token to use
   * (the proxy's own, or the user's own for pass-through) and the `Impersonate-*` headers.
   */
  headers: Record<string, string | string[]>;
  /** For audit logs and metrics: who made the request and as whom it is forwarded. */
  audit: AuditInfo;
}

export type Decision = Forward | Refusal;

export interface AuditInfo {
  /** The authenticated user (before any nested impersonation). */
  user: UserInfo;
  /** How the user was authenticated. */
  authenticatedBy: "certificate" | "token" | "anonymous";
  /** The identity the request runs as upstream when it differs from `user` (nested impersonation). */
  impersonatedUser?: UserInfo;
  /** True when the user's own token is forwarded instead of impersonating (tokens with a UID). */
  passthrough: boolean;
  verb: string;
  /** e.g. `pods/exec`; empty for non-resource requests. */
  resource: string;
}

export type RequestDecider = (request: IncomingRequest, signal: AbortSignal) => Promise<Decision>;

/** The serving certificate and the client CAs the proxy's TLS layer uses; swapped at runtime. */
export interface ProxyTLS {
  /** Leaf first, then intermediates (e.g. a cross-signed CA during a CA rotation). */
  certPEM: string;
  keyPEM: string;
  /** Every CA whose client certificates are accepted (the proxy signer's, old and new, and the cluster's). */
  clientCAPEMs: string[];
}

export interface ProxyTLSSource {
  get(): ProxyTLS | undefined;
  /** Calls `listener` after each change; returns the unsubscribe function. */
  onChange(listener: (tls: ProxyTLS | undefined) => void): () => void;
}

/** Starts and stops the proxy's listener; the reconciler calls it on every sync, idempotently. */
export interface ProxyRunner {
  /** Listens on the configured port if not listening yet. Rejects when the port cannot be bound. */
  start(): Promise<void>;
  /** Closes the listener and every connection; resolves when closed. No-op when stopped. */
  stop(): Promise<void>;
  readonly running: boolean;
}
