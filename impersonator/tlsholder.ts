// A ProxyTLSSource that holds the current material and tells subscribers when it changes, and
// the proxy's TLS composed from what the impersonator-config reconciler publishes and the
// cluster's own client CA.
import { isDeepStrictEqual } from "node:util";
import { Holder } from "../kube/holder.ts";
import type { ProxyCredentials } from "./credentials.ts";
import type { ProxyTLS, ProxyTLSSource } from "./types.ts";

/** Subscribers hear only of real changes: each one rebuilds the listener's TLS context. */
export class ProxyTLSHolder extends Holder<ProxyTLS | undefined> implements ProxyTLSSource {
  constructor(tls?: ProxyTLS) {
    super(tls, { equal: isDeepStrictEqual });
  }
}

/**
 * The proxy's TLS material, kept up to date as either input changes: the reconciler's serving
 * chain, and every CA whose client certificates count (the proxy's signers, and the cluster's
 * client CA from kube-system/extension-apiserver-authentication once it is known).
 */
export function composedProxyTLS(
  credentials: ProxyCredentials,
  clusterClientCA: Holder<string | undefined>,
): ProxyTLSHolder {
  const tls = new ProxyTLSHolder();
  const recompute = () => {
    const { serving, signerCAPEMs } = credentials.get();
    const clusterCA = clusterClientCA.get();
    tls.set(
      serving && {
        certPEM: serving.certPEM,
        keyPEM: serving.keyPEM,
        clientCAPEMs: [...signerCAPEMs, ...(clusterCA ? [clusterCA] : [])],
      },
    );
  };
  credentials.onChange(recompute);
  clusterClientCA.onChange(recompute);
  recompute();
  return tls;
}
