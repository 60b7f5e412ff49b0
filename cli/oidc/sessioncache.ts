// Upstream's session cache file (pkg/oidcclient/filesession): the OIDC tokens of each login,
// keyed by issuer, client, scopes and redirect URI, so that the next kubectl command can reuse
// or refresh them instead of opening a browser. Same locking and atomic rename as the
// credential cache: concurrent kubectl processes must never see half a file.
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parse, stringify } from "yaml";
import { lockFile, writeFileAtomically } from "../lockedfile.ts";

const apiVersion = "config.supervisor.pinniped.dev/v1alpha1";
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

  /** `report` hears about cache trouble; the cache never fails a login. */
  constructor(path: string, report: (message: string) => void = () => {}) {
    this.path = path;
    this.#report = report;
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
      await this.#write(kept);
    } catch (err) {
      this.#report(`could not write session cache: ${(err as Error).message}`);
    } finally {
      await release();
    }
  }

  async #read(): Promise<Entry[]> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        this.#report(`failed to read cache, resetting: ${(err as Error).message}`);
      return [];
    }
    try {
      const doc = parse(text) as { apiVersion?: unknown; kind?: unknown; sessions?: unknown } | null;
      if (doc?.apiVersion !== apiVersion || doc.kind !== kind || !Array.isArray(doc.sessions)) {
        this.#report("failed to read cache, resetting: invalid session file");
        return [];
      }
      return (doc.sessions as Entry[]).filter(
        (e) => e?.key && typeof e.lastUsedTimestamp === "string" && e.tokens,
      );
    } catch (err) {
      this.#report(`failed to read cache, resetting: invalid session file: ${(err as Error).message}`);
      return [];
    }
  }

  async #write(entries: Entry[]): Promise<void> {
    await writeFileAtomically(this.path, stringify({ apiVersion, kind, sessions: entries }));
  }
}
