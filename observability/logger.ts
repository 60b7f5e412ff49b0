/**
 * Structured logging with upstream Pinniped's keys: one JSON object per line with `level`,
 * `timestamp`, `caller` (`file:line$function` of the code that logged), `message`, then the bound
 * fields (component, controller, ...) and the call's own fields; or the same as text, tab-separated
 * with the fields as JSON at the end (upstream's `log.format: text`).
 */
import { fileURLToPath } from "node:url";

export const LEVELS = ["error", "warn", "info", "debug", "trace"] as const;
export type Level = (typeof LEVELS)[number];
export type Fields = Readonly<Record<string, unknown>>;
export type LogSink = (line: string) => void;

export const REDACTED = "[redacted]";
/** Environment variable that sets the level when no level is passed explicitly. */
export const LOG_LEVEL_ENV = "CONCIERGE_LOG_LEVEL";

export const FORMATS = ["json", "text"] as const;
export type Format = (typeof FORMATS)[number];

/** The keys every line starts with; call and bound fields by these names are written as `field.<name>`. */
const RESERVED = new Set(["level", "timestamp", "caller", "message"]);

export interface LoggerOptions {
  level?: Level;
  format?: Format;
  sink?: LogSink;
  /** Milliseconds since the epoch; injected so tests get stable output. */
  now?: () => number;
  fields?: Fields;
}

export class Logger {
  readonly level: Level;
  readonly format: Format;
  readonly #rank: number;
  readonly #sink: LogSink;
  readonly #now: () => number;
  readonly #fields: Fields;

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? "info";
    this.format = options.format ?? "json";
    this.#rank = LEVELS.indexOf(this.level);
    this.#sink = options.sink ?? ((line) => process.stderr.write(`${line}\n`));
    this.#now = options.now ?? Date.now;
    this.#fields = options.fields ?? {};
  }

  /** A logger that adds `fields` to every line; the child's own fields win on a clash. */
  child(fields: Fields): Logger {
    return new Logger({
      level: this.level,
      format: this.format,
      sink: this.#sink,
      now: this.#now,
      fields: { ...this.#fields, ...fields },
    });
  }

  enabled(level: Level): boolean {
    return LEVELS.indexOf(level) <= this.#rank;
  }

  error(msg: string, fields?: Fields): void {
    if (this.#rank >= 0) this.#log("error", msg, fields, Logger.prototype.error);
  }
  warn(msg: string, fields?: Fields): void {
    if (this.#rank >= 1) this.#log("warn", msg, fields, Logger.prototype.warn);
  }
  info(msg: string, fields?: Fields): void {
    if (this.#rank >= 2) this.#log("info", msg, fields, Logger.prototype.info);
  }
  debug(msg: string, fields?: Fields): void {
    if (this.#rank >= 3) this.#log("debug", msg, fields, Logger.prototype.debug);
  }
  trace(msg: string, fields?: Fields): void {
    if (this.#rank >= 4) this.#log("trace", msg, fields, Logger.prototype.trace);
  }

  // `method` is the level method that was called: the caller is the frame below it.
  #log(level: Level, msg: string, fields: Fields | undefined, method: (...args: never[]) => void): void {
    const timestamp = new Date(this.#now()).toISOString();
    const message = scrub(msg);
    const entry: Record<string, unknown> = { level, timestamp, caller: callerOf(method), message };
    const extra: Record<string, unknown> = {};
    for (const source of [this.#fields, fields]) {
      if (source === undefined) continue;
      for (const name of Object.keys(source)) {
        const value = source[name];
        if (value === undefined) continue;
        extra[RESERVED.has(name) ? `field.${name}` : name] = sanitize(name, value, 0, undefined);
      }
    }
    let line: string;
    try {
      line =
        this.format === "text"
          ? [timestamp, level, entry.caller, message, JSON.stringify(extra)].join("\t")
          : JSON.stringify({ ...entry, ...extra });
    } catch {
      line = JSON.stringify({ ...entry, logError: "fields could not be serialised" });
    }
    this.#sink(line);
  }
}

// This file's folder's parent is the repository root (or, bundled, the bundle's folder), so
// callers read `controllers/runtime/controller.ts:120` rather than a file:// URL.
const root = fileURLToPath(new URL("..", import.meta.url));

/** Formatted callers by file, then by line and column: a process has only so many call sites. */
const callers = new Map<string, Map<number, string>>();
const maxCallers = 10_000;
let cachedCallers = 0;

/**
 * The frame that called `method` (info/warn/...). V8 is asked for that one frame only, as a
 * structured call site (the formatted stack text costs several times more), and its formatted
 * form is remembered per call site: a log line on a hot path then costs a stack walk of a few
 * frames and two map lookups instead of a path conversion and string building.
 */
function callerOf(method: (...args: never[]) => void): string {
  const limit = Error.stackTraceLimit;
  const prepare = Error.prepareStackTrace;
  Error.stackTraceLimit = 1;
  Error.prepareStackTrace = (_, sites) => sites;
  const holder: { stack?: NodeJS.CallSite[] } = {};
  Error.captureStackTrace(holder, method);
  const site = holder.stack?.[0];
  Error.stackTraceLimit = limit;
  Error.prepareStackTrace = prepare;
  if (!site) return "unknown";
  const fileName = site.getFileName() ?? "unknown";
  // A column is below 2^23 even in a bundle's longest line; a line number below 2^30.
  const position = (site.getLineNumber() ?? 0) * 2 ** 23 + (site.getColumnNumber() ?? 0);
  let inFile = callers.get(fileName);
  const known = inFile?.get(position);
  if (known !== undefined) return known;
  let file = fileName;
  if (file.startsWith("file://")) file = fileURLToPath(file);
  if (file.startsWith(root)) file = file.slice(root.length);
  const type = site.getTypeName();
  const fn = site.getFunctionName() ?? site.getMethodName();
  const name = fn && type && !fn.includes(".") && type !== "Object" ? `${type}.${fn}` : fn;
  const formatted = `${file}:${site.getLineNumber() ?? 0}${name ? `$${name}` : ""}`;
  if (cachedCallers < maxCallers) {
    if (!inFile) {
      inFile = new Map();
      callers.set(fileName, inFile);
    }
    inFile.set(position, formatted);
    cachedCallers++;
  }
  return formatted;
}

export function parseLevel(value: string | undefined): Level | undefined {
  const normalised = value?.trim().toLowerCase();
  return LEVELS.find((l) => l === normalised);
}

/**
 * The process logger. The level comes from `options.level`, else `CONCIERGE_LOG_LEVEL`, else
 * `info`; an unknown value in the environment is reported once rather than silently ignored.
 */
export function createLogger(options: LoggerOptions = {}, env: NodeJS.ProcessEnv = process.env): Logger {
  const fromEnv = env[LOG_LEVEL_ENV];
  const level = options.level ?? parseLevel(fromEnv) ?? "info";
  const logger = new Logger({ ...options, level });
  if (!options.level && fromEnv && !parseLevel(fromEnv)) {
    logger.warn("unknown log level; using info", { [LOG_LEVEL_ENV]: fromEnv, allowed: LEVELS.join(",") });
  }
  return logger;
}

/** A logger that prints nothing; for tests and for callers that did not pass one. */
export function discardLogger(): Logger {
  return new Logger({ level: "error", sink: () => {} });
}

/** Captures parsed log lines; for tests that assert on what was logged. */
export function memoryLogger(level: Level = "trace"): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: new Logger({ level, sink: (line) => lines.push(JSON.parse(line)) }), lines };
}

// Field names are compared with case and separators removed: `client_secret`, `clientSecret`
// and `Client-Secret` are all `clientsecret`.
const SENSITIVE_WORDS = [
  "token",
  "password",
  "passwd",
  "passphrase",
  "secret",
  "credential",
  "authorization",
  "cookie",
  "bearer",
  "privatekey",
  "apikey",
  "keydata",
  "keypem",
  "keymaterial",
];
// Names that only point at sensitive things (`secretName`, `tokenID` = a hash) stay readable.
const REFERENCE_SUFFIXES = ["name", "names", "namespace", "ref", "id", "count", "kind", "type", "hash"];

/**
 * Whether a field of this name may carry secret material. A bare `key` is a work-queue key and
 * stays visible; `tlsKey`, `signingKey` and the like are key material.
 */
export function isSensitiveName(name: string): boolean {
  const known = sensitiveNames.get(name);
  if (known !== undefined) return known;
  const n = name.toLowerCase().replace(/[^a-z0-9]/g, "");
  const sensitive =
    !REFERENCE_SUFFIXES.some((s) => n.endsWith(s) && n !== s) &&
    (SENSITIVE_WORDS.some((w) => n.includes(w)) || (n.length > 3 && n.endsWith("key")));
  // Field names come from the code, nearly all of them; keys of logged objects may come from
  // data (a user's extras), hence the bound.
  if (sensitiveNames.size < maxSensitiveNames) sensitiveNames.set(name, sensitive);
  return sensitive;
}

const sensitiveNames = new Map<string, boolean>();
const maxSensitiveNames = 10_000;

// Values are scrubbed too, because secrets also travel under innocent names (`value`, `data`)
// and inside error messages.
const PEM_PRIVATE_KEY =
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
const BEARER = /\b(bearer\s+)[^\s"',;]+/gi;

export function scrub(value: string): string {
  if (!value.includes("PRIVATE KEY-----") && !/bearer/i.test(value)) return value;
  return value.replace(PEM_PRIVATE_KEY, REDACTED).replace(BEARER, `$1${REDACTED}`);
}

const MAX_DEPTH = 6;

// `seen` is made on the first object: most fields are strings and numbers.
function sanitize(name: string, value: unknown, depth: number, seen: WeakSet<object> | undefined): unknown {
  if (name !== "" && isSensitiveName(name)) return value === null || value === "" ? value : REDACTED;
  if (typeof value === "string") return scrub(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value !== "object" || value === null) return value;
  if (value instanceof Error) return serializeError(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  seen ??= new WeakSet();
  if (seen.has(value)) return "[circular]";
  if (depth >= MAX_DEPTH) return "[nested too deep]";
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => sanitize("", v, depth + 1, seen));
  if (value instanceof Map) value = Object.fromEntries(value);
  else if (value instanceof Set) return [...value].map((v) => sanitize("", v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = sanitize(k, v, depth + 1, seen);
  }
  return out;
}

function serializeError(err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: scrub(err.message) };
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" || typeof code === "number") out.code = code;
  if (err.cause instanceof Error) out.cause = scrub(err.cause.message);
  return out;
}
