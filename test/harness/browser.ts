// A real headless Chromium (Debian's, driven by playwright-core) that plays the user in browser
// logins: it opens the login URL the pinniped CLI printed, signs in on oidc-provider's
// development login page, accepts the consent page, and follows the redirect to the CLI's
// localhost callback. One browser serves every login; each login gets a fresh context, so no
// provider session cookie carries over from one login to the next.
import { type Browser, chromium } from "playwright-core";

export interface BrowserLogin {
  username: string;
  password: string;
  /** How long the whole login may take; default 30 s. */
  timeoutMs?: number;
}

export interface BrowserLoginResult {
  /** The callback URL the browser ended on (it carries a one-time authorization code). */
  finalURL: string;
  /** The text of the CLI's callback page, e.g. "you have been logged in and may now close this tab". */
  pageText: string;
}

const chromiumPath = "/usr/bin/chromium";
let launched: Promise<Browser> | undefined;

function browser(): Promise<Browser> {
  launched ??= chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return launched;
}

/**
 * Logs in at `url` (an authorize URL of the test OIDC provider) and resolves once the CLI's
 * callback page has loaded. The provider's certificate comes from a throwaway test CA Chromium
 * cannot be told to trust, so certificate errors are ignored in this login's context only, and
 * the context may reach nothing but loopback addresses and the provider's own host (on a real
 * node, its bridge address).
 */
export async function loginWithBrowser(url: string, login: BrowserLogin): Promise<BrowserLoginResult> {
  const timeout = login.timeoutMs ?? 30_000;
  const context = await (await browser()).newContext({ ignoreHTTPSErrors: true });
  try {
    // The provider's pages import web fonts; nothing outside this machine is needed or wanted.
    const allowed = new Set(["127.0.0.1", "localhost", new URL(url).hostname]);
    await context.route(
      (u) => !allowed.has(u.hostname),
      (route) => route.abort(),
    );
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    const atCallback = page.waitForURL((u) => u.protocol === "http:" && u.pathname === "/callback", {
      timeout,
      waitUntil: "load",
    });
    await page.goto(url);
    await page.locator('input[name="login"]').fill(login.username);
    await page.locator('input[name="password"]').fill(login.password);
    await page.locator('button[type="submit"]').click();
    // The consent page comes next unless the provider already holds a grant for this client.
    const consent = page.getByRole("button", { name: "Continue" });
    await Promise.race([atCallback, consent.waitFor({ state: "visible" })]);
    if (await consent.isVisible().catch(() => false)) await consent.click();
    await atCallback;
    return { finalURL: page.url(), pageText: ((await page.locator("body").textContent()) ?? "").trim() };
  } finally {
    await context.close();
  }
}

/** Closes the shared browser; the next login launches a new one. */
export async function closeBrowser(): Promise<void> {
  const current = launched;
  launched = undefined;
  if (current) await (await current).close();
}
