// `pinniped completion bash|zsh|fish`: shell completion for the commands and their flags. The
// scripts are static, so pressing Tab never runs the CLI.
import { UsageError } from "./flags.ts";

export const completionHelp = `Generate the autocompletion script for pinniped for the specified shell.

Usage:
  pinniped completion bash|zsh|fish

Examples:
  source <(pinniped completion bash)                        # bash, this shell
  pinniped completion zsh > "\${fpath[1]}/_pinniped"         # zsh
  pinniped completion fish > ~/.config/fish/completions/pinniped.fish

Flags:
  -h, --help   help for completion
`;

type FlagSpecs = Record<string, { type: "string" | "boolean"; short?: string }>;

/** Every command, by its words, with its flags; a command without flags has subcommands. */
export async function commandTable(): Promise<Map<string, FlagSpecs>> {
  const [
    { getKubeconfigFlags },
    { loginOIDCFlags },
    { loginStaticFlags },
    { whoamiFlags },
    { versionFlags },
  ] = await Promise.all([
    import("./kubeconfig.ts"),
    import("./login-oidc.ts"),
    import("./login-static.ts"),
    import("./whoami.ts"),
    import("./version.ts"),
  ]);
  const help: FlagSpecs = { help: { type: "boolean", short: "h" } };
  return new Map<string, FlagSpecs>([
    ["", help],
    ["completion", help],
    ["get", help],
    ["login", help],
    ["completion bash", help],
    ["completion fish", help],
    ["completion zsh", help],
    ["get kubeconfig", { ...getKubeconfigFlags, ...help }],
    ["login oidc", { ...loginOIDCFlags, ...help }],
    ["login static", { ...loginStaticFlags, ...help }],
    ["version", { ...versionFlags, ...help }],
    ["whoami", { ...whoamiFlags, ...help }],
  ]);
}

function children(table: Map<string, FlagSpecs>, path: string): string[] {
  return [...table.keys()]
    .filter((k) => k !== "" && (path === "" ? !k.includes(" ") : k.startsWith(`${path} `)))
    .map((k) => k.split(" ").at(-1)!)
    .filter((w) => !w.includes(" "));
}

function flagWords(flags: FlagSpecs): string[] {
  return Object.entries(flags).flatMap(([name, f]) => [`--${name}`, ...(f.short ? [`-${f.short}`] : [])]);
}

function bash(table: Map<string, FlagSpecs>): string {
  const steps = [...table.keys()]
    .filter((k) => k !== "")
    .map((k) => {
      const i = k.lastIndexOf(" ");
      return `"${i < 0 ? "" : k.slice(0, i)}/${k.slice(i + 1)}"`;
    });
  const valueFlags = [...table.values()].flatMap((f) =>
    Object.entries(f)
      .filter(([, s]) => s.type === "string")
      .flatMap(([n, s]) => [`--${n}`, ...(s.short ? [`-${s.short}`] : [])]),
  );
  const cases = [...table.entries()].map(([path, flags]) => {
    const words = [...children(table, path), ...flagWords(flags)].join(" ");
    return `    "${path}") words="${words}" ;;`;
  });
  return `# bash completion for pinniped (pinniped completion bash)
_pinniped() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" path="" w i words=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$path/$w" in
      ${steps.join("|")}) path="\${path:+$path }$w" ;;
    esac
  done
  case "$prev" in
    ${[...new Set(valueFlags)].join("|")}) return ;;
  esac
  case "$path" in
${cases.join("\n")}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _pinniped pinniped
`;
}

function zsh(table: Map<string, FlagSpecs>): string {
  return `#compdef pinniped
# zsh completion for pinniped (pinniped completion zsh), through zsh's bash completion support
autoload -U +X bashcompinit && bashcompinit
${bash(table)}`;
}

function fish(table: Map<string, FlagSpecs>): string {
  const lines = ["# fish completion for pinniped (pinniped completion fish)", "complete -c pinniped -f"];
  for (const [path, flags] of table) {
    const words = path === "" ? [] : path.split(" ");
    const cond =
      words.length === 0
        ? "__fish_use_subcommand"
        : `__fish_seen_subcommand_from ${words.at(-1)}${words.length > 1 ? `; and __fish_seen_subcommand_from ${words[0]}` : ""}`;
    const subs = children(table, path);
    if (subs.length > 0) {
      const notYet = subs.map((s) => `not __fish_seen_subcommand_from ${s}`).join("; and ");
      lines.push(`complete -c pinniped -n '${cond}; and ${notYet}' -a '${subs.join(" ")}'`);
    }
    for (const [name, f] of Object.entries(flags)) {
      const short = f.short ? ` -s ${f.short}` : "";
      const value = f.type === "string" ? " -r -F" : "";
      lines.push(`complete -c pinniped -n '${cond}' -l ${name}${short}${value}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

export async function completion(shell: string | undefined): Promise<string> {
  const table = await commandTable();
  switch (shell) {
    case "bash":
      return bash(table);
    case "zsh":
      return zsh(table);
    case "fish":
      return fish(table);
    default:
      throw new UsageError(
        shell === undefined
          ? `accepts 1 arg(s), received 0 (one of bash, zsh, fish)`
          : `unknown shell "${shell}" (one of bash, zsh, fish)`,
      );
  }
}
