// The JWTCredential strategy's issuer: a TokenCredentialRequest answers a JWT signed with the key
// the reconciler loaded, for kube-apiserver's JWT authenticator (structured authentication
// configuration, or --oidc-* flags) that trusts this issuer. Tokens carry the uid and extras a
// certificate cannot. Healthy while a key is loaded and the last probe TokenReview passed.
import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import type {
  CredentialUser,
  IssueRequest,
  IssueResult,
  Issuer,
  IssuerHealth,
} from "../../issuers/issuer.ts";
import { Holder, sameValue } from "../../kube/holder.ts";
import { type LoadedKeys, signJWT } from "./keys.ts";

export interface JWTIssuerOptions {
  issuer: string;
  audience: string;
  /** Configured token lifetime; a request's shorter TTL wins. */
  ttlSeconds?: number;
  now?: () => number;
}

/** The claims of a token for `user`: `sub` and `username` name it; `groups`, `uid` and `extra` as given. */
export function claimsFor(
  user: CredentialUser,
  options: { issuer: string; audience: string; issuedAtMs: number; ttlSeconds: number; jti: string },
): Record<string, unknown> {
  const iat = Math.floor(options.issuedAtMs / 1000);
  const extra = user.extra ?? {};
  return {
    iss: options.issuer,
    sub: user.username,
    aud: options.audience,
    iat,
    nbf: iat,
    exp: iat + options.ttlSeconds,
    jti: options.jti,
    username: user.username,
    groups: user.groups,
    ...(user.uid !== undefined ? { uid: user.uid } : {}),
    ...(Object.keys(extra).length > 0 ? { extra } : {}),
  };
}

export class JWTCredentialIssuer implements Issuer {
  readonly name = "JWT issuer";
  readonly carriesExtras = true;
  /** Filled by the key reconciler; undefined until a key is loaded. */
  readonly keys = new Holder<LoadedKeys | undefined>(undefined, { equal: sameValue });
  /** Whether kube-apiserver accepted the last probe token; set by the probe. */
  readonly state = new Holder<IssuerHealth>(
    { ok: false, reason: "JWT issuer: not probed yet" },
    { equal: isDeepStrictEqual },
  );
  readonly #options: JWTIssuerOptions;

  constructor(options: JWTIssuerOptions) {
    this.#options = options;
  }

  get issuer(): string {
    return this.#options.issuer;
  }

  get audience(): string {
    return this.#options.audience;
  }

  health(): IssuerHealth {
    if (!this.keys.get()) return { ok: false, reason: "JWT issuer: no signing key is loaded" };
    return this.state.get();
  }

  async issue(request: IssueRequest): Promise<IssueResult> {
    if (request.certificateSigningRequestPEM !== undefined) {
      return { ok: false, reason: `${this.name}: issues tokens, not certificates for a client's key` };
    }
    return this.mint(request.user, request.ttlSeconds);
  }

  /** A token for `user`, whatever the health: what issue() and the probe share. */
  mint(user: CredentialUser, requestedTTLSeconds: number): IssueResult {
    const keys = this.keys.get();
    if (!keys) return { ok: false, reason: `${this.name}: no signing key is loaded` };
    const ttlSeconds = Math.min(requestedTTLSeconds, this.#options.ttlSeconds ?? requestedTTLSeconds);
    const issuedAtMs = (this.#options.now ?? Date.now)();
    const claims = claimsFor(user, {
      issuer: this.#options.issuer,
      audience: this.#options.audience,
      issuedAtMs,
      ttlSeconds,
      jti: randomUUID(),
    });
    return {
      ok: true,
      credential: {
        type: "token",
        token: signJWT(keys, claims),
        expiresAt: new Date((claims.exp as number) * 1000),
      },
    };
  }
}
