// The two plain-HTTPS calls of `pinniped get kubeconfig`: OIDC discovery of the issuer (to drop
// scopes it would refuse) and the final check that the generated cluster entry is reachable.

import { request } from "node:https";
import type { ScopeNeed } from "./claim-scopes.ts";
import { sleep } from "./kubeconfig-discovery.ts";

export interface GetResult {
  status: number;
  body: string;
}

/** One GET; `ca` replaces the system roots when given (Node's `ca` option does exactly that). */
export function httpsGet(
  url: string,
  opts: { ca?: string | undefined; servername?: string | undefined; timeoutMs: number; signal: AbortSignal },
): Promise<GetResult> {
  return new Promise((ok, fail) => {
    const signal = AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]);
    const req = request(
      url,
      {
        method: "GET",
        signal,
        ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
        ...(opts.servername !== undefined ? { servername: opts.servername } : {}),
        headers: { "User-Agent": "pinniped-cli", Accept: "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", fail);
      },
    );
    req.on("error", fail);
    req.end();
  });
}

/**
 * The requested scopes the issuer can grant. Only the defaults are pruned (a user's explicit
 * --oidc-scopes are kept as given); `openid` always stays because login needs an ID token.
 * Discovery trouble is only a warning: the kubeconfig is still usable with the scopes as they are.
 */
export async function pruneScopes(
  issuer: string,
  scopes: string[],
  opts: { ca?: string | undefined; signal: AbortSignal; log: (line: string) => void },
  needed: readonly ScopeNeed[] = [],
): Promise<string[]> {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  let supported: unknown;
  try {
    const res = await httpsGet(url, { ca: opts.ca, timeoutMs: 10_000, signal: opts.signal });
    if (res.status !== 200) throw new Error(`unexpected HTTP status ${res.status}`);
    supported = (JSON.parse(res.body) as { scopes_supported?: unknown }).scopes_supported;
  } catch (err) {
    opts.log(
      `warning: could not fetch OIDC discovery data from issuer ${issuer}, keeping --oidc-scopes as they are: ${(err as Error).message}`,
    );
    return scopes;
  }
  if (!Array.isArray(supported)) return scopes;
  const kept = scopes.filter((scope) => {
    if (scope === "openid" || supported.includes(scope)) return true;
    opts.log(
      `removed scope ${scope} from --oidc-scopes because the issuer does not list it in scopes_supported`,
    );
    return false;
  });
  // Added only when the issuer lists them: an issuer may refuse a scope it does not know.
  for (const { scope, because } of needed) {
    if (kept.includes(scope)) continue;
    if (supported.includes(scope)) {
      kept.push(scope);
      opts.log(`added scope ${scope} to --oidc-scopes because ${because}`);
    } else {
      opts.log(
        `warning: ${because}, but the issuer does not list scope ${scope} in scopes_supported: logins may fail; pass --oidc-scopes to choose the scopes yourself`,
      );
    }
  }
  return kept;
}

/**
 * Upstream's final check: GET the cluster's server trusting only its CA; any answer below 500
 * means TLS and routing work (401/403 are expected without credentials). Retries every pollMs
 * until the deadline, since a new impersonation proxy load balancer can take a while.
 */
export async function validateConnection(
  server: string,
  opts: {
    ca: string;
    servername?: string | undefined;
    signal: AbortSignal;
    pollMs: number;
    timeoutText: string;
    log: (line: string) => void;
  },
): Promise<void> {
  const ping = async () => {
    const res = await httpsGet(server, {
      ca: opts.ca,
      servername: opts.servername,
      timeoutMs: 10_000,
      signal: opts.signal,
    });
    if (res.status >= 500) throw new Error(`unexpected status code ${res.status}`);
  };
  let lastError: Error | undefined;
  for (let attempts = 0; ; attempts++) {
    try {
      await ping();
      opts.log("validated connection to the cluster");
      return;
    } catch (err) {
      // The deadline aborting a ping in flight says nothing about the cluster: keep the reason
      // the pings before it failed, which is what the user needs to see.
      if (!(opts.signal.aborted && lastError)) lastError = err as Error;
    }
    if (attempts === 0) {
      opts.log(
        "could not immediately connect to the cluster but it may be initializing, will retry until timeout",
      );
    } else {
      opts.log(
        `could not connect to cluster, retrying... (attempts: ${attempts}, error: ${lastError!.message})`,
      );
    }
    try {
      await sleep(opts.pollMs, opts.signal);
    } catch {
      throw new Error(
        `could not validate connection to the cluster at ${server} within --timeout=${opts.timeoutText}: ${lastError!.message} ` +
          "(pass --skip-validation to write the kubeconfig anyway)",
      );
    }
  }
}
