// The OIDC login state machine of upstream's pkg/oidcclient: a cached ID token with enough time
// left; else a refresh grant with the cached refresh token; else a browser login (authorization
// code with PKCE through a localhost callback). Then, if another audience is wanted, an RFC 8693
// token exchange.
import { createInterface } from "node:readline/promises";
import { listenForCallback } from "./callback.ts";
import { discover, type ProviderMetadata } from "./discovery.ts";
import { newPKCE, randomValue } from "./pkce.ts";
import type { SessionCache, SessionKey, SessionTokens } from "./sessioncache.ts";
import { defaultLoginTimeoutMs } from "./timeouts.ts";
import { exchangeForAudience, redeemCode, refresh, type TokenSet, verifyExchangedToken } from "./tokens.ts";

/** A cached ID token is used only with more than this left (upstream's minIDTokenValidity). */
export const minIDTokenValidityMs = 10 * 60_000;
/** Likewise for the access token when it is about to be exchanged. */
const minAccessTokenValidityMs = 10_000;

export interface LoginOptions {
  issuer: string;
  clientID: string;
  scopes: string[];
  /** 0: a random port. */
  listenPort: number;
  skipBrowser: boolean;
  skipListen: boolean;
  skipPrintLoginURL: boolean;
  /** Undefined: the system roots. */
  ca: string[] | undefined;
  requestAudience: string | undefined;
  upstreamIdentityProvider: { name: string; type: string; flow: string | undefined } | undefined;
  sessionCache: SessionCache | undefined;
  loginTimeoutMs?: number;
}

export interface LoginIO {
  /** Text for the user (the login URL). */
  stderr: (text: string) => void;
  debug: (message: string) => void;
  openURL: (url: string) => Promise<void>;
  stdinIsTTY: boolean;
}

export interface IDToken {
  token: string;
  expiry: Date;
}

export class LoginFailure extends Error {}

export async function login(options: LoginOptions, io: LoginIO): Promise<IDToken> {
  const key: SessionKey = {
    issuer: options.issuer,
    clientID: options.clientID,
    scopes: [...options.scopes].sort(),
    // Upstream keys on the configured address, not the port the listener got.
    redirect_uri: `http://localhost:${options.listenPort}/callback`,
    ...(options.upstreamIdentityProvider
      ? { upstream_provider_name: options.upstreamIdentityProvider.name }
      : {}),
  };
  const needsExchange = (id: SessionTokens["id"]) =>
    options.requestAudience !== undefined && !idTokenAudienceIncludes(id?.token, options.requestAudience);
  const cached = await options.sessionCache?.get(key);
  if (cached && validForNearFuture(cached, needsExchange(cached.id))) {
    io.debug("Pinniped: Found unexpired cached token.");
    return finish(options, io, cached, undefined);
  }
  io.debug(`Pinniped: Performing OIDC discovery issuer=${options.issuer}`);
  const metadata = await discover(options.issuer, options.clientID, options.ca);
  if (cached?.refresh?.token) {
    io.debug("Pinniped: Refreshing cached tokens.");
    try {
      const fresh = await refresh(metadata, cached.refresh.token);
      const tokens = validated(fresh, cached.refresh.token);
      await options.sessionCache?.put(key, tokens);
      return finish(options, io, tokens, metadata);
    } catch (err) {
      // A dead refresh token (revoked, expired, garbage) means logging in again, as upstream does.
      io.debug(`Pinniped: Refresh failed. error=${(err as Error).message}`);
      await options.sessionCache?.delete(key);
    }
  }
  const tokens = await browserLogin(metadata, options, io);
  await options.sessionCache?.put(key, tokens);
  return finish(options, io, tokens, metadata);
}

function idTokenAudienceIncludes(token: string | undefined, audience: string): boolean {
  if (!token) return false;
  try {
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as {
      aud?: unknown;
    };
    return Array.isArray(payload.aud) ? payload.aud.includes(audience) : payload.aud === audience;
  } catch {
    return false;
  }
}

function validForNearFuture(tokens: SessionTokens, willExchange: boolean): boolean {
  const left = (ts: string | undefined) => Date.parse(ts ?? "") - Date.now();
  if (willExchange)
    return !!tokens.access?.token && left(tokens.access.expiryTimestamp) > minAccessTokenValidityMs;
  return !!tokens.id?.token && left(tokens.id.expiryTimestamp) > minIDTokenValidityMs;
}

/** Shapes checked tokens (openid-client verified the ID token) for the cache. */
function validated(set: TokenSet, previousRefreshToken?: string): SessionTokens {
  if (!set.idToken || !set.idTokenExpiry)
    throw new LoginFailure("the OIDC provider did not return an ID token");
  const tokens: SessionTokens = {
    id: { token: set.idToken, expiryTimestamp: set.idTokenExpiry.toISOString() },
  };
  if (set.accessToken)
    tokens.access = {
      token: set.accessToken,
      type: "Bearer",
      ...(set.accessTokenExpiry ? { expiryTimestamp: set.accessTokenExpiry.toISOString() } : {}),
    };
  const refreshToken = set.refreshToken ?? previousRefreshToken;
  if (refreshToken) tokens.refresh = { token: refreshToken };
  return tokens;
}

async function finish(
  options: LoginOptions,
  io: LoginIO,
  tokens: SessionTokens,
  metadata: ProviderMetadata | undefined,
): Promise<IDToken> {
  const audience = options.requestAudience;
  if (audience === undefined || idTokenAudienceIncludes(tokens.id?.token, audience)) {
    if (!tokens.id) throw new LoginFailure("the OIDC provider did not return an ID token");
    return { token: tokens.id.token, expiry: new Date(tokens.id.expiryTimestamp) };
  }
  io.debug(`Pinniped: Performing RFC8693 token exchange requestedAudience=${audience}`);
  try {
    const md = metadata ?? (await discover(options.issuer, options.clientID, options.ca));
    if (!tokens.access?.token) throw new Error("there is no access token to exchange");
    const jwt = await exchangeForAudience(md, { accessToken: tokens.access.token, audience });
    return { token: jwt, expiry: await verifyExchangedToken(md, jwt, audience) };
  } catch (err) {
    throw new LoginFailure(`failed to exchange token: ${(err as Error).message}`);
  }
}

async function browserLogin(
  metadata: ProviderMetadata,
  options: LoginOptions,
  io: LoginIO,
): Promise<SessionTokens> {
  const flow = await upstreamParams(metadata, options);
  const state = randomValue();
  const nonce = randomValue();
  const pkce = await newPKCE();
  // The code is redeemed with the redirect URI it was issued for, known once the listener is up.
  let redirectURI = "http://127.0.0.1:0/callback";
  const redeem = async (callback: URLSearchParams): Promise<SessionTokens> =>
    validated(await redeemCode(metadata, { callback, redirectURI, state, nonce, verifier: pkce.verifier }));
  const listener = options.skipListen
    ? undefined
    : await listenForCallback({ port: options.listenPort, state, redeem });
  if (listener) redirectURI = listener.redirectURI;
  const url = new URL(metadata.authorizationEndpoint);
  for (const [k, v] of Object.entries({
    client_id: options.clientID,
    response_type: "code",
    redirect_uri: redirectURI,
    scope: options.scopes.join(" "),
    state,
    nonce,
    code_challenge: pkce.challenge,
    code_challenge_method: pkce.method,
    access_type: "offline",
    ...flow,
  }))
    url.searchParams.set(k, v);
  const authorizeURL = url.toString();

  let opened = false;
  if (!options.skipBrowser) {
    try {
      await io.openURL(authorizeURL);
      opened = true;
    } catch (err) {
      io.debug(`could not open browser: ${(err as Error).message}`);
    }
  }
  // Without an opened browser the printed URL is the user's only way in.
  if (!opened || !options.skipPrintLoginURL)
    io.stderr(`Log in by visiting this link:\n\n    ${authorizeURL}\n\n`);

  const timeoutMs = options.loginTimeoutMs ?? defaultLoginTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new LoginFailure(`timed out waiting for token callback after ${Math.round(timeoutMs / 1000)}s`),
        ),
      timeoutMs,
    );
  });
  // A pasted code comes without the callback's other parameters: state (ours) and, from a
  // provider that sends it (RFC 9207), its issuer.
  const redeemPasted = (code: string) => {
    const p = new URLSearchParams({ code, state });
    if (metadata.config.serverMetadata().authorization_response_iss_parameter_supported)
      p.set("iss", metadata.issuer);
    return redeem(p);
  };
  const prompt = listener ? undefined : pasteCode(io, redeemPasted);
  try {
    return await Promise.race([listener?.result ?? prompt!.result, timeout]);
  } finally {
    clearTimeout(timer);
    prompt?.close();
    await listener?.close();
  }
}

/** --skip-listen: the user pastes the code the provider showed them. */
function pasteCode(io: LoginIO, redeem: (code: string) => Promise<SessionTokens>) {
  if (!io.stdinIsTTY)
    return {
      result: Promise.reject(
        new LoginFailure("--skip-listen needs a terminal on stdin to paste the authorization code into"),
      ),
      close: () => {},
    };
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const result = rl
    .question("    Optionally, paste your authorization code: ")
    .then((code) => redeem(code.trim()));
  return { result, close: () => rl.close() };
}

/** Supervisor-only authorize parameters naming the upstream identity provider. */
async function upstreamParams(
  metadata: ProviderMetadata,
  options: LoginOptions,
): Promise<Record<string, string>> {
  const idp = options.upstreamIdentityProvider;
  if (!idp) return {};
  if (!metadata.pinnipedIDPsEndpoint)
    throw new LoginFailure(
      `upstream identity provider name "${idp.name}" was specified, but OIDC issuer "${options.issuer}" does not offer Pinniped-style IDP discovery, so it does not appear to be a Pinniped Supervisor; specifying an upstream identity provider name is only meant to be used with Pinniped Supervisors`,
    );
  if (idp.flow !== undefined && idp.flow !== "browser_authcode")
    throw new LoginFailure(
      `login flow "${idp.flow}" is not supported by this CLI (only "browser_authcode" is)`,
    );
  return { pinniped_idp_name: idp.name, pinniped_idp_type: idp.type };
}
