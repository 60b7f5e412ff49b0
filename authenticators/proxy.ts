// HTTPS_PROXY and NO_PROXY for identity providers and webhooks, read as upstream's Go reads them
// (golang.org/x/net/http/httpproxy): every call here is https, so HTTP_PROXY plays no part (as in
// Go); localhost and loopback addresses are never proxied; NO_PROXY takes `*`, host names (a
// leading `.` or `*.` matches subdomains only, a bare name the name and its subdomains), IP
// addresses and CIDR ranges, each optionally with `:port`.
import { isIP, connect as netConnect, type Socket } from "node:net";
import { joinHostPort } from "./goerrors.ts";
import { guardedLookup } from "./outbound.ts";

let environment: NodeJS.ProcessEnv = process.env;

/** Where proxy settings come from; process.env unless a test says otherwise. */
export function setProxyEnvironment(env: NodeJS.ProcessEnv): void {
  environment = env;
}

const get = (env: NodeJS.ProcessEnv, name: string) => env[name] || env[name.toLowerCase()] || "";

function bare(host: string): string {
  return (host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host).toLowerCase();
}

function splitHostPort(entry: string): [string, string] {
  const colon = entry.lastIndexOf(":");
  if (colon > entry.lastIndexOf("]") && isIP(entry) === 0)
    return [entry.slice(0, colon), entry.slice(colon + 1)];
  return [entry, ""];
}

function inCIDR(ip: string, cidr: string): boolean | undefined {
  const [network = "", bitsText = ""] = cidr.split("/");
  const family = isIP(network);
  const bits = Number(bitsText);
  if (family === 0 || !/^\d+$/.test(bitsText) || bits > (family === 4 ? 32 : 128)) return undefined;
  if (isIP(ip) !== family) return false;
  const toBigInt = (address: string) =>
    family === 4
      ? address.split(".").reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n)
      : expandIPv6(address).reduce((n, part) => (n << 16n) | BigInt(Number.parseInt(part, 16)), 0n);
  const width = family === 4 ? 32n : 128n;
  const shift = width - BigInt(bits);
  return toBigInt(ip) >> shift === toBigInt(network) >> shift;
}

function expandIPv6(address: string): string[] {
  const [head = "", tail = ""] = address.split("::");
  const left = head ? head.split(":") : [];
  const right = address.includes("::") && tail ? tail.split(":") : [];
  const missing = 8 - left.length - right.length;
  return [...left, ...Array<string>(Math.max(missing, 0)).fill("0"), ...right];
}

const isLoopback = (ip: string) =>
  (isIP(ip) === 4 && ip.startsWith("127.")) ||
  (isIP(ip) === 6 && expandIPv6(ip).every((p, i) => Number.parseInt(p, 16) === (i === 7 ? 1 : 0)));

/** Whether NO_PROXY (or the loopback rule) sends `host:port` direct. */
export function bypassesProxy(host: string, port: number, noProxy: string): boolean {
  const h = bare(host);
  if (h === "localhost" || isLoopback(h)) return true;
  for (const raw of noProxy.split(",")) {
    const entry = raw.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    const cidr = entry.includes("/") && isIP(h) !== 0 ? inCIDR(h, entry) : undefined;
    if (cidr) return true;
    if (entry.includes("/")) continue;
    if (isIP(bare(entry)) !== 0) {
      if (bare(entry) === h) return true;
      continue;
    }
    const [withPortHost, entryPort] = splitHostPort(entry);
    if (entryPort !== "" && entryPort !== String(port)) continue;
    const entryHost = bare(withPortHost);
    if (isIP(entryHost) !== 0) {
      if (entryHost === h) return true;
      continue;
    }
    const suffix = entryHost.startsWith("*.") ? entryHost.slice(1) : entryHost;
    if (suffix.startsWith(".") ? h.endsWith(suffix) : h === suffix || h.endsWith(`.${suffix}`)) return true;
  }
  return false;
}

/** The proxy to reach `https://host:port` through, or undefined to dial it directly. */
export function proxyFor(host: string, port: number, env: NodeJS.ProcessEnv = environment): URL | undefined {
  const setting = get(env, "HTTPS_PROXY");
  if (setting === "" || bypassesProxy(host, port, get(env, "NO_PROXY"))) return undefined;
  // Go reads a proxy without a scheme as http://.
  const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(setting) ? setting : `http://${setting}`);
  if (url.protocol !== "http:") {
    throw new Error(`HTTPS_PROXY ${url.protocol}// proxies are not supported; use an http:// proxy`);
  }
  return url;
}

/** `Proxy-Authorization` for a proxy URL with user information, as Go sends it. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (proxy.username === "" && proxy.password === "") return undefined;
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return `Basic ${Buffer.from(credentials).toString("base64")}`;
}

const maxResponseHeadBytes = 16 * 1024;

/**
 * A TCP connection to `proxy` with an HTTP CONNECT tunnel to `host:port`: `socket` at once (so the
 * caller can destroy it on a deadline), `ready` once the proxy answered 200, paused, for TLS to
 * take over. A proxy that refuses rejects `ready` with its status line.
 */
export function openTunnel(proxy: URL, host: string, port: number): { socket: Socket; ready: Promise<void> } {
  const socket = netConnect({
    host: bare(proxy.hostname),
    port: Number(proxy.port || 80),
    lookup: guardedLookup,
  });
  const authority = joinHostPort(bare(host), port);
  const ready = new Promise<void>((resolve, reject) => {
    const authorization = proxyAuthorization(proxy);
    socket.once("connect", () => {
      socket.write(
        `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n` +
          (authorization ? `Proxy-Authorization: ${authorization}\r\n` : "") +
          "\r\n",
      );
    });
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > maxResponseHeadBytes) fail(new Error("proxy's response to CONNECT is too long"));
        return;
      }
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.pause();
      const statusLine = head.subarray(0, head.indexOf("\r\n")).toString("latin1");
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
      if (status !== "200") {
        fail(new Error(`proxy refused CONNECT ${authority}: ${statusLine.replace(/^HTTP\/1\.[01] /, "")}`));
        return;
      }
      const rest = head.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve();
    };
    const onEnd = () => fail(new Error(`proxy closed the connection before answering CONNECT ${authority}`));
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
  });
  // The caller reports socket errors; this keeps a rejected `ready` it no longer awaits quiet.
  ready.catch(() => {});
  return { socket, ready };
}
