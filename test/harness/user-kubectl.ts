// kubectl as a person who uses a `pinniped login oidc` kubeconfig: when the exec plugin prints
// its login link on kubectl's stderr, the person's browser (a real headless Chromium, through
// browser.ts) opens it and signs in, while kubectl waits for the plugin. Shared by the OIDC
// end-to-end test and the demo.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { type BrowserLogin, loginWithBrowser } from "./browser.ts";
import type { KubectlResult } from "./cluster.ts";

/** What `pinniped login oidc` prints on stderr (upstream's wording), with the URL in group 1. */
export const loginPrompt = /Log in by visiting this link:\n\n {4}(https:\/\/\S+)\n/;

export interface UserKubectlResult extends KubectlResult {
  /** How many times the browser signed in (0 when a cached credential or session was used). */
  browserLogins: number;
}

export interface UserKubectlOptions {
  binDir: string;
  kubeconfig: string;
  /** kubectl's discovery cache, so that nothing lands in ~/.kube. */
  cacheDir: string;
  login: BrowserLogin;
  /** Called with the login URL before the browser opens it. */
  onLoginURL?: (url: string) => void;
  timeoutMs?: number;
  /** How long the person takes before the browser opens the link (0 unless given). */
  loginDelayMs?: number;
  /** Added to this process's environment, e.g. a PATH that picks the `pinniped` kubectl runs. */
  env?: NodeJS.ProcessEnv;
}

export function userKubectl(args: string[], options: UserKubectlOptions): Promise<UserKubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      join(options.binDir, "kubectl"),
      ["--kubeconfig", options.kubeconfig, "--cache-dir", options.cacheDir, ...args],
      {
        stdio: ["ignore", "pipe", "pipe"],
        timeout: options.timeoutMs ?? 120_000,
        env: { ...process.env, ...options.env },
      },
    );
    let stdout = "";
    let stderr = "";
    let browserLogins = 0;
    let browsing: Promise<unknown> = Promise.resolve();
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk;
      const url = loginPrompt.exec(stderr)?.[1];
      if (url && browserLogins === 0) {
        browserLogins++;
        options.onLoginURL?.(url);
        // A failed browser login is reported after kubectl exits, with kubectl's own output.
        const delay = new Promise((r) => setTimeout(r, options.loginDelayMs ?? 0));
        browsing = delay.then(() => loginWithBrowser(url, options.login));
      }
    });
    child.on("error", reject);
    child.on("close", (code) => {
      browsing.then(
        () => resolve({ code: code ?? 1, stdout, stderr, browserLogins }),
        (err: unknown) =>
          reject(new Error(`the browser login failed: ${(err as Error).message}\nkubectl stderr: ${stderr}`)),
      );
    });
  });
}
