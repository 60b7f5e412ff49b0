// Flag parsing shared by the commands: node's parseArgs, with its errors turned into ones that
// say which command to ask for help.
import { type ParseArgsConfig, parseArgs } from "node:util";

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses `args` for `command` ("login static"), with pflag's wording for mistakes, which kubectl
 * plugins share: `unknown flag: --bogus`, `flag needs an argument: --kubeconfig`.
 */
export function parseFlags<O extends Options>(command: string, args: string[], options: O) {
  const all = { ...options, help: { type: "boolean", short: "h" } } as const;
  try {
    const booleans = new Map<string, boolean>();
    const parsed = parseArgs({ args: pflagArgs(args, all, booleans), options: all, strict: true });
    // parseArgs has no false: a boolean whose last setting was `--flag=false` is false, not absent,
    // so a flag that defaults to true can be turned off.
    for (const [name, value] of booleans)
      if (!value) (parsed.values as Record<string, unknown>)[name] = false;
    return parsed;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(pflagMessage(err as NodeJS.ErrnoException, all, command));
  }
}

function pflagMessage(err: NodeJS.ErrnoException, options: Options, command: string): string {
  const flag = /'(-{1,2}[^' ]+)/.exec(err.message)?.[1] ?? "";
  switch (err.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return flag.startsWith("--")
        ? `unknown flag: ${flag}`
        : `unknown shorthand flag: '${flag.slice(1)}' in ${flag}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      // parseArgs names a flag with a short form as '-o, --output <value>'.
      const long =
        /'(?:-\w, )?(--[\w-]+)/.exec(err.message)?.[1] ?? `--${shortToLong(options, flag.slice(1))}`;
      return `flag needs an argument: ${long}`;
    }
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL": {
      const arg = /'([^']*)'/.exec(err.message)?.[1] ?? "";
      return `unknown command "${arg}" for "pinniped ${command}"`;
    }
    default:
      return err.message;
  }
}

function shortToLong(options: Options, short: string): string {
  return Object.entries(options).find(([, o]) => o.short === short)?.[0] ?? short;
}

/**
 * pflag's syntax on top of parseArgs: a flag that takes a value takes the next argument whatever
 * it looks like (a token may well start with "-", which parseArgs alone refuses as ambiguous),
 * and a boolean flag may be written `--flag=true` or `--flag=false`. `booleans` hears each boolean
 * flag's last setting.
 */
function pflagArgs(args: string[], options: Options, booleans: Map<string, boolean>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    const m = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    const spec = m ? options[m[1]!] : undefined;
    const next = args[i + 1];
    if (spec?.type === "string" && m?.[2] === undefined && next !== undefined) {
      out.push(`${arg}=${next}`);
      i++;
    } else if (spec?.type === "boolean" && m?.[2] !== undefined) {
      const value = m[2].toLowerCase();
      if (!["true", "false", "1", "0", "t", "f"].includes(value))
        throw new UsageError(
          `invalid argument "${m[2]}" for "--${m[1]}" flag: strconv.ParseBool: parsing "${m[2]}": invalid syntax`,
        );
      booleans.set(m[1]!, ["true", "1", "t"].includes(value));
      if (booleans.get(m[1]!)) out.push(arg.slice(0, arg.indexOf("=")));
    } else {
      if (spec?.type === "boolean") booleans.set(m![1]!, true);
      out.push(arg);
    }
  }
  return out;
}

export const defaultAPIGroupSuffix = "pinniped.dev";

/** A DNS subdomain, as upstream's suffix validation requires. */
export function validateAPIGroupSuffix(suffix: string): void {
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  if (suffix.length > 253 || !suffix.includes(".") || !suffix.split(".").every((l) => label.test(l))) {
    throw new UsageError(
      `invalid API group suffix: "${suffix}" must be a DNS subdomain with at least one dot`,
    );
  }
}

/** `webhook` or `jwt`, case-insensitively, as the Concierge's authenticator kind. */
export function authenticatorKind(type: string): "WebhookAuthenticator" | "JWTAuthenticator" {
  switch (type.toLowerCase()) {
    case "webhook":
      return "WebhookAuthenticator";
    case "jwt":
      return "JWTAuthenticator";
    default:
      throw new UsageError(`invalid authenticator type "${type}", supported values are "webhook" and "jwt"`);
  }
}
