// Opens the login URL in the user's browser: $BROWSER if set, else xdg-open if on PATH.
// Failing to open is not an error: the URL is printed for the user to open by hand.
import { spawn } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { delimiter, join } from "node:path";

async function onPath(command: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  for (const dir of (env.PATH ?? "").split(delimiter).filter(Boolean)) {
    try {
      await access(join(dir, command), constants.X_OK);
      return true;
    } catch {}
  }
  return false;
}

/** Resolves once the opener started; rejects with why it could not. */
export async function openURL(url: string, env: NodeJS.ProcessEnv): Promise<void> {
  let command = env.BROWSER;
  if (!command) {
    if (!(await onPath("xdg-open", env))) throw new Error("no $BROWSER set and xdg-open is not on PATH");
    command = "xdg-open";
  }
  const child = spawn(command, [url], { env, stdio: "ignore", detached: true });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  child.unref();
}
