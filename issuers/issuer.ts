// What the TokenCredentialRequest handler asks of a login strategy: "issue a credential for this
// user, or say why you cannot". Each strategy (kube-cert-agent's borrowed cluster signing key, the
// impersonation proxy's own signer, and whatever comes next: a CA from a Secret, the CSR API, a
// JWT issuer) provides one Issuer; the handler asks them in order through `firstAvailable`.

/** Who the credential is for: the authenticated user, already checked by the handler. */
export interface CredentialUser {
  username: string;
  groups: string[];
  /** Given only to an issuer that `carriesExtras`; a certificate has no place for it. */
  uid?: string;
  /** Given only to an issuer that `carriesExtras`. */
  extra?: Record<string, string[]>;
}

export interface IssueRequest {
  user: CredentialUser;
  /** How long the credential should live; an issuer may give less (never more) and says so in its expiry. */
  ttlSeconds: number;
  /**
   * A PEM certificate signing request made by the client, whose private key never leaves it. An
   * issuer that can sign it answers a certificate without a key; one that cannot is unavailable.
   */
  certificateSigningRequestPEM?: string;
  /** Aborts when the client goes away: an issuer that waits (on a watch, a remote call) stops. */
  signal?: AbortSignal;
}

export type Credential =
  | {
      type: "certificate";
      /** The leaf only. */
      certificatePEM: string;
      /** Absent when the client holds the key (it sent a CSR). */
      keyPEM?: string;
      notBefore?: Date;
      notAfter: Date;
    }
  | { type: "token"; token: string; expiresAt: Date };

/** A credential, or why this issuer cannot give one now, for the next issuer to try and for logs. */
export type IssueResult = { ok: true; credential: Credential } | { ok: false; reason: string };

/** Whether an issuer can serve right now, as the CredentialIssuer status would say. */
export type IssuerHealth = { ok: true } | { ok: false; reason: string };

export interface Issuer {
  /** Names the issuer in reasons and logs, e.g. "kube cluster signing CA". */
  readonly name: string;
  /**
   * Its credentials carry the user's uid and extras to kube-apiserver (a token's claims can; a
   * client certificate cannot). Absent means false.
   */
  readonly carriesExtras?: boolean;
  /** Cheap and synchronous (read from a holder): an unhealthy issuer is skipped without a call. */
  health(): IssuerHealth;
  /** May reject only on a bug; every expected failure is `{ ok: false, reason }`. */
  issue(request: IssueRequest): Promise<IssueResult>;
}
