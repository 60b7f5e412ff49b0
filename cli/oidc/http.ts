// HTTPS requests to the identity provider. Like upstream's --ca-bundle client, the given CAs
// replace the system roots; with none given the system roots apply.
import { request } from "node:https";

/** Upstream's per-request timeout for calls to the provider. */
const requestTimeoutMs = 60_000;

export interface HTTPResponse {
  status: number;
  contentType: string;
  text: string;
}

export async function httpsRequest(
  url: string,
  options: { ca: string[] | undefined; method?: "GET" | "POST"; form?: Record<string, string> },
): Promise<HTTPResponse> {
  const body = options.form ? new URLSearchParams(options.form).toString() : undefined;
  const headers: Record<string, string> = { Accept: "application/json", "User-Agent": "pinniped-cli" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    headers["Content-Length"] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? "GET",
        headers,
        ...(options.ca ? { ca: options.ca } : {}),
        minVersion: "TLSv1.2",
        signal: AbortSignal.timeout(requestTimeoutMs),
      },
      (res) => {
        res.setEncoding("utf8");
        let text = "";
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers["content-type"] ?? ""),
            text,
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
