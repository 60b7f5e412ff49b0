// What every token authenticator offers the handlers, whatever checks the token.

import type { UserInfo } from "../kube/userinfo.ts";

export type { UserInfo };

export type AuthenticationResult =
  | { authenticated: true; user: UserInfo; audiences?: string[] }
  /**
   * `reason` is for logs and metrics only, never for the caller (upstream answers every
   * failure with "authentication failed"). It must never contain the token.
   */
  | {
      authenticated: false;
      reason: string;
      /** A short, stable name for the kind of failure (a metric label), e.g. `expired`. */
      code?: string;
      /**
       * `reason` without values taken from the token (beyond the username), for the info-level
       * log; `reason` itself is such a text when this is absent.
       */
      safeReason?: string;
    };

export interface TokenAuthenticator {
  /**
   * Checks a token. Never throws and never rejects: every failure, including a bug in
   * a claim expression or an unreachable webhook, is `{ authenticated: false }`.
   */
  authenticateToken(token: string, signal?: AbortSignal): Promise<AuthenticationResult>;
  /** Releases timers and connections; called when the cache replaces or drops it. */
  close(): void;
}
