// Runs the Concierge as a local process against a control plane on loopback (for tests and the
// demo), installed from config/ the way a cluster would be, minus the Deployment:
// - the API Service becomes `ExternalName: localhost` with port = the local listener, and the
//   APIServices and the webhook configuration name that port, because kube-apiserver dials
//   `<externalName>:<port the APIService or webhook names>` (see DESIGN.md: Endpoints may not
//   hold loopback addresses);
// - the process authenticates with a TokenRequest token of its own ServiceAccount, so it has
//   exactly the RBAC of config/02-rbac.yaml and a missing rule fails here as it would in a cluster.
//
//   node hack/run-local.ts --kubeconfig <admin kubeconfig>   (runs until Ctrl-C)
import { readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { parse, parseAllDocuments } from "yaml";
import { createLogger, type Logger } from "../observability/logger.ts";
import { type ConciergeConfig, configFromObject } from "../server/config.ts";
import { type Concierge, type StartOptions, startConcierge } from "../server/main.ts";
import { runKubectl } from "../test/harness/cluster.ts";
import { freePorts, kubernetesBinDir } from "./controlplane.ts";
import { installCRDs } from "./install.ts";

export const configDir = resolve(dirname(fileURLToPath(import.meta.url)), "..", "config");

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  webhooks?: { clientConfig: { service?: { port?: number } } }[];
}

/** Every object in config/*.yaml, in file order. */
export async function loadManifests(dir = configDir): Promise<Manifest[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml")).sort();
  const objects: Manifest[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(await readFile(join(dir, file), "utf8"))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as Manifest | null;
      if (obj) objects.push(obj);
    }
  }
  // Namespaces first, so that the namespaced objects of any file have somewhere to go.
  return objects.sort((a, b) => Number(b.kind === "Namespace") - Number(a.kind === "Namespace"));
}

/** config/ as installed for a local process listening on `port`; the Deployment left out. */
export function localManifests(objects: readonly Manifest[], port: number, serviceName: string): Manifest[] {
  return objects
    .filter((o) => o.kind !== "Deployment")
    .map((o) => {
      if (o.kind === "Service" && o.metadata.name === serviceName) {
        return { ...o, spec: { type: "ExternalName", externalName: "localhost", ports: [{ port }] } };
      }
      if (o.kind === "APIService") {
        const service = o.spec?.service as Record<string, unknown>;
        return { ...o, spec: { ...o.spec, service: { ...service, port } } };
      }
      if (o.kind === "ValidatingWebhookConfiguration") {
        return {
          ...o,
          webhooks: (o.webhooks ?? []).map((w) => ({
            ...w,
            clientConfig: { ...w.clientConfig, service: { ...w.clientConfig.service, port } },
          })),
        };
      }
      return o;
    });
}

export interface RunLocalOptions {
  /** The control plane's admin kubeconfig: used to install, never by the Concierge. */
  kubeconfigPath: string;
  /** Where kubectl is; default the pinned build. */
  binDir?: string;
  log?: Logger;
  leaderElection?: StartOptions["leaderElection"];
  /** Default `<hostname>-<pid>`, as in a pod without POD_NAME. */
  identity?: string;
  /** pinniped.yaml settings laid over config/'s, e.g. a short certificate TTL for a test. */
  configOverrides?: Record<string, unknown>;
  /** The aggregated API's port; default a free one. Fixed when a URL on it must be known first (a JWT issuer's). */
  aggregatedAPIServerPort?: number;
}

export interface LocalConcierge extends Concierge {
  /** The kubeconfig the Concierge runs with (its ServiceAccount's token). */
  kubeconfigPath: string;
  namespace: string;
}

export interface LocalInstall {
  config: ConciergeConfig;
  /** The pinniped.yaml settings `config` was made from, for a Concierge run as its own process. */
  settings: Record<string, unknown>;
  kubeConfig: KubeConfig;
  /** The kubeconfig the Concierge runs with (its ServiceAccount's token). */
  kubeconfigPath: string;
  namespace: string;
}

/** config/ installed for a local process, and what that process runs with; starts nothing. */
export async function installLocal(
  options: Omit<RunLocalOptions, "leaderElection" | "identity">,
): Promise<LocalInstall> {
  const log = options.log ?? createLogger();
  const binDir = options.binDir ?? (await kubernetesBinDir());
  const kubectl = async (args: string[], input?: string) => {
    const res = await runKubectl(binDir, options.kubeconfigPath, args, input === undefined ? {} : { input });
    if (res.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${res.stderr}`);
    return res.stdout;
  };

  await installCRDs(binDir, options.kubeconfigPath);
  const [freeAPIPort, healthPort] = await freePorts(2);
  const apiPort = options.aggregatedAPIServerPort ?? freeAPIPort;
  const manifests = await loadManifests();
  const configMap = manifests.find((o) => o.kind === "ConfigMap" && o.data?.["pinniped.yaml"] !== undefined);
  if (!configMap) throw new Error(`no ConfigMap with pinniped.yaml in ${configDir}`);
  const namespace = configMap.metadata.namespace!;
  const settings = {
    ...(parse(configMap.data!["pinniped.yaml"]!) as Record<string, unknown>),
    ...options.configOverrides,
    namespace,
    aggregatedAPIServerPort: apiPort,
    healthPort,
    extraServingSANs: ["localhost", "127.0.0.1"],
  };
  const config = configFromObject(settings, { env: {} });
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: localManifests(manifests, apiPort!, config.names.apiService),
    }),
  );
  log.info("installed config/ for a local process", { namespace, apiPort });

  // TokenRequest: a bound token of the ServiceAccount, as a pod would have mounted.
  const token = (
    await kubectl(["create", "token", "pinniped-concierge", "-n", namespace, "--duration=24h"])
  ).trim();
  const admin = new KubeConfig();
  admin.loadFromFile(options.kubeconfigPath);
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error(`${options.kubeconfigPath} has no current cluster`);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ ...cluster, name: "local" }],
    users: [{ name: "pinniped-concierge", token }],
    contexts: [{ name: "pinniped-concierge", cluster: "local", user: "pinniped-concierge" }],
    currentContext: "pinniped-concierge",
  });
  const kubeconfigPath = join(dirname(options.kubeconfigPath), "pinniped-concierge.kubeconfig");
  await writeFile(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });
  return { config, settings, kubeConfig, kubeconfigPath, namespace };
}

export async function runLocal(options: RunLocalOptions): Promise<LocalConcierge> {
  const log = options.log ?? createLogger();
  const { config, kubeConfig, kubeconfigPath, namespace } = await installLocal({ ...options, log });
  const concierge = await startConcierge({
    config,
    kubeConfig,
    host: "127.0.0.1",
    log,
    ...(options.identity ? { identity: options.identity } : {}),
    ...(options.leaderElection ? { leaderElection: options.leaderElection } : {}),
  });
  return { ...concierge, kubeconfigPath, namespace };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { kubeconfig: { type: "string" } }, strict: true });
  if (!values.kubeconfig) {
    process.stderr.write("usage: node hack/run-local.ts --kubeconfig <admin kubeconfig>\n");
    process.exit(2);
  }
  const concierge = await runLocal({ kubeconfigPath: values.kubeconfig });
  process.stderr.write(
    `Concierge running: API on 127.0.0.1:${concierge.ports.aggregatedAPI}, ` +
      `health and metrics on http://127.0.0.1:${concierge.ports.health}; Ctrl-C stops it\n`,
  );
  const onSignal = () => void concierge.stop().then(() => process.exit(0));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
}
