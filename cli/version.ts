// `pinniped version`: what was built, from values the build (hack/build-cli.ts) bakes in; a
// run from the clone's sources says so.
import { parseFlags, UsageError } from "./flags.ts";

declare const PINNIPED_BUILD_INFO:
  | { version: string; commit: string; treeState: string; date: string }
  | undefined;

export const versionHelp = `Print the version of this Pinniped CLI

Usage:
  pinniped version [flags]

Flags:
  -h, --help            help for version
  -o, --output string   one of 'yaml' or 'json'
`;

export const versionFlags = { output: { type: "string", short: "o" } } as const;

export interface VersionInfo {
  major: string;
  minor: string;
  gitVersion: string;
  gitCommit: string;
  gitTreeState: string;
  buildDate: string;
  nodeVersion: string;
  platform: string;
}

export function versionInfo(): VersionInfo {
  const built =
    typeof PINNIPED_BUILD_INFO === "undefined"
      ? { version: "v0.0.0-dev", commit: "", treeState: "", date: "" }
      : PINNIPED_BUILD_INFO;
  const [major = "0", minor = "0"] = built.version.replace(/^v/, "").split(".");
  return {
    major,
    minor,
    gitVersion: built.version,
    gitCommit: built.commit,
    gitTreeState: built.treeState,
    buildDate: built.date,
    nodeVersion: process.version,
    platform: `${process.platform}/${process.arch === "x64" ? "amd64" : process.arch}`,
  };
}

export async function version(args: string[]): Promise<string | "help"> {
  const { values } = parseFlags("version", args, versionFlags);
  if (values.help) return "help";
  const info = versionInfo();
  switch (values.output) {
    case undefined:
    case "":
      return `${info.gitVersion}\n`;
    case "json":
      return `${JSON.stringify(info, null, 2)}\n`;
    case "yaml":
      return (await import("yaml")).stringify(info);
    default:
      throw new UsageError(`--output must be 'yaml' or 'json'`);
  }
}
