// A ProxyTLSSource that holds the current material and tells subscribers when it changes.
import { isDeepStrictEqual } from "node:util";
import { Holder } from "../kube/holder.ts";
import type { ProxyTLS, ProxyTLSSource } from "./types.ts";

/** Subscribers hear only of real changes: each one rebuilds the listener's TLS context. */
export class ProxyTLSHolder extends Holder<ProxyTLS | undefined> implements ProxyTLSSource {
  constructor(tls?: ProxyTLS) {
    super(tls, { equal: isDeepStrictEqual });
  }
}
