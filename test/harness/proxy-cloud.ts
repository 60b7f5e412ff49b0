// The impersonation proxy on the real node behind a LoadBalancer Service, with the test as the
// cloud: it writes the Service's `status.loadBalancer.ingress`, and kube-proxy routes that
// address to the pods. Shared by the proxy's end-to-end suite and the version matrix's smoke test.
import type { NodeCluster } from "../../hack/node/cluster.ts";
import { conciergeNamespace } from "../../hack/node/install-concierge.ts";
import { eventually } from "./eventually.ts";

const issuerName = "pinniped-concierge-config";
export const lbService = "pinniped-concierge-impersonation-proxy-load-balancer";

export interface ProxyStrategy {
  type: string;
  status: string;
  reason: string;
  message: string;
  frontend?: { impersonationProxyInfo?: { endpoint: string; certificateAuthorityData: string } };
}

/** The CredentialIssuer's ImpersonationProxy strategy, as the leader last wrote it. */
export async function proxyStrategy(node: NodeCluster): Promise<ProxyStrategy | undefined> {
  const issuer = JSON.parse(await node.kubectl(["get", "credentialissuer", issuerName, "-o", "json"])) as {
    status?: { strategies?: ProxyStrategy[] };
  };
  return issuer.status?.strategies?.find((s) => s.type === "ImpersonationProxy");
}

/** Whether the proxy serves: its strategy Success, Listening. */
export async function proxyListening(node: NodeCluster): Promise<boolean> {
  const s = await proxyStrategy(node);
  return s?.status === "Success" && s.reason === "Listening";
}

/** kubectl's arguments for the operator's switch: the proxy's mode, behind a LoadBalancer Service. */
export function proxyModeArgs(mode: "enabled" | "auto" | "disabled"): string[] {
  return [
    "patch",
    "credentialissuer",
    issuerName,
    "--type=merge",
    "-p",
    JSON.stringify({ spec: { impersonationProxy: { mode, service: { type: "LoadBalancer" } } } }),
  ];
}

/** kubectl's arguments that play the cloud: the proxy's LoadBalancer Service gets the address `ip`. */
export function loadBalancerAddressArgs(ip: string): string[] {
  return [
    "patch",
    "service",
    "-n",
    conciergeNamespace,
    lbService,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status: { loadBalancer: { ingress: [{ ip }] } } }),
  ];
}

/** Turns the proxy to `mode`, as the operator would. */
export function setProxyMode(node: NodeCluster, mode: "enabled" | "auto" | "disabled"): Promise<string> {
  return node.kubectl(proxyModeArgs(mode));
}

/** Plays the cloud: once the proxy's LoadBalancer Service exists, it gets the address `ip`. */
export async function giveLoadBalancerAddress(node: NodeCluster, ip: string): Promise<void> {
  await eventually(
    "the proxy's LoadBalancer Service",
    () => node.kubectl(["get", "service", "-n", conciergeNamespace, lbService]),
    { timeoutMs: 120_000 },
  );
  await node.kubectl(loadBalancerAddressArgs(ip));
}
