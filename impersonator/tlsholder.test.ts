import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Holder, sameValue } from "../kube/holder.ts";
import { ProxyCredentials } from "./credentials.ts";
import { composedProxyTLS } from "./tlsholder.ts";
import type { ProxyTLS } from "./types.ts";

describe("composedProxyTLS", () => {
  it("serves the reconciler's chain and trusts its signers plus the cluster's client CA", () => {
    const credentials = new ProxyCredentials();
    const clusterCA = new Holder<string | undefined>(undefined, { equal: sameValue });
    const tls = composedProxyTLS(credentials, clusterCA);
    const seen: (ProxyTLS | undefined)[] = [];
    tls.onChange((t) => seen.push(t));
    assert.equal(tls.get(), undefined);

    clusterCA.set("CLUSTER CA");
    assert.equal(tls.get(), undefined, "nothing to serve before the reconciler has a chain");
    credentials.set({ serving: { certPEM: "CERT", keyPEM: "KEY" }, signerCAPEMs: ["SIGNER"] });
    assert.deepEqual(tls.get(), { certPEM: "CERT", keyPEM: "KEY", clientCAPEMs: ["SIGNER", "CLUSTER CA"] });
    clusterCA.set(undefined);
    assert.deepEqual(tls.get()?.clientCAPEMs, ["SIGNER"]);
    credentials.set({ serving: undefined, signerCAPEMs: ["SIGNER"] });
    assert.equal(tls.get(), undefined);
    assert.equal(seen.length, 3);
  });
});
