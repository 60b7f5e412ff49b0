// Flag parsing shared by the commands: node's parseArgs, with its errors turned into ones that
// say which command to ask for help.
import { type ParseArgsConfig, parseArgs } from "node:util";

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;

export function parseFlags<O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({
      args: joinValues(args, options),
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nRun 'pinniped ${command} --help' for usage.`);
  }
}

/**
 * Like upstream's pflag, a flag that takes a value takes the next argument whatever it looks
 * like: a token may well start with "-", which parseArgs alone refuses as ambiguous.
 */
function joinValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const name = arg.startsWith("--") ? arg.slice(2) : undefined;
    const next = args[i + 1];
    if (name !== undefined && options[name]?.type === "string" && next?.startsWith("-")) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
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
