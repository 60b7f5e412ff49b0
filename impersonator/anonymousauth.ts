// Whether the cluster lets anonymous callers in, decided as upstream decides it: an unauthenticated
// GET of kube-apiserver's /healthz. 200 (system:public-info-viewer lets it through) and 403 (the
// caller was authenticated as system:anonymous but not authorized) both mean anonymous
// authentication is on; 401 means it is off. Upstream probes once when its proxy starts; here the
// answer is remembered for a minute and asked again after that, so a cluster that changes its
// `--anonymous-auth` is followed without restarting the Concierge.
import { request as httpsRequest } from "node:https";
import type { Clock } from "../kube/clock.ts";
import { discardLogger, type Logger } from "../observability/logger.ts";
import { type AnonymousPolicy, callWithDeadline, conciergeCredentialRequest } from "./authn.ts";

/** Resolves true when kube-apiserver authenticates requests without credentials as system:anonymous. */
export type AnonymousAuthProbe = (signal: AbortSignal) => Promise<boolean>;

export interface ProbeTarget {
  /** kube-apiserver, e.g. `https://10.96.0.1:443`; a path, if any, prefixes /healthz. */
  url: string;
  /** Undefined: the system's roots. */
  caPEM?: string;
  servername?: string;
}

export class AnonymousProbeError extends Error {
  override readonly name = "AnonymousProbeError";
}

/** One credential-less GET of /healthz on its own connection (never a pooled one that carries a token). */
export function probeAnonymousAuthentication(target: ProbeTarget): AnonymousAuthProbe {
  const base = new URL(target.url);
  const path = `${base.pathname.replace(/\/+$/, "")}/healthz`;
  return (signal) =>
    new Promise<boolean>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: base.hostname.replace(/^\[(.*)\]$/, "$1"),
          port: Number(base.port || 443),
          path,
          method: "GET",
          agent: false,
          minVersion: "TLSv1.2",
          ...(target.caPEM ? { ca: target.caPEM } : {}),
          ...(target.servername ? { servername: target.servername } : {}),
          headers: {
            accept: "application/json, */*",
            "user-agent": "pinniped-concierge-impersonation-proxy",
          },
          signal,
        },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          if (code === 200 || code === 403) resolve(true);
          else if (code === 401) resolve(false);
          else reject(new AnonymousProbeError(`unexpected HTTP ${code} from an anonymous GET of /healthz`));
        },
      );
      req.on("error", reject);
      req.end();
    });
}

export const anonymousProbeTTLMs = 60_000;
/** After a failed probe, how long the narrow policy holds before the next try. */
export const anonymousProbeRetryMs = 5_000;
const probeTimeoutMs = 10_000;

/**
 * Which anonymous requests the proxy forwards as system:anonymous (then authorizes like any other):
 * every one when the cluster allows anonymous authentication, as kube-apiserver itself would;
 * otherwise only the Concierge's credential requests (conciergeCredentialRequest), the one way a
 * caller without credentials gets some. While the cluster's answer is unknown (a probe failed),
 * the narrow policy holds.
 */
export function clusterAnonymousPolicy(options: {
  probe: AnonymousAuthProbe;
  clock: Clock;
  log?: Logger;
  ttlMs?: number;
  retryMs?: number;
}): AnonymousPolicy {
  const log = options.log ?? discardLogger();
  const ttlMs = options.ttlMs ?? anonymousProbeTTLMs;
  const retryMs = options.retryMs ?? anonymousProbeRetryMs;
  let known: { enabled: boolean; until: number } | undefined;
  let inFlight: Promise<boolean> | undefined;

  const enabled = (): Promise<boolean> => {
    if (known && options.clock.now() < known.until) return Promise.resolve(known.enabled);
    // One probe at a time; it is not tied to any caller, so a caller that leaves does not cancel it.
    inFlight ??= callWithDeadline(new AbortController().signal, probeTimeoutMs, options.probe)
      .then(
        (answer) => {
          if (known?.enabled !== answer) {
            log.info("probed whether the cluster allows anonymous authentication", { enabled: answer });
          }
          known = { enabled: answer, until: options.clock.now() + ttlMs };
          return answer;
        },
        (err: unknown) => {
          log.warn("could not tell whether the cluster allows anonymous authentication", {
            error: err instanceof Error ? err.message : String(err),
          });
          known = { enabled: false, until: options.clock.now() + retryMs };
          return false;
        },
      )
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  return async (info, signal) => {
    if (conciergeCredentialRequest(info)) return true;
    signal.throwIfAborted();
    return enabled();
  };
}
