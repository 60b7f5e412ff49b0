// The on-disk ExecCredential cache (upstream's internal/execcredcache): a burst of kubectl
// calls, each running the exec plugin, should cost one TokenCredentialRequest, not one each.
// kubectl processes run concurrently, so the file is locked and replaced atomically (lockedfile.ts).
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { parse, stringify } from "yaml";
import { lockFile, writeFileAtomically } from "./lockedfile.ts";

export const cacheAPIVersion = "config.supervisor.pinniped.dev/v1alpha1";
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
    const release = await lockFile(this.path);
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
    await writeFileAtomically(
      this.path,
      stringify({ apiVersion: cacheAPIVersion, kind: cacheKind, credentials: entries }),
    );
  }
}
