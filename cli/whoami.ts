// `pinniped whoami`: who the cluster thinks the current kubeconfig's user is, from a
// WhoAmIRequest (what kube-apiserver forwarded to the Concierge through aggregation).
import type { KubeConfig } from "@kubernetes/client-node";
import type { ExecConfig, RawCluster } from "./exec-plugin.ts";
import { defaultAPIGroupSuffix, parseFlags, UsageError, validateAPIGroupSuffix } from "./flags.ts";
import { parseGoDuration } from "./kubeconfig-duration.ts";

export const whoamiHelp = `Print information about the current user

Usage:
  pinniped whoami [flags]

Flags:
      --api-group-suffix string     Concierge API group suffix (default "pinniped.dev")
  -h, --help                        help for whoami
      --kubeconfig string           Path to kubeconfig file (default $KUBECONFIG, else ~/.kube/config)
      --kubeconfig-context string   Kubeconfig context name (default: current active context)
  -o, --output string               Output format (e.g., 'yaml', 'json', 'text') (default "text")
      --timeout duration            Timeout for the WhoAmI API request, a Go duration such as 30s or 1m (default: none)
`;

export interface WhoAmIOptions {
  output: "text" | "json" | "yaml";
  kubeconfig: string | undefined;
  context: string | undefined;
  apiGroupSuffix: string;
  timeoutMs: number | undefined;
}

export const whoamiFlags = {
  output: { type: "string", short: "o", default: "text" },
  kubeconfig: { type: "string" },
  "kubeconfig-context": { type: "string" },
  "api-group-suffix": { type: "string", default: defaultAPIGroupSuffix },
  timeout: { type: "string" },
} as const;

export function parseWhoAmI(args: string[]): WhoAmIOptions | "help" {
  const { values } = parseFlags("whoami", args, whoamiFlags);
  if (values.help) return "help";
  const output = values.output;
  if (output !== "text" && output !== "json" && output !== "yaml") {
    throw new UsageError(`unknown output format: "${output}"`);
  }
  validateAPIGroupSuffix(values["api-group-suffix"]);
  let timeoutMs: number | undefined;
  if (values.timeout !== undefined) {
    try {
      timeoutMs = parseGoDuration(values.timeout);
    } catch (err) {
      throw new UsageError(
        `invalid argument "${values.timeout}" for "--timeout" flag: ${(err as Error).message}`,
      );
    }
    // Go's client treats a zero timeout as none.
    if (timeoutMs <= 0) timeoutMs = undefined;
  }
  return {
    output,
    kubeconfig: values.kubeconfig,
    context: values["kubeconfig-context"],
    apiGroupSuffix: values["api-group-suffix"],
    timeoutMs,
  };
}

interface WhoAmIRequest {
  status?: { kubernetesUserInfo?: { user?: { username?: string; groups?: string[] } } };
}

export async function whoami(options: WhoAmIOptions): Promise<string> {
  // The Kubernetes client and the YAML writer are loaded by the one command that uses them.
  const [{ isApiError, KubeRestClient }, { loadKubeConfig }] = await Promise.all([
    import("../kube/rest.ts"),
    import("./kube.ts"),
  ]);
  const loaded = loadKubeConfig(options.kubeconfig, options.context);
  const kc = loaded.getCurrentUser()?.exec ? await withExecCredential(loaded, options.kubeconfig) : loaded;
  const client = new KubeRestClient(kc, { userAgent: "pinniped-cli" });
  const group = `identity.concierge.${options.apiGroupSuffix}`;
  let result: WhoAmIRequest;
  try {
    result = await client.request<WhoAmIRequest>({
      method: "POST",
      path: `/apis/${group}/v1alpha1/whoamirequests`,
      body: { apiVersion: `${group}/v1alpha1`, kind: "WhoAmIRequest", metadata: {}, spec: {} },
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    });
  } catch (err) {
    const hint = isApiError(err, 404) ? " (is the Pinniped WhoAmI API running and healthy?)" : "";
    throw new Error(`could not complete WhoAmIRequest: ${(err as Error).message}${hint}`);
  }
  const full = { apiVersion: `${group}/v1alpha1`, kind: "WhoAmIRequest", ...result };
  if (options.output === "json") return `${JSON.stringify(full, null, 2)}\n`;
  if (options.output === "yaml") return (await import("yaml")).stringify(full);
  const cluster = kc.getCurrentCluster();
  const user = result.status?.kubernetesUserInfo?.user;
  return [
    "Current cluster info:",
    "",
    `Name: ${kc.getCurrentContext() ? (kc.getContextObject(kc.getCurrentContext())?.cluster ?? "???") : "???"}`,
    `URL: ${cluster?.server || "???"}`,
    "",
    "Current user info:",
    "",
    `Username: ${user?.username ?? ""}`,
    `Groups: ${(user?.groups ?? []).join(", ")}`,
    "",
  ].join("\n");
}

/**
 * `kc` with its current user's exec plugin run as kubectl runs it (so the plugin's credential
 * cache serves both), and the credential it printed in the plugin's place.
 */
async function withExecCredential(kc: KubeConfig, path: string | undefined): Promise<KubeConfig> {
  const { execCluster, execInfoJSON, findEntry, interactive, kubeconfigFiles, runExecPlugin } = await import(
    "./exec-plugin.ts"
  );
  const { KubeConfig } = await import("@kubernetes/client-node");
  const files = kubeconfigFiles(path, process.env);
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster || !user) return kc;
  const rawUser = findEntry<{ exec?: ExecConfig }>(files, "users", user.name);
  const rawCluster = findEntry<RawCluster>(files, "clusters", cluster.name);
  const exec: ExecConfig = rawUser?.entry.exec ?? (user.exec as ExecConfig);
  const isInteractive = interactive(exec, process.stdin.isTTY === true);
  const credential = await runExecPlugin(exec, {
    execInfo: execInfoJSON(exec, rawCluster && execCluster(rawCluster.entry, rawCluster.dir), isInteractive),
    interactive: isInteractive,
    dir: rawUser?.dir ?? process.cwd(),
    env: process.env,
  });
  const replaced = new KubeConfig();
  replaced.loadFromOptions({
    clusters: kc.clusters,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
    users: kc.users.map((u) =>
      u.name !== user.name
        ? u
        : credential.token
          ? { name: u.name, token: credential.token }
          : {
              name: u.name,
              certData: Buffer.from(credential.clientCertificateData ?? "").toString("base64"),
              keyData: Buffer.from(credential.clientKeyData ?? "").toString("base64"),
            },
    ),
  });
  return replaced;
}
