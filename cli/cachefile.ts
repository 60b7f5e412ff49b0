// Reading and writing the CLI's cache files (credentials.yaml, sessions.yaml). They hold client
// keys and refresh tokens, so a file that other users can read, or that does not parse, is never
// used silently: it is reported in one line and replaced by the next write (0600, atomic rename).
// A file that cannot be read at all is an error the user must fix.
//
// The files are written as JSON, which is YAML too, so upstream's CLI reads them; JSON.parse
// keeps the YAML parser off kubectl's hot path. A YAML file written by upstream's CLI is still
// read, through the YAML parser, loaded only then.
import { open } from "node:fs/promises";
import { writeFileAtomically } from "./lockedfile.ts";

export const cacheAPIVersion = "config.supervisor.pinniped.dev/v1alpha1";

export class CacheFileError extends Error {}

/**
 * The `listField` array of the cache document at `path`; [] when the file is missing, and also,
 * after one line to `warn`, when it is readable by others or is not such a document.
 */
export async function readCacheList(
  path: string,
  kind: string,
  listField: string,
  warn: (line: string) => void,
): Promise<unknown[]> {
  let text: string;
  let mode: number;
  try {
    const handle = await open(path, "r");
    try {
      mode = (await handle.stat()).mode;
      text = await handle.readFile("utf8");
    } finally {
      await handle.close();
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") return [];
    throw new CacheFileError(`could not read ${kind} file ${path}: ${e.code ?? e.message}`);
  }
  if ((mode & 0o077) !== 0) {
    warn(
      `ignoring ${kind} file ${path}: its mode ${(mode & 0o777).toString(8).padStart(4, "0")} lets other users read it, so it is not used; the next login replaces it with a 0600 one`,
    );
    return [];
  }
  let doc: unknown;
  try {
    doc = /^\s*\{/.test(text) ? JSON.parse(text) : (await import("yaml")).parse(text);
  } catch (err) {
    warn(`ignoring ${kind} file ${path}: it does not parse (${firstLine(err)}); the next login replaces it`);
    return [];
  }
  const d = doc as Record<string, unknown> | null;
  if (d?.apiVersion !== cacheAPIVersion || d.kind !== kind || !Array.isArray(d[listField])) {
    // An empty file is what a crash between create and write leaves: nothing to say about it.
    if (text.trim() !== "")
      warn(
        `ignoring ${kind} file ${path}: it is not a ${cacheAPIVersion} ${kind}; the next login replaces it`,
      );
    return [];
  }
  return d[listField] as unknown[];
}

export async function writeCacheList(
  path: string,
  kind: string,
  listField: string,
  items: unknown[],
): Promise<void> {
  const doc = { apiVersion: cacheAPIVersion, kind, [listField]: items };
  await writeFileAtomically(path, `${JSON.stringify(doc, null, 2)}\n`);
}

function firstLine(err: unknown): string {
  return String((err as Error).message ?? err).split("\n")[0]!;
}
