// TLS 1.2 cipher suites as upstream names them in its config (`tls.onedottwo.allowedCiphers`,
// Go's crypto/tls names) and as OpenSSL, and so Node's `ciphers` option, names them. Upstream
// (internal/crypto/ptls) accepts the suites of its profiles: the six ECDHE AEAD suites of its
// Default profile and the four ECDHE CBC suites it keeps for LDAP clients; the allowed list
// narrows each profile to the suites it shares with it, and a profile that shares none keeps its
// own. TLS 1.3 suites are not configurable, there or here.

/** The Default profile's TLS 1.2 suites, upstream's order. */
const defaultSuites: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
};

/** Accepted by upstream's config, used only by its LDAP clients (which this Concierge has none of). */
const ldapOnlySuites: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
};

/** Go's older names for the ChaCha20 suites, which upstream still takes. */
const legacyNames: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
};

const knownNames = [...Object.keys(defaultSuites), ...Object.keys(ldapOnlySuites)];

/** TLS 1.3's suites (OpenSSL names): always offered, as upstream's Go offers them. */
const tls13Suites = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

/**
 * The allowed list, checked: its Go names (legacy ChaCha20 names made current), or upstream's
 * error naming the unknown ones and the list they must come from.
 */
export function validateAllowedCiphers(
  names: readonly string[],
): { ok: true; names: string[] } | { ok: false; error: string } {
  const current = names.map((n) => legacyNames[n] ?? n);
  const unknown = current.filter((n) => !knownNames.includes(n));
  if (unknown.length > 0)
    return {
      ok: false,
      error: `unrecognized ciphers [${unknown.join(", ")}], ciphers must be from list [${knownNames.join(", ")}]`,
    };
  return { ok: true, names: current };
}

/**
 * Node's `ciphers` for a server of upstream's Default profile: TLS 1.3's suites, then the
 * profile's TLS 1.2 suites that `allowed` (validated Go names) names, in the profile's order; all
 * of them when `allowed` is empty or names none of them, as upstream.
 */
export function defaultProfileCiphers(allowed: readonly string[] = []): string {
  const all = Object.keys(defaultSuites);
  const kept = all.filter((n) => allowed.includes(n));
  return [...tls13Suites, ...(kept.length > 0 ? kept : all).map((n) => defaultSuites[n]!)].join(":");
}
