// OIDC discovery over the CA bundle's HTTPS client, with errors worded as Go's net/http and
// go-oidc word them, because upstream's DiscoveryURLValid messages are made of those words
// (`Get "<url>": dial tcp 127.0.0.1:1234: connect: connection refused`).
import { STATUS_CODES } from "node:http";
import { HTTPSError, httpsRequest } from "../../authenticators/https.ts";
import { goQuote } from "../../webhooks/fielderror.ts";
import type { DiscoveryProbe } from "./decide.ts";

/** A discovery document is small; anything bigger is not one. */
const maxDiscoveryBytes = 1024 * 1024;
/** Upstream's HTTP client timeout for discovery and JWKS ("copied from Kube OIDC code"). */
export const probeTimeoutMs = 30_000;

const unknownAuthority = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
]);

/**
 * The transport failure of a request as Go's net/http would print it, for the failures an
 * administrator meets while configuring an issuer; others keep Node's words.
 */
export function goTransportError(err: unknown): string {
  const cause = (err instanceof HTTPSError ? err.cause : err) as
    | (Error & { code?: string; address?: string; port?: number; hostname?: string })
    | undefined;
  const code = cause?.code ?? "";
  if (code === "ECONNREFUSED" && cause?.address) {
    return `dial tcp ${cause.address}:${cause.port}: connect: connection refused`;
  }
  if (code === "ENOTFOUND" && cause?.hostname) return `dial tcp: lookup ${cause.hostname}: no such host`;
  if (unknownAuthority.has(code)) {
    return "tls: failed to verify certificate: x509: certificate signed by unknown authority";
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return "tls: failed to verify certificate: x509: certificate has expired or is not yet valid";
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `tls: failed to verify certificate: x509: ${cause?.message ?? ""}`;
  }
  if (err instanceof Error && /timed out/.test(err.message)) {
    return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
  }
  return err instanceof Error ? err.message : String(err);
}

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
