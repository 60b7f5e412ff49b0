// A real OpenID Connect provider (the `oidc-provider` package, as used by many IdPs) served over
// TLS on 127.0.0.1 with a CA of the test's own. Tests mint real ID tokens with the provider's own
// IdToken class, signed by the provider's own keystore, without a browser; and rotate its keys.
// With `interactive`, it also serves a public native client for browser logins (authorization
// code + PKCE, refresh tokens) through oidc-provider's development login and consent pages.
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { startHTTPSServer } from "./tls.ts";

// The few parts of oidc-provider's API used here. The package ships no types; DefinitelyTyped's
// would be a second dependency for four members.
interface OIDCClient {
  clientId: string;
}
interface IdToken {
  scope: string;
  set(claim: string, value: unknown): void;
  issue(options: { use: "idtoken"; expiresAt?: number }): Promise<string>;
}
interface ProviderContext {
  oidc?: { params?: Record<string, unknown> };
}
interface Provider {
  Client: { find(id: string): Promise<OIDCClient | undefined> };
  IdToken: new (claims: { sub: string }, options: { client: OIDCClient }) => IdToken;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: "grant.success", listener: (ctx: ProviderContext) => void): void;
  on(event: "interaction.started", listener: (ctx: ProviderContext, prompt: { name: string }) => void): void;
}
type ProviderClass = new (issuer: string, configuration: Record<string, unknown>) => Provider;

async function providerClass(): Promise<ProviderClass> {
  // A non-literal specifier, so that TypeScript does not look for the declarations it lacks.
  const name = "oidc-provider";
  return ((await import(name)) as { default: ProviderClass }).default;
}

export type SigningAlgorithm = "RS256" | "ES256";

export interface MintOptions {
  subject: string;
  /** A client ID given to `startOIDCProvider` (the token's `aud`). */
  audience: string;
  /** More claims, e.g. `username`, `groups`, `email`. */
  claims?: Record<string, unknown>;
  /** Seconds from now; negative for a token that has already expired. Default 600. */
  expiresIn?: number;
}

export interface TestOIDCProvider {
  /** `https://127.0.0.1:<port><path>`, exactly as the provider puts it in `iss`. */
  readonly issuer: string;
  /** The PEM of the CA that signed the provider's serving certificate. */
  readonly caPEM: string;
  /** A real ID token signed with the provider's current signing key. */
  mint(options: MintOptions): Promise<string>;
  /** The `kid`s of the JWKS the provider serves, signing key first. */
  kids(): string[];
  /**
   * Makes a new key the signing key, on the same port. By default the old keys stay in the JWKS
   * (a provider's usual rotation); `dropOld` removes them, so their tokens no longer verify.
   */
  rotateKeys(options?: { dropOld?: boolean; algorithm?: SigningAlgorithm }): Promise<void>;
  /** What the provider has done since it started (all zero without `interactive`). */
  stats(): ProviderStats;
  close(): Promise<void>;
}

export interface ProviderStats {
  /** Login forms shown: each is a user typing a login and password in a browser. */
  interactiveLogins: number;
  /** Token-endpoint grants that redeemed an authorization code. */
  authorizationCodeGrants: number;
  /** Token-endpoint grants that redeemed a refresh token. */
  refreshGrants: number;
}

export interface InteractiveUser {
  /** The `username` claim; default the login name. */
  username?: string;
  groups?: string[];
}

/** A public native client for browser logins, as the pinniped CLI is. */
export interface InteractiveOptions {
  /** Default `pinniped-cli`. */
  clientID?: string;
  /**
   * Claims per login name. The login form accepts any login and password: a login not listed
   * here gets `username` = the login and no groups.
   */
  users?: Record<string, InteractiveUser>;
  /** Lifetime of ID tokens in seconds; default 3600. A short one makes every token "nearly expired". */
  idTokenTTLSeconds?: number;
}

export interface OIDCProviderOptions {
  /** Client IDs that tokens can be minted for (confidential clients, no browser logins). */
  audiences?: string[];
  /** A path for the issuer, e.g. `/oidc`; default none. */
  path?: string;
  algorithm?: SigningAlgorithm;
  /** Also serve a client for interactive (browser) logins. */
  interactive?: InteractiveOptions;
  /** The address to listen on; 127.0.0.1 unless given (a real node's bridge address for pods). */
  host?: string;
}

/** The callback a native client registers; any loopback port is then allowed (RFC 8252 §7.3). */
export const interactiveRedirectURI = "http://127.0.0.1/callback";

async function newSigningKey(algorithm: SigningAlgorithm): Promise<JWK> {
  const { privateKey } = await generateKeyPair(algorithm, { extractable: true });
  return {
    ...(await exportJWK(privateKey)),
    kid: randomBytes(8).toString("hex"),
    alg: algorithm,
    use: "sig",
  };
}

/** oidc-provider's adapter interface, in memory, so the provider does not warn about its dev adapter. */
class MemoryAdapter {
  static readonly #store = new Map<string, Record<string, unknown>>();
  readonly #name: string;

  constructor(name: string) {
    this.#name = name;
  }

  #key(id: string): string {
    return `${this.#name}:${id}`;
  }
  async upsert(id: string, payload: Record<string, unknown>): Promise<void> {
    MemoryAdapter.#store.set(this.#key(id), payload);
  }
  async find(id: string): Promise<Record<string, unknown> | undefined> {
    return MemoryAdapter.#store.get(this.#key(id));
  }
  async findByUserCode(code: string): Promise<Record<string, unknown> | undefined> {
    return [...MemoryAdapter.#store.values()].find((p) => p.userCode === code);
  }
  async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
    return [...MemoryAdapter.#store.values()].find((p) => p.uid === uid);
  }
  async consume(id: string): Promise<void> {
    const payload = MemoryAdapter.#store.get(this.#key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string): Promise<void> {
    MemoryAdapter.#store.delete(this.#key(id));
  }
  async revokeByGrantId(grantId: string): Promise<void> {
    for (const [k, p] of MemoryAdapter.#store) if (p.grantId === grantId) MemoryAdapter.#store.delete(k);
  }
}

const nonInteractiveConfiguration = {
  features: { devInteractions: { enabled: false } },
  ttl: { IdToken: 600 },
};

function nativeClient(interactive: InteractiveOptions, alg: unknown): Record<string, unknown> {
  return {
    client_id: interactive.clientID ?? "pinniped-cli",
    application_type: "native",
    token_endpoint_auth_method: "none",
    redirect_uris: [interactiveRedirectURI],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    id_token_signed_response_alg: alg,
  };
}

function interactiveConfiguration(interactive: InteractiveOptions): Record<string, unknown> {
  const users = interactive.users ?? {};
  const idTokenTTL = interactive.idTokenTTLSeconds ?? 3600;
  return {
    features: { devInteractions: { enabled: true } },
    // Public clients must use PKCE; oidc-provider only offers S256.
    pkce: { required: () => true },
    claims: { openid: ["sub"], username: ["username"], groups: ["groups"] },
    // The ID token carries username and groups itself, as the Concierge's JWT authenticator needs.
    conformIdTokenClaims: false,
    // oidc-provider drops offline_access unless the request says prompt=consent, which the
    // pinniped CLI never does: grant a refresh token to every client allowed the grant instead,
    // and do not tie it to the browser session.
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
      client.grantTypeAllowed("refresh_token"),
    expiresWithSession: async () => false,
    // A public client's refresh token is single-use, as most providers do it for native apps.
    rotateRefreshToken: () => true,
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({
        sub,
        username: users[sub]?.username ?? sub,
        groups: users[sub]?.groups ?? [],
      }),
    }),
    ttl: {
      IdToken: idTokenTTL,
      AccessToken: 3600,
      AuthorizationCode: 60,
      RefreshToken: 24 * 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 24 * 3600,
    },
  };
}

/**
 * oidc-provider warns on every construction that its development login page is on. Here that
 * page is the point (the browser signs in on it), and the warning only confused readers of the
 * demo's output; every other warning still gets through.
 */
function withoutDevInteractionsWarning<T>(construct: () => T): T {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === "string" && args[0].includes("development-only feature devInteractions")) return;
    warn(...args);
  };
  try {
    return construct();
  } finally {
    console.warn = warn;
  }
}

export async function startOIDCProvider(options: OIDCProviderOptions): Promise<TestOIDCProvider> {
  const Provider = await providerClass();
  const path = (options.path ?? "").replace(/\/$/, "");
  let current:
    | { provider: Provider; handle: (req: IncomingMessage, res: ServerResponse) => void }
    | undefined;
  const server = await startHTTPSServer((req, res) => {
    const url = req.url ?? "/";
    if (!current || (path && url !== path && !url.startsWith(`${path}/`) && !url.startsWith(`${path}?`))) {
      res.statusCode = 404;
      res.end("not found");
      return;
    }
    // oidc-provider mounted under the issuer's path: it reads the mount path from originalUrl.
    (req as IncomingMessage & { originalUrl?: string }).originalUrl = url;
    req.url = url.slice(path.length) || "/";
    current.handle(req, res);
  }, options.host);
  const issuer = `${server.base}${path}`;

  let keys: JWK[] = [await newSigningKey(options.algorithm ?? "RS256")];
  const cookieKeys = [randomBytes(32).toString("hex")];
  const counts: ProviderStats = { interactiveLogins: 0, authorizationCodeGrants: 0, refreshGrants: 0 };
  const configure = () => {
    const confidential = (options.audiences ?? []).map((audience) => ({
      client_id: audience,
      client_secret: randomBytes(16).toString("hex"),
      redirect_uris: ["https://client.example.com/callback"],
      id_token_signed_response_alg: keys[0]?.alg,
    }));
    const provider = withoutDevInteractionsWarning(
      () =>
        new Provider(issuer, {
          adapter: MemoryAdapter,
          jwks: { keys },
          clients: options.interactive
            ? [...confidential, nativeClient(options.interactive, keys[0]?.alg)]
            : confidential,
          cookies: { keys: cookieKeys },
          ...(options.interactive
            ? interactiveConfiguration(options.interactive)
            : nonInteractiveConfiguration),
        }),
    );
    provider.on("grant.success", (ctx) => {
      const grantType = ctx.oidc?.params?.grant_type;
      if (grantType === "authorization_code") counts.authorizationCodeGrants++;
      if (grantType === "refresh_token") counts.refreshGrants++;
    });
    provider.on("interaction.started", (_ctx, prompt) => {
      if (prompt.name === "login") counts.interactiveLogins++;
    });
    current = { provider, handle: provider.callback() };
  };
  configure();

  return {
    issuer,
    caPEM: server.caPEM,
    async mint({ subject, audience, claims = {}, expiresIn = 600 }) {
      const provider = current?.provider;
      const client = await provider?.Client.find(audience);
      if (!provider || !client) throw new Error(`the test OIDC provider has no client ${audience}`);
      const token = new provider.IdToken({ sub: subject }, { client });
      token.scope = "openid";
      for (const [name, value] of Object.entries(claims)) token.set(name, value);
      return token.issue({ use: "idtoken", expiresAt: Math.floor(Date.now() / 1000) + expiresIn });
    },
    kids: () => keys.map((k) => String(k.kid)),
    async rotateKeys({ dropOld = false, algorithm } = {}) {
      const fresh = await newSigningKey(
        algorithm ?? (keys[0]?.alg as SigningAlgorithm | undefined) ?? "RS256",
      );
      keys = dropOld ? [fresh] : [fresh, ...keys];
      configure();
    },
    stats: () => ({ ...counts }),
    async close() {
      current = undefined;
      await server.close();
    },
  };
}
