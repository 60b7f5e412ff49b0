// Upstream's session cache file (pkg/oidcclient/filesession): the OIDC tokens of each login,
// keyed by issuer, client, scopes and redirect URI, so that the next kubectl command can reuse
// or refresh them instead of opening a browser. Same locking and atomic rename as the
// credential cache: concurrent kubectl processes must never see half a file.
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { CacheFileError, readCacheList, writeCacheList } from "../cachefile.ts";
import { lockFile } from "../lockedfile.ts";

const kind = "SessionCache";
/** Sessions nobody used for this long are dropped, as upstream does. */
export const maxUnusedMs = 90 * 24 * 60 * 60_000;

export interface SessionKey {
  issuer: string;
  clientID: string;
  scopes: string[];
  redirect_uri: string;
  upstream_provider_name?: string;
}

export interface SessionTokens {
  access?: { token: string; type: string; expiryTimestamp?: string };
  refresh?: { token: string };
  id?: { token: string; expiryTimestamp: string };
}

interface Entry {
  key: SessionKey;
  creationTimestamp: string;
  lastUsedTimestamp: string;
  tokens: SessionTokens;
}

export class SessionCache {
  readonly path: string;
  readonly #report: (message: string) => void;
  readonly #warn: (line: string) => void;

  /**
   * `report` hears about lock and write trouble, which never fails a login; `warn` hears about
   * a file that is ignored (bad mode or content). A file that cannot be read fails the login.
   */
  constructor(
    path: string,
    report: (message: string) => void = () => {},
    warn: (line: string) => void = () => {},
  ) {
    this.path = path;
    this.#report = report;
    this.#warn = warn;
  }

  async get(key: SessionKey): Promise<SessionTokens | undefined> {
    let found: SessionTokens | undefined;
    await this.#update((entries) => {
      const hit = entries.find((e) => isDeepStrictEqual(e.key, key));
      if (hit) {
        hit.lastUsedTimestamp = new Date().toISOString();
        found = hit.tokens;
      }
      return entries;
    });
    return found;
  }

  async put(key: SessionKey, tokens: SessionTokens): Promise<void> {
    await this.#update((entries) => {
      const now = new Date().toISOString();
      const old = entries.find((e) => isDeepStrictEqual(e.key, key));
      const rest = entries.filter((e) => e !== old);
      return [
        ...rest,
        { key, creationTimestamp: old?.creationTimestamp ?? now, lastUsedTimestamp: now, tokens },
      ];
    });
  }

  async delete(key: SessionKey): Promise<void> {
    await this.#update((entries) => entries.filter((e) => !isDeepStrictEqual(e.key, key)));
  }

  async #update(change: (entries: Entry[]) => Entry[]): Promise<void> {
    try {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    } catch (err) {
      this.#report(`could not create session cache directory: ${(err as Error).message}`);
      return;
    }
    const release = await lockFile(this.path);
    if (!release) {
      this.#report("could not lock session file: timed out");
      return;
    }
    try {
      const now = Date.now();
      const kept = change(await this.#read()).filter(
        (e) => now - Date.parse(e.lastUsedTimestamp) < maxUnusedMs,
      );
      await writeCacheList(this.path, kind, "sessions", kept);
    } catch (err) {
      if (err instanceof CacheFileError) throw err;
      this.#report(`could not write session cache: ${(err as Error).message}`);
    } finally {
      await release();
    }
  }

  async #read(): Promise<Entry[]> {
    const list = await readCacheList(this.path, kind, "sessions", this.#warn);
    return (list as Entry[]).filter((e) => e?.key && typeof e.lastUsedTimestamp === "string" && e.tokens);
  }
}
