// The `pinniped` command (bin/pinniped runs this with the repo's Node): `get kubeconfig` for
// JWT and webhook authenticators, `login oidc` and `login static` as kubectl exec plugins
// (through the Concierge's TokenCredentialRequest API or the impersonation proxy), and `whoami`.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "./flags.ts";
import { getKubeconfig, getKubeconfigHelp, parseGetKubeconfig } from "./kubeconfig.ts";
import { loginOIDC, loginOIDCHelp, parseLoginOIDC } from "./login-oidc.ts";
import { loginStatic, loginStaticHelp, parseLoginStatic } from "./login-static.ts";
import { parseWhoAmI, whoami, whoamiHelp } from "./whoami.ts";

const rootHelp = `The Pinniped CLI is the client-side binary for use with Pinniped-enabled Kubernetes clusters

Usage:
  pinniped [command]

Available Commands:
  get kubeconfig   Generate a Pinniped-based kubeconfig for a cluster
  login oidc       Login using an OpenID Connect provider
  login static     Login using a static token
  whoami           Print information about the current user

Use "pinniped [command] --help" for more information about a command.
`;
const loginHelp = `Login

Usage:
  pinniped login [command]

Available Commands:
  oidc        Login using an OpenID Connect provider
  static      Login using a static token
`;
const getHelp = `Generate a Pinniped-based kubeconfig\n\nUsage:\n  pinniped get kubeconfig [flags]\n`;

/** bin/pinniped, the default exec command of generated kubeconfigs. */
export const defaultCLIPath = join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "pinniped");

export interface IO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const isHelp = (a: string | undefined) => a === undefined || a === "--help" || a === "-h" || a === "help";

/** Runs one command; returns the exit code. Errors go to stderr, never with a token in them. */
export async function run(argv: string[], io: IO): Promise<number> {
  const [command, sub, ...rest] = argv;
  try {
    if (command === "login") {
      if (isHelp(sub)) return help(io, loginHelp);
      if (sub === "oidc") {
        const options = await parseLoginOIDC(rest, io.env);
        if (options === "help") return help(io, loginOIDCHelp);
        const credential = await loginOIDC(options, { env: io.env, stderr: io.stderr });
        io.stdout(`${JSON.stringify(credential)}\n`);
        return 0;
      }
      if (sub !== "static")
        throw new UsageError(
          `unknown command "login ${sub}" (only "login oidc" and "login static" are supported)`,
        );
      const options = parseLoginStatic(rest, io.env);
      if (options === "help") return help(io, loginStaticHelp);
      const credential = await loginStatic(options, { env: io.env });
      io.stdout(`${JSON.stringify(credential)}\n`);
      return 0;
    }
    if (command === "whoami") {
      const options = parseWhoAmI(argv.slice(1));
      if (options === "help") return help(io, whoamiHelp);
      io.stdout(await whoami(options));
      return 0;
    }
    if (command === "get") {
      if (isHelp(sub)) return help(io, getHelp);
      if (sub !== "kubeconfig")
        throw new UsageError(`unknown command "get ${sub}" (only "get kubeconfig" is supported)`);
      const options = parseGetKubeconfig(rest, defaultCLIPath);
      if (options === "help") return help(io, getKubeconfigHelp);
      const yaml = await getKubeconfig(options, (line) => io.stderr(`${line}\n`));
      if (yaml !== undefined) io.stdout(yaml);
      return 0;
    }
    if (isHelp(command)) return help(io, rootHelp);
    throw new UsageError(`unknown command "${command}" for "pinniped"\nRun 'pinniped --help' for usage.`);
  } catch (err) {
    io.stderr(`Error: ${(err as Error).message}\n`);
    return 1;
  }
}

function help(io: IO, text: string): number {
  io.stdout(text);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await run(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
  });
}
