// OIDC discovery over the CA bundle's HTTPS client, with errors worded as Go's net/http
// (authenticators/goerrors.ts) and go-oidc word them, because upstream's DiscoveryURLValid
// messages are made of those words (`Get "<url>": dial tcp 127.0.0.1:1234: connect: connection refused`).
import { STATUS_CODES } from "node:http";
import { goTransportError } from "../../authenticators/goerrors.ts";
import { httpsRequest } from "../../authenticators/https.ts";
import { goQuote } from "../../kube/goquote.ts";
import type { DiscoveryProbe } from "./decide.ts";

/** A discovery document is small; anything bigger is not one. */
const maxDiscoveryBytes = 1024 * 1024;
/** Upstream's HTTP client timeout for discovery and JWKS ("copied from Kube OIDC code"). */
export const probeTimeoutMs = 30_000;

/** go-oidc's NewProvider up to decoding the document; the issuer check is `decide`'s. */
export async function discover(
  url: string,
  caPEM: string | undefined,
  signal?: AbortSignal,
): Promise<DiscoveryProbe> {
  let res: Awaited<ReturnType<typeof httpsRequest>>;
  try {
    res = await httpsRequest(url, { caPEM, signal, timeoutMs: probeTimeoutMs, maxBytes: maxDiscoveryBytes });
  } catch (err) {
    return { ok: false, error: `Get ${goQuote(url)}: ${goTransportError(err)}` };
  }
  const body = res.body.toString("utf8");
  if (res.status !== 200) {
    return { ok: false, error: `${res.status} ${STATUS_CODES[res.status] ?? ""}: ${body}` };
  }
  try {
    return { ok: true, document: JSON.parse(body) };
  } catch (err) {
    const contentType = String(res.headers["content-type"] ?? "");
    const why = (err as Error).message;
    const detail =
      contentType.split(";")[0]?.trim().toLowerCase() === "application/json"
        ? `got Content-Type = application/json, but could not unmarshal as JSON: ${why}`
        : `expected Content-Type = application/json, got ${goQuote(contentType)}: ${why}`;
    return { ok: false, error: `oidc: failed to decode provider discovery object: ${detail}` };
  }
}
