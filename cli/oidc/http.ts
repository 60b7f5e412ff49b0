// HTTPS requests to the identity provider, and the same as a fetch() for openid-client. Like
// upstream's --ca-bundle client, the given CAs replace the system roots; with none given the
// system roots apply (Node's fetch cannot be given CAs without a dependency, node:https can).
import { request } from "node:https";

/** Upstream's per-request timeout for calls to the provider. */
const requestTimeoutMs = 60_000;

export interface HTTPResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export async function httpsRequest(
  url: string,
  options: {
    ca: string[] | undefined;
    method?: string;
    headers?: Record<string, string>;
    body?: string | undefined;
    signal?: AbortSignal | undefined;
  },
): Promise<HTTPResponse> {
  const headers: Record<string, string> = {
    Accept: "application/json",
    "User-Agent": "pinniped-cli",
    ...options.headers,
  };
  if (options.body !== undefined) headers["Content-Length"] = String(Buffer.byteLength(options.body));
  const timeout = AbortSignal.timeout(requestTimeoutMs);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? "GET",
        headers,
        ...(options.ca ? { ca: options.ca } : {}),
        minVersion: "TLSv1.2",
        signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
      },
      (res) => {
        res.setEncoding("utf8");
        let text = "";
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => {
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) {
            if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
          }
          resolve({ status: res.statusCode ?? 0, headers: out, text });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** A fetch() over httpsRequest, trusting `ca`: what openid-client calls for every request. */
export function fetchTrusting(
  ca: string[] | undefined,
): (
  url: string,
  init: { method?: string; headers?: unknown; body?: unknown; signal?: AbortSignal | null },
) => Promise<Response> {
  return async (url, init) => {
    const headers: Record<string, string> = {};
    new Headers(init.headers as ConstructorParameters<typeof Headers>[0]).forEach((v, k) => {
      headers[k] = v;
    });
    const body =
      init.body === undefined || init.body === null
        ? undefined
        : init.body instanceof URLSearchParams
          ? init.body.toString()
          : String(init.body);
    const res = await httpsRequest(url, {
      ca,
      ...(init.method ? { method: init.method } : {}),
      headers,
      body,
      signal: init.signal ?? undefined,
    });
    const empty = res.status === 204 || res.status === 304;
    return new Response(empty ? null : res.text, { status: res.status, headers: res.headers });
  };
}
