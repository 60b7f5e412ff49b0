/**
 * Kubernetes' user.Info: who a request is from, as authenticators report it and as TokenReview,
 * SubjectAccessReview and impersonation headers carry it.
 */
export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}
