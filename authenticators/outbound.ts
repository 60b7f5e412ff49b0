// Which addresses the Concierge may dial for identity providers and webhooks. Link-local
// addresses are where clouds serve instance metadata (169.254.169.254 and friends hand out node
// credentials), so an authenticator's URL must not reach them unless the operator opts in. Host
// names are checked after resolution too, since any name (or a decimal form like 2852039166)
// can resolve to such an address.
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { BlockList, isIP } from "node:net";

const linkLocal = new BlockList();
linkLocal.addSubnet("169.254.0.0", 16, "ipv4");
linkLocal.addSubnet("fe80::", 10, "ipv6");
// Metadata services outside the link-local ranges: AWS's IPv6 one and Alibaba Cloud's.
linkLocal.addAddress("fd00:ec2::254", "ipv6");
linkLocal.addAddress("100.100.100.200", "ipv4");

let allowLinkLocal = false;

/** The operator's opt-in (config `outbound.allowLinkLocalAddresses`), set once at start. */
export function setAllowLinkLocalAddresses(allow: boolean): void {
  allowLinkLocal = allow;
}

export const linkLocalOptIn = "outbound.allowLinkLocalAddresses in the Concierge config";

/** Why this IP address may not be dialled, or undefined. IPv4-mapped IPv6 counts as IPv4. */
export function refusedAddress(ip: string): string | undefined {
  const family = isIP(ip);
  if (allowLinkLocal || family === 0 || !linkLocal.check(ip, family === 6 ? "ipv6" : "ipv4"))
    return undefined;
  return `${ip} is a link-local or cloud metadata address, which is not dialled unless ${linkLocalOptIn} allows it`;
}

/**
 * The host of a URL or endpoint, checked as what a dialer would make of it: brackets removed,
 * and numeric forms (`2852039166`, `0251.0376.0251.0376`) read as WHATWG URL reads them.
 */
export function refusedHost(host: string): string | undefined {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0) return refusedAddress(bare);
  let normalized: string;
  try {
    normalized = new URL(`https://${bare}/`).hostname;
  } catch {
    return undefined;
  }
  return isIP(normalized) !== 0 ? refusedAddress(normalized) : undefined;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** dns.lookup for sockets and agents: fails when the name resolves to a refused address. */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, options.all ? [] : "");
    const refused = addresses.map((a) => refusedAddress(a.address)).find((r) => r !== undefined);
    if (refused) {
      const error: NodeJS.ErrnoException = new Error(`${hostname} resolves to ${refused}`);
      error.code = "EREFUSEDADDRESS";
      return callback(error, options.all ? [] : "");
    }
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first)
      return callback(Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" }), "");
    callback(null, first.address, first.family);
  });
}
