// The on-disk ExecCredential cache (upstream's internal/execcredcache): a burst of kubectl
// calls, each running the exec plugin, should cost one TokenCredentialRequest, not one each.
//
// A hit is the hot path of every kubectl command: it reads the file without the lock (writers
// replace it with an atomic rename, so a reader sees a whole file) and writes nothing. Upstream
// rewrites the file on every hit to record lastUsedTimestamp, which nothing here reads: entries
// are pruned by expiry and creation time. A miss takes the lock, looks again (another process
// may have just exchanged), exchanges, and writes.
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { readCacheList, writeCacheList } from "./cachefile.ts";
import { lockFile } from "./lockedfile.ts";

export const cacheKind = "CredentialCache";
/**
 * A cached credential is handed out only while it has at least this long left: kubectl uses it
 * for the whole command, and a certificate that expires mid-command fails that command.
 */
export const expiryMarginMs = 30_000;
/** Entries older than this are dropped whatever their expiry, as upstream does. */
export const maxAgeMs = 60 * 60_000;

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

export interface CredentialCacheOptions {
  now?: () => Date;
  /** Hears one line about a cache file that is ignored (bad mode, bad content). */
  warn?: (line: string) => void;
  /** How long a miss waits for another process's exchange before exchanging itself. */
  lockTimeoutMs?: number;
}

export class CredentialCache {
  readonly path: string;
  readonly #now: () => Date;
  readonly #warn: (line: string) => void;
  readonly #lockTimeoutMs: number | undefined;

  constructor(path: string, options: CredentialCacheOptions = {}) {
    this.path = path;
    this.#now = options.now ?? (() => new Date());
    this.#warn = options.warn ?? (() => {});
    this.#lockTimeoutMs = options.lockTimeoutMs;
  }

  /**
   * The credential stored under `key` if it has more than the margin left; otherwise
   * `create()`'s, stored. The lock is held across `create()`, so a burst of kubectl processes
   * does one exchange: the others wait, then find it. One that waits longer than the lock
   * timeout exchanges for itself rather than fail the kubectl command.
   */
  async getOrCreate(key: string, create: () => Promise<ExecCredentialStatus>): Promise<ExecCredentialStatus> {
    let warned = false;
    const warnOnce = (line: string) => {
      if (!warned) this.#warn(line);
      warned = true;
    };
    const hit = this.#usable(await this.#read(warnOnce), key);
    if (hit) return hit.credential;
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const release = await lockFile(this.path, this.#lockTimeoutMs);
    if (!release) return create();
    try {
      const entries = this.#prune(await this.#read(warnOnce));
      const found = this.#usable(entries, key);
      if (found) return found.credential;
      const credential = await create();
      const at = this.#now().toISOString();
      const kept = entries.filter((e) => e.key !== key);
      kept.push({ key, creationTimestamp: at, lastUsedTimestamp: at, credential });
      await writeCacheList(this.path, cacheKind, "credentials", this.#prune(kept));
      return credential;
    } finally {
      await release();
    }
  }

  #usable(entries: Entry[], key: string): Entry | undefined {
    const now = this.#now().getTime();
    const hit = entries.find((e) => e.key === key);
    const expiry = Date.parse(hit?.credential.expirationTimestamp ?? "");
    return hit && expiry - now > expiryMarginMs && now - Date.parse(hit.creationTimestamp) < maxAgeMs
      ? hit
      : undefined;
  }

  async #read(warn: (line: string) => void): Promise<Entry[]> {
    const list = await readCacheList(this.path, cacheKind, "credentials", warn);
    return (list as Entry[]).filter(
      (e) =>
        typeof e?.key === "string" &&
        typeof e.creationTimestamp === "string" &&
        typeof e.credential === "object" &&
        e.credential !== null,
    );
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
}
