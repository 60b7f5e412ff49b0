// The file discipline of upstream's CLI caches (credentials and sessions): kubectl runs the exec
// plugin in concurrent processes, so every read-modify-write happens under `<path>.lock` and
// lands with an atomic rename: a reader sees the old file or the new one, never half of one.
import { randomBytes } from "node:crypto";
import { open, rename, rm, stat, utimes, writeFile } from "node:fs/promises";

/** Upstream's lock timeout and poll interval. */
export const defaultLockTimeoutMs = 10_000;
const lockPollMs = 10;
/**
 * A lock file untouched this long belongs to a process that died holding it. A live holder
 * touches it every heartbeatMs, so a browser login may hold it for minutes.
 */
const staleLockMs = 60_000;
const heartbeatMs = 10_000;

/**
 * Takes the lock of `path`; resolves with its release, or undefined when it stayed held past the
 * timeout (the caller then goes on without the cache rather than fail the kubectl command).
 */
export async function lockFile(
  path: string,
  timeoutMs = defaultLockTimeoutMs,
): Promise<(() => Promise<void>) | undefined> {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(lockPath, "wx", 0o600);
      await handle.close();
      const heartbeat = setInterval(() => {
        const now = new Date();
        utimes(lockPath, now, now).catch(() => {});
      }, heartbeatMs);
      heartbeat.unref();
      return () => {
        clearInterval(heartbeat);
        return rm(lockPath, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const held = await stat(lockPath).catch(() => undefined);
    if (held && Date.now() - held.mtimeMs > staleLockMs) {
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, lockPollMs));
  }
}

/** Replaces `path` with `text` (mode 0600) in one rename. */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}
