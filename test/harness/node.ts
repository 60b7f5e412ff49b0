// The real one-node cluster (hack/node/) that end-to-end tests run against: one per test run,
// started by global-setup.ts inside the namespaces the launcher made. A test file run on its own
// through the launcher (see README) starts one itself on first use.

import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { type NodeCluster, startNodeCluster } from "../../hack/node/cluster.ts";
import {
  conciergeNamespace,
  type InstalledConcierge,
  installConcierge,
} from "../../hack/node/install-concierge.ts";
import { nodeDirVariable } from "../../hack/node/namespaces.ts";
import { uniqueName } from "./cluster.ts";
import { eventually } from "./eventually.ts";
import { startTokenReviewWebhook, type TokenReviewWebhook, type WebhookUser } from "./tokenreview-webhook.ts";

/** config/03-configmap.yaml: the key holding the config file. */
const configKey = "pinniped.yaml";
/** config/: the port /metrics is served on (HTTPS), and the name the serving certificate carries. */
const apiPort = 10250;
const servingName = `pinniped-concierge-api.${conciergeNamespace}.svc`;

let shared: Promise<NodeCluster> | undefined;

/** Called by global-setup.ts, which owns the node's processes and stops them at the end. */
export function startSharedNode(): Promise<NodeCluster> {
  shared = startNodeCluster({ log: (m) => process.stderr.write(`# node: ${m}\n`) });
  return shared;
}

export function testNode(): Promise<NodeCluster> {
  if (!process.env[nodeDirVariable])
    return Promise.reject(
      new Error(
        "end-to-end tests need the real node: run them through the launcher, e.g. " +
          "node hack/node/launch.ts node --test --test-global-setup=test/harness/global-setup.ts <file>",
      ),
    );
  if (!shared) {
    shared = startSharedNode();
    const started = shared;
    process.once("beforeExit", () => void started.then((node) => node.stop()));
  }
  return shared;
}

let concierge: Promise<InstalledConcierge> | undefined;

/**
 * The Concierge installed on the run's node from its image (`npm run build:image`), with
 * `kubectl apply -f crds/ -f config/`: once per run, shared by every end-to-end suite.
 */
export async function testConcierge(): Promise<{ node: NodeCluster; concierge: InstalledConcierge }> {
  const node = await testNode();
  concierge ??= installConcierge(node, { log: (m) => process.stderr.write(`# node: ${m}\n`) });
  return { node, concierge: await concierge };
}

/**
 * Uninstalls the Concierge testConcierge() installed, if it did (`kubectl delete` of what it
 * applied), for a suite that installs its own with the same API groups: only one Concierge may
 * own them. The next testConcierge() installs it again.
 */
export async function removeTestConcierge(node: NodeCluster): Promise<void> {
  const installed = concierge;
  concierge = undefined;
  if (!installed) return;
  // A failed install may have left objects behind too.
  await installed.catch(() => undefined);
  const root = join(import.meta.dirname, "..", "..");
  await node.kubectl([
    "delete",
    "--ignore-not-found",
    "--timeout=300s",
    "-f",
    join(root, "crds"),
    "-f",
    join(root, "config"),
  ]);
}

/** What tests read of a pod in the Concierge's namespace. */
export interface ConciergePod {
  metadata: { name: string; uid: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName?: string; containers: { image: string }[] };
  status: {
    phase: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount: number; state?: { running?: { startedAt?: string } } }[];
  };
}

/**
 * The pods in the Concierge's namespace that `selector` picks, by default the Concierge's replicas
 * (the kube-cert-agent's pod never carries their `app` label); those on their way out (after a
 * rollout or a deletion) included.
 */
export async function conciergePods(
  node: NodeCluster,
  selector = "app=pinniped-concierge",
): Promise<ConciergePod[]> {
  const list = await node.kubectl(["get", "pods", "-n", conciergeNamespace, "-l", selector, "-o", "json"]);
  return (JSON.parse(list) as { items: ConciergePod[] }).items;
}

/** Ready and not on its way out: a replica the Service sends requests to. */
export function podReady(pod: ConciergePod): boolean {
  return (
    !pod.metadata.deletionTimestamp &&
    (pod.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True")
  );
}

/** A token bound to the metrics ClusterRole, as Prometheus has: one per run. */
let scraperToken: Promise<string> | undefined;

async function metricsScraper(node: NodeCluster): Promise<{ token: string; caPEM: string }> {
  scraperToken ??= (async () => {
    await node.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "v1",
            kind: "ServiceAccount",
            metadata: { name: "test-metrics-scraper", namespace: "default" },
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRoleBinding",
            metadata: { name: "test-metrics-scraper" },
            roleRef: {
              apiGroup: "rbac.authorization.k8s.io",
              kind: "ClusterRole",
              name: "pinniped-concierge-metrics-reader",
            },
            subjects: [{ kind: "ServiceAccount", name: "test-metrics-scraper", namespace: "default" }],
          },
        ],
      }),
    );
    // Longer than any run.
    return (
      await node.kubectl(["create", "token", "test-metrics-scraper", "-n", "default", "--duration=6h"])
    ).trim();
  })();
  const token = await scraperToken.catch((err: unknown) => {
    scraperToken = undefined;
    throw err;
  });
  // Read each time: suites rotate the serving certificate's CA.
  const bundle = await node.kubectl([
    "get",
    "apiservice",
    "v1alpha1.login.concierge.pinniped.dev",
    "-o",
    "jsonpath={.spec.caBundle}",
  ]);
  return { token, caPEM: Buffer.from(bundle, "base64").toString("utf8") };
}

/** GET /metrics from one pod as Prometheus scrapes it: HTTPS on the API port with a bound token. */
function scrape(podIP: string, credentials: { token: string; caPEM: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: podIP,
        port: apiPort,
        path: "/metrics",
        servername: servingName,
        ca: credentials.caPEM,
        headers: { authorization: `Bearer ${credentials.token}` },
        timeout: 30_000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(body)
            : reject(new Error(`scraping ${podIP}: ${res.statusCode} ${body.slice(0, 200)}`)),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error(`scraping ${podIP}: no answer within 30 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** The sum over the Concierge's serving replicas of one Prometheus sample (pods are reachable on the bridge). */
export async function conciergeMetric(node: NodeCluster, sample: RegExp): Promise<number> {
  const credentials = await metricsScraper(node);
  // A replica on its way out (after a rollout) is still listed for a while, but no longer answers.
  const serving = (await conciergePods(node)).filter((p) => podReady(p) && p.status.podIP);
  let total = 0;
  for (const pod of serving) {
    const text = await scrape(pod.status.podIP!, credentials);
    total += Number(sample.exec(text)?.[1] ?? 0);
  }
  return total;
}

/**
 * Changes the installed Concierge's config file (the ConfigMap from config/) as an operator
 * would: edit, `kubectl rollout restart`, wait. Resolves to a function that puts it back the same way.
 */
export async function changeConciergeConfig(
  node: NodeCluster,
  change: (config: Record<string, unknown>) => void,
): Promise<() => Promise<void>> {
  const get = async () =>
    JSON.parse(
      await node.kubectl([
        "get",
        "configmap",
        "-n",
        conciergeNamespace,
        "pinniped-concierge-config",
        "-o",
        "json",
      ]),
    ) as { data: Record<string, string> };
  const original = (await get()).data[configKey] ?? "";
  const config = parse(original) as Record<string, unknown>;
  change(config);
  const apply = async (text: string) => {
    await node.kubectl([
      "patch",
      "configmap",
      "-n",
      conciergeNamespace,
      "pinniped-concierge-config",
      "--type=merge",
      "-p",
      JSON.stringify({ data: { [configKey]: text } }),
    ]);
    await node.kubectl(["rollout", "restart", "-n", conciergeNamespace, "deployment/pinniped-concierge"]);
    await node.kubectl([
      "rollout",
      "status",
      "-n",
      conciergeNamespace,
      "deployment/pinniped-concierge",
      "--timeout=180s",
    ]);
    await node.kubectl([
      "wait",
      "--for=condition=Available",
      "--timeout=120s",
      "apiservice/v1alpha1.login.concierge.pinniped.dev",
    ]);
    // The old replicas drain for a while and the Service may still send them a request, which the
    // new replicas' metrics would not count: wait until they are gone.
    for (const deadline = Date.now() + 180_000; ; ) {
      if (!(await conciergePods(node)).some((p) => p.metadata.deletionTimestamp)) break;
      if (Date.now() > deadline) throw new Error("the Concierge's old replicas did not go within 180 s");
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  await apply(stringify(config));
  return () => apply(original);
}

/** A TokenReview webhook where the Concierge's pods reach it, and a Ready WebhookAuthenticator for it. */
export interface NodeWebhookAuthenticator {
  /** The WebhookAuthenticator's name: unique, as suites share the node. */
  readonly name: string;
  readonly webhook: TokenReviewWebhook;
  /** Deletes the WebhookAuthenticator and closes the webhook. */
  remove(): Promise<void>;
}

/**
 * Starts a TokenReview webhook on the bridge (tokens → users), applies a WebhookAuthenticator named
 * `<prefix>-<random>` for it and waits until it is Ready: what most end-to-end suites log in with.
 */
export async function webhookAuthenticator(
  node: NodeCluster,
  prefix: string,
  users: Record<string, WebhookUser>,
): Promise<NodeWebhookAuthenticator> {
  const name = uniqueName(prefix);
  const webhook = await startTokenReviewWebhook({ users, host: node.node.bridgeIP });
  const remove = async () => {
    await node.kubectl(["delete", "webhookauthenticator", name, "--ignore-not-found"]).catch(() => "");
    await webhook.close();
  };
  try {
    // Through the admission webhook, whose Service kube-proxy may still be catching up with
    // after an install.
    await eventually(
      `WebhookAuthenticator ${name} stored`,
      () =>
        node.kubectl(
          ["apply", "-f", "-"],
          JSON.stringify({
            apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
            kind: "WebhookAuthenticator",
            metadata: { name },
            spec: { endpoint: webhook.url, tls: { certificateAuthorityData: webhook.caBase64 } },
          }),
        ),
      { timeoutMs: 180_000 },
    );
    await node.kubectl([
      "wait",
      "--for=jsonpath={.status.phase}=Ready",
      "--timeout=60s",
      `webhookauthenticator/${name}`,
    ]);
  } catch (err) {
    await remove();
    throw err;
  }
  return { name, webhook, remove };
}

/**
 * Waits until the CredentialIssuer says kube-cert-agent borrowed the signing key (strategy
 * KubeClusterSigningCertificate Success), as after a rollout the new replicas load it again.
 */
export async function signingKeyBorrowed(node: NodeCluster): Promise<void> {
  await eventually(
    "KubeClusterSigningCertificate Success",
    async () => {
      const issuer = JSON.parse(
        await node.kubectl(["get", "credentialissuer", "pinniped-concierge-config", "-o", "json"]),
      ) as { status?: { strategies?: { type: string; status: string }[] } };
      return (issuer.status?.strategies ?? []).some(
        (s) => s.type === "KubeClusterSigningCertificate" && s.status === "Success",
      );
    },
    { timeoutMs: 90_000 },
  );
}
