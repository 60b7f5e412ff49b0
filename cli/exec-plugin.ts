// Runs the kubeconfig user's exec credential plugin the way kubectl (client-go) runs it, for
// `pinniped whoami`. client-node runs plugins without KUBERNETES_EXEC_INFO, so `pinniped login
// oidc` saw no cluster info, keyed its credential cache differently from kubectl's run, and
// exchanged a second credential for the same user. Here the plugin gets the same
// KUBERNETES_EXEC_INFO kubectl sends (byte for byte: the fields in client-go's order, with its
// omissions and `"config":null`), the same environment, and the terminal's stdin and stderr.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { parse } from "yaml";

export interface ExecConfig {
  apiVersion?: string;
  command?: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  provideClusterInfo?: boolean;
  interactiveMode?: string;
}

/** A kubeconfig `clusters[].cluster` entry as written. */
export interface RawCluster {
  server?: string;
  "tls-server-name"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "certificate-authority-data"?: string;
  "certificate-authority"?: string;
  "proxy-url"?: string;
  "disable-compression"?: boolean;
  extensions?: { name?: string; extension?: unknown }[];
}

export interface PluginCredential {
  token?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  expirationTimestamp?: string;
}

/** The kubeconfig files kubectl reads: --kubeconfig, else every file in $KUBECONFIG, else ~/.kube/config. */
export function kubeconfigFiles(path: string | undefined, env: NodeJS.ProcessEnv): string[] {
  if (path) return [path];
  const listed = (env.KUBECONFIG ?? "").split(delimiter).filter((f) => f !== "");
  return listed.length > 0 ? listed : [join(homedir(), ".kube", "config")];
}

/**
 * The named entry of `section` ("clusters" or "users") and the directory of the file it came
 * from: the first file that has it wins, as client-go merges.
 */
export function findEntry<T>(
  files: readonly string[],
  section: "clusters" | "users",
  name: string,
): { entry: T; dir: string } | undefined {
  const field = section === "clusters" ? "cluster" : "user";
  for (const file of files) {
    let doc: Record<string, unknown> | undefined;
    try {
      doc = parse(readFileSync(file, "utf8")) as Record<string, unknown> | undefined;
    } catch {
      continue;
    }
    const list = doc?.[section];
    if (!Array.isArray(list)) continue;
    const found = list.find((e) => (e as { name?: unknown })?.name === name) as
      | Record<string, unknown>
      | undefined;
    if (found) return { entry: (found[field] ?? {}) as T, dir: dirname(resolve(file)) };
  }
  return undefined;
}

/** client-go's `clientauthentication.Cluster` for a kubeconfig cluster entry, in its JSON field order. */
export function execCluster(cluster: RawCluster, dir: string): Record<string, unknown> {
  const out: Record<string, unknown> = { server: cluster.server ?? "" };
  if (cluster["tls-server-name"]) out["tls-server-name"] = cluster["tls-server-name"];
  if (cluster["insecure-skip-tls-verify"] === true) out["insecure-skip-tls-verify"] = true;
  let ca: Buffer | undefined;
  if (cluster["certificate-authority-data"])
    ca = Buffer.from(cluster["certificate-authority-data"], "base64");
  else if (cluster["certificate-authority"])
    ca = readFileSync(resolve(dir, cluster["certificate-authority"]));
  if (ca && ca.length > 0) out["certificate-authority-data"] = ca.toString("base64");
  if (cluster["proxy-url"]) out["proxy-url"] = cluster["proxy-url"];
  if (cluster["disable-compression"] === true) out["disable-compression"] = true;
  const config = cluster.extensions?.find((e) => e?.name === "client.authentication.k8s.io/exec")?.extension;
  out.config = config ?? null;
  return out;
}

/** Whether kubectl would run the plugin interactively, or why it refuses to run it. */
export function interactive(exec: ExecConfig, stdinIsTTY: boolean): boolean {
  const mode = exec.interactiveMode || "IfAvailable";
  if (mode === "Never") return false;
  if (mode === "Always" && !stdinIsTTY) {
    throw new Error("exec plugin cannot support interactive mode: standard input is not a terminal");
  }
  return stdinIsTTY;
}

/** The KUBERNETES_EXEC_INFO kubectl sets, as the exact JSON text. */
export function execInfoJSON(
  exec: ExecConfig,
  cluster: Record<string, unknown> | undefined,
  isInteractive: boolean,
): string {
  const spec =
    exec.provideClusterInfo && cluster
      ? { cluster, interactive: isInteractive }
      : { interactive: isInteractive };
  // client-go's json.Encoder ends it with a newline.
  return `${JSON.stringify({ kind: "ExecCredential", apiVersion: exec.apiVersion ?? "", spec })}\n`;
}

/** Runs the plugin and returns the credential it printed. */
export async function runExecPlugin(
  exec: ExecConfig,
  options: { execInfo: string; interactive: boolean; dir: string; env: NodeJS.ProcessEnv },
): Promise<PluginCredential> {
  if (!exec.command) throw new Error("the kubeconfig's exec plugin has no command");
  // client-go resolves a relative command with a path separator against the kubeconfig's directory.
  const command =
    exec.command.includes("/") && !isAbsolute(exec.command)
      ? resolve(options.dir, exec.command)
      : exec.command;
  const env: NodeJS.ProcessEnv = { ...options.env };
  for (const { name, value } of exec.env ?? []) env[name] = value;
  env.KUBERNETES_EXEC_INFO = options.execInfo;
  const child = spawn(command, exec.args ?? [], {
    env,
    stdio: [options.interactive ? "inherit" : "ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    stdout += chunk;
  });
  const code = await new Promise<number | null>((done, fail) => {
    child.on("error", fail);
    child.on("close", done);
  });
  if (code !== 0) throw new Error(`exec plugin ${exec.command} exited with status ${code}`);
  let parsed: { apiVersion?: unknown; status?: PluginCredential };
  try {
    parsed = JSON.parse(stdout) as typeof parsed;
  } catch (err) {
    throw new Error(`exec plugin ${exec.command} printed no ExecCredential: ${(err as Error).message}`);
  }
  if (parsed.apiVersion !== exec.apiVersion) {
    throw new Error(
      `exec plugin ${exec.command} answered in ${String(parsed.apiVersion)}, not the ${exec.apiVersion} it was configured with`,
    );
  }
  const status = parsed.status ?? {};
  if (!status.token && !(status.clientCertificateData && status.clientKeyData)) {
    throw new Error(`exec plugin ${exec.command} printed no token and no client certificate and key`);
  }
  return status;
}
