// The localhost listener the provider redirects the browser to. It checks the state, hands the
// callback's parameters to `redeem` and answers the browser with the outcome, so the user sees in the tab what
// the CLI will report. The first callback with the right state ends the login either way.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

export const callbackPath = "/callback";

export interface CallbackListener<T> {
  /** `http://127.0.0.1:<port>/callback` */
  redirectURI: string;
  /** The outcome of the first callback that carries the expected state. */
  result: Promise<T>;
  close(): Promise<void>;
}

const escapeHTML = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
  });
  res.end(
    `<!DOCTYPE html><html><head><title>Pinniped</title></head><body><p>${escapeHTML(message)}</p></body></html>\n`,
  );
}

async function params(req: IncomingMessage): Promise<URLSearchParams> {
  if (req.method !== "POST") return new URL(req.url ?? "/", "http://127.0.0.1").searchParams;
  let body = "";
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 1 << 20) break;
  }
  return new URLSearchParams(body);
}

export async function listenForCallback<T>(options: {
  port: number;
  state: string;
  /** Gets every parameter of the callback (code, state, iss…), for openid-client's checks. */
  redeem: (callback: URLSearchParams) => Promise<T>;
}): Promise<CallbackListener<T>> {
  let settle: { resolve: (v: T) => void; reject: (e: Error) => void } | undefined;
  const result = new Promise<T>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // The caller may close first (timeout); an unobserved rejection must not crash the process.
  result.catch(() => {});
  let done = false;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    if (path !== callbackPath || (req.method !== "GET" && req.method !== "POST")) {
      res.writeHead(404).end();
      return;
    }
    void (async () => {
      const p = await params(req);
      if (done) return page(res, 410, "this login has already finished; you may close this tab");
      if (p.get("state") !== options.state) {
        done = true;
        page(res, 403, "missing or invalid state parameter");
        return settle?.reject(new Error("error handling callback: missing or invalid state parameter"));
      }
      done = true;
      const error = p.get("error");
      if (error) {
        const desc = p.get("error_description");
        const message = `login failed with code "${error}"${desc ? `: ${desc}` : ""}`;
        page(res, 400, message);
        return settle?.reject(new Error(`error handling callback: ${message}`));
      }
      try {
        const value = await options.redeem(p);
        page(res, 200, "you have been logged in and may now close this tab");
        settle?.resolve(value);
      } catch (err) {
        const message = `could not complete authorization code exchange: ${(err as Error).message}`;
        page(res, 400, message);
        settle?.reject(new Error(`error handling callback: ${message}`));
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(new Error(`could not open callback listener: ${err.message}`)));
    server.listen(options.port, "127.0.0.1", resolve);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    redirectURI: `http://127.0.0.1:${port}${callbackPath}`,
    result,
    async close() {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
}
