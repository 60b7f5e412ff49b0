// What every token authenticator offers the handlers, whatever checks the token.

import type { UserInfo } from "../kube/userinfo.ts";

export type { UserInfo };

export type AuthenticationResult =
  | { authenticated: true; user: UserInfo; audiences?: string[] }
  /**
   * `reason` is for logs and metrics only, never for the caller (upstream answers every
   * failure with "authentication failed"). It must never contain the token.
   */
  | { authenticated: false; reason: string };

export interface TokenAuthenticator {
  /**
   * Checks a token. Never throws and never rejects: every failure, including a bug in
   * a claim expression or an unreachable webhook, is `{ authenticated: false }`.
   */
  authenticateToken(token: string, signal?: AbortSignal): Promise<AuthenticationResult>;
  /** Releases timers and connections; called when the cache replaces or drops it. */
  close(): void;
}
