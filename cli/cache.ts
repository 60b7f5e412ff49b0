// The on-disk ExecCredential cache (upstream's internal/execcredcache): a burst of kubectl
// calls, each running the exec plugin, should cost one TokenCredentialRequest, not one each.
// kubectl processes run concurrently, so every read-modify-write happens under a lock file and
// lands with an atomic rename: a reader sees the old file or the new one, never half of one.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { parse, stringify } from "yaml";

export const cacheAPIVersion = "config.supervisor.pinniped.dev/v1alpha1";
export const cacheKind = "CredentialCache";
/**
 * A cached credential is handed out only while it has at least this long left: kubectl uses it
 * for the whole command, and a certificate that expires mid-command fails that command.
 */
export const expiryMarginMs = 30_000;
/** Entries older than this are dropped whatever their expiry, as upstream does. */
export const maxAgeMs = 60 * 60_000;
const lockTimeoutMs = 10_000;
const lockPollMs = 10;
/** A lock file this old belongs to a process that died holding it (a TCR times out after 30 s). */
const staleLockMs = 60_000;

export interface ExecCredentialStatus {
  expirationTimestamp?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  token?: string;
}

interface Entry {
  key: string;
  creationTimestamp: string;
  lastUsedTimestamp: string;
  credential: ExecCredentialStatus;
}

/** The cache key: a hash, so the file names no endpoint, authenticator or token in clear. */
export function cacheKey(parts: {
  endpoint: string;
  caBundleData: string;
  apiGroupSuffix: string;
  authenticatorType: string;
  authenticatorName: string;
  token: string;
}): string {
  const { token, ...rest } = parts;
  const tokenHash = createHash("sha256").update(token).digest("hex");
  return createHash("sha256")
    .update(JSON.stringify({ ...rest, tokenHash }))
    .digest("hex");
}

export class CredentialCache {
  readonly path: string;
  readonly #now: () => Date;

  constructor(path: string, now: () => Date = () => new Date()) {
    this.path = path;
    this.#now = now;
  }

  /**
   * The credential stored under `key` if it has more than the margin left (marking it used);
   * otherwise `create()`'s, stored. The lock is held across `create()`, so a burst of kubectl
   * processes does one exchange: the others wait, then find it. One that waits longer than the
   * lock timeout exchanges for itself rather than fail the kubectl command.
   */
  async getOrCreate(key: string, create: () => Promise<ExecCredentialStatus>): Promise<ExecCredentialStatus> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const release = await this.#lock();
    if (!release) return create();
    try {
      const entries = this.#prune(await this.#read());
      const now = this.#now();
      const hit = entries.find((e) => e.key === key);
      const expiry = Date.parse(hit?.credential.expirationTimestamp ?? "");
      let credential: ExecCredentialStatus;
      if (hit && expiry - now.getTime() > expiryMarginMs) {
        hit.lastUsedTimestamp = now.toISOString();
        credential = hit.credential;
      } else {
        credential = await create();
        const at = this.#now().toISOString();
        const rest = entries.filter((e) => e.key !== key);
        entries.length = 0;
        entries.push(...rest, { key, creationTimestamp: at, lastUsedTimestamp: at, credential });
      }
      await this.#write(this.#prune(entries));
      return credential;
    } finally {
      await release();
    }
  }

  async #read(): Promise<Entry[]> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch {
      return [];
    }
    try {
      const doc = parse(text) as { apiVersion?: unknown; kind?: unknown; credentials?: unknown } | null;
      // Unreadable or another version: start over, as upstream does; it is only a cache.
      if (doc?.apiVersion !== cacheAPIVersion || doc.kind !== cacheKind || !Array.isArray(doc.credentials)) {
        return [];
      }
      return (doc.credentials as Entry[]).filter(
        (e) => typeof e?.key === "string" && typeof e.creationTimestamp === "string" && e.credential,
      );
    } catch {
      return [];
    }
  }

  /** Drops entries with no expiry, expired ones and ones older than maxAgeMs; oldest first. */
  #prune(entries: Entry[]): Entry[] {
    const now = this.#now().getTime();
    const kept = entries.filter((e) => {
      const expiry = Date.parse(e.credential.expirationTimestamp ?? "");
      const created = Date.parse(e.creationTimestamp);
      return expiry > now && now - created < maxAgeMs;
    });
    return kept.sort((a, b) => Date.parse(a.creationTimestamp) - Date.parse(b.creationTimestamp));
  }

  async #write(entries: Entry[]): Promise<void> {
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    const text = stringify({ apiVersion: cacheAPIVersion, kind: cacheKind, credentials: entries });
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, this.path);
  }

  /** Undefined when the lock stayed held past the timeout. */
  async #lock(): Promise<(() => Promise<void>) | undefined> {
    const lockPath = `${this.path}.lock`;
    const deadline = Date.now() + lockTimeoutMs;
    for (;;) {
      try {
        const handle = await open(lockPath, "wx", 0o600);
        await handle.close();
        return () => rm(lockPath, { force: true });
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
}
