// The `pinniped` command. kubectl runs `pinniped login …` as an exec plugin before every command,
// so this file loads nothing but the flag parser: each command's module is imported when that
// command runs, and the login commands load their network and OIDC code only on a cache miss.
import { UsageError } from "./flags.ts";

const rootHelp = `The Pinniped CLI is the client-side binary for use with Pinniped-enabled Kubernetes clusters

Usage:
  pinniped [command]

Available Commands:
  completion       Generate the autocompletion script for the specified shell
  get kubeconfig   Generate a Pinniped-based kubeconfig for a cluster
  login oidc       Login using an OpenID Connect provider
  login static     Login using a static token
  version          Print the version of this Pinniped CLI
  whoami           Print information about the current user

Flags:
  -h, --help   help for pinniped

Use "pinniped [command] --help" for more information about a command.
`;
const loginHelp = `Login

Usage:
  pinniped login [command]

Available Commands:
  oidc        Login using an OpenID Connect provider
  static      Login using a static token

Use "pinniped login [command] --help" for more information about a command.
`;
const getHelp = `Gets one of [kubeconfig]

Usage:
  pinniped get [command]

Available Commands:
  kubeconfig  Generate a Pinniped-based kubeconfig for a cluster

Use "pinniped get [command] --help" for more information about a command.
`;

export interface IO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const isHelp = (a: string | undefined) => a === "--help" || a === "-h" || a === "help";

/** Runs one command; returns the exit code. Errors go to stderr, never with a token in them. */
export async function run(argv: string[], io: IO): Promise<number> {
  const [command, sub, ...rest] = argv;
  const print = (text: string) => {
    io.stdout(text);
    return 0;
  };
  /** A command group run without its subcommand: its help, on stderr, and a failure. */
  const incomplete = (help: string) => {
    io.stderr(help);
    return 1;
  };
  try {
    switch (command) {
      case "login": {
        if (isHelp(sub)) return print(loginHelp);
        if (sub === undefined) return incomplete(loginHelp);
        if (sub === "static") {
          const m = await import("./login-static.ts");
          const options = m.parseLoginStatic(rest, io.env);
          if (options === "help") return print(m.loginStaticHelp);
          const credential = await m.loginStatic(options, { env: io.env, stderr: io.stderr });
          return print(`${JSON.stringify(credential)}\n`);
        }
        if (sub === "oidc") {
          const m = await import("./login-oidc.ts");
          const options = await m.parseLoginOIDC(rest, io.env);
          if (options === "help") return print(m.loginOIDCHelp);
          const credential = await m.loginOIDC(options, { env: io.env, stderr: io.stderr });
          return print(`${JSON.stringify(credential)}\n`);
        }
        throw unknownCommand(sub, "pinniped login");
      }
      case "get": {
        if (isHelp(sub)) return print(getHelp);
        if (sub === undefined) return incomplete(getHelp);
        if (sub !== "kubeconfig") throw unknownCommand(sub, "pinniped get");
        const m = await import("./kubeconfig.ts");
        const options = m.parseGetKubeconfig(rest);
        if (options === "help") return print(m.getKubeconfigHelp);
        const yaml = await m.getKubeconfig(options, (line) => io.stderr(`${line}\n`));
        if (yaml !== undefined) io.stdout(yaml);
        return 0;
      }
      case "whoami": {
        const m = await import("./whoami.ts");
        const options = m.parseWhoAmI(argv.slice(1));
        if (options === "help") return print(m.whoamiHelp);
        return print(await m.whoami(options));
      }
      case "version": {
        const m = await import("./version.ts");
        const out = await m.version(argv.slice(1));
        return print(out === "help" ? m.versionHelp : out);
      }
      case "completion": {
        const m = await import("./completion.ts");
        if (isHelp(sub)) return print(m.completionHelp);
        if (rest.length > 0) throw new UsageError(`accepts 1 arg(s), received ${1 + rest.length}`);
        return print(await m.completion(sub));
      }
      case undefined:
        return print(rootHelp);
      default:
        if (isHelp(command)) return print(rootHelp);
        throw command.startsWith("-")
          ? new UsageError(`unknown flag: ${command}`)
          : unknownCommand(command, "pinniped");
    }
  } catch (err) {
    io.stderr(`Error: ${(err as Error).message}\n`);
    return 1;
  }
}

function unknownCommand(name: string, parent: string): UsageError {
  return new UsageError(`unknown command "${name}" for "${parent}"\nRun '${parent} --help' for usage.`);
}
