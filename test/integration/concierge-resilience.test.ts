// The installed Concierge (test/harness/node.ts: its image on the real node, one kubectl apply)
// under what a cluster does to it: a pod deleted and a rolling restart, each during a steady
// stream of TokenCredentialRequests through kube-apiserver's aggregator, the Service and
// kube-proxy, lose no request. Also what the install promises beyond logging in: the admission
// webhook answers through its Service, the agent's `print` hands out kube-controller-manager's
// signing pair, idle memory from the containers' cgroups, and `kubectl delete` of the same files
// removes everything the Concierge created (then the install is put back for the suites after).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import type { NodeCluster } from "../../hack/node/cluster.ts";
import { conciergeImageArchive, installConcierge } from "../../hack/node/install-concierge.ts";
import { KubeRestClient } from "../../kube/rest.ts";
import { eventually } from "../harness/eventually.ts";
import { tokenCredentialRequest } from "../harness/login.ts";
import {
  conciergePods,
  type NodeWebhookAuthenticator,
  podReady,
  testConcierge,
  webhookAuthenticator,
} from "../harness/node.ts";

const repoRoot = resolve(import.meta.dirname, "..", "..");
const namespace = "pinniped-concierge";
const installFiles = ["-f", join(repoRoot, "crds"), "-f", join(repoRoot, "config")];
const token = "resilience-test-token";
const tcrPath = "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests";
const polling = { timeoutMs: 180_000 };
/**
 * A stopping pod drains until kube-apiserver closes its idle connections (90 s idle) and the
 * Deployment gives it 120 s (config/07-deployment.yaml).
 */
const terminating = { timeoutMs: 300_000 };

interface StreamResult {
  ok: number;
  failed: number;
  errors: string[];
}

/**
 * TokenCredentialRequests back to back from `workers` loops until `stop` aborts. One fails when
 * the answer is anything but 201 with a credential, or the connection fails.
 */
async function tcrStream(
  client: KubeRestClient,
  authenticatorName: string,
  workers: number,
  stop: AbortSignal,
): Promise<StreamResult> {
  const result: StreamResult = { ok: 0, failed: 0, errors: [] };
  const body = tokenCredentialRequest(token, { kind: "WebhookAuthenticator", name: authenticatorName });
  const loop = async () => {
    while (!stop.aborted) {
      try {
        const answer = await client.request<{ status?: { credential?: unknown; message?: string } }>({
          method: "POST",
          path: tcrPath,
          body,
          timeoutMs: 30_000,
        });
        if (answer.status?.credential) result.ok++;
        else {
          result.failed++;
          result.errors.push(`no credential: ${answer.status?.message}`);
        }
      } catch (err) {
        result.failed++;
        const status = (err as { status?: { message?: string } }).status;
        result.errors.push(`${(err as Error).message}${status?.message ? `: ${status.message}` : ""}`);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, loop));
  return result;
}

describe("the installed Concierge under deletion, rolling restart and uninstall", {
  timeout: 1_800_000,
}, () => {
  let n: NodeCluster;
  let authenticator: NodeWebhookAuthenticator;
  let client: KubeRestClient;

  const pods = (selector: string) => conciergePods(n, selector);
  const concierges = () => pods("deployment.pinniped.dev=concierge");

  before(async () => {
    ({ node: n } = await testConcierge());
    authenticator = await webhookAuthenticator(n, "resilience", {
      [token]: { username: "walrus@example.com", groups: ["pinnipeds"] },
    });
    client = new KubeRestClient(n.kubeConfig());
    await eventually(
      "a TokenCredentialRequest through the new authenticator succeeds",
      async () => {
        const answer = await client.request<{ status?: { credential?: unknown } }>({
          method: "POST",
          path: tcrPath,
          body: {
            apiVersion: "login.concierge.pinniped.dev/v1alpha1",
            kind: "TokenCredentialRequest",
            spec: {
              token,
              authenticator: {
                apiGroup: "authentication.concierge.pinniped.dev",
                kind: "WebhookAuthenticator",
                name: authenticator.name,
              },
            },
          },
        });
        return answer.status?.credential !== undefined;
      },
      polling,
    );
  });

  after(async () => {
    client?.close?.();
    await authenticator?.remove();
  });

  it("serves the aggregated APIs through the Service's two ready endpoints", async () => {
    const slices = JSON.parse(
      await n.kubectl([
        "get",
        "endpointslices",
        "-n",
        namespace,
        "-l",
        "kubernetes.io/service-name=pinniped-concierge-api",
        "-o",
        "json",
      ]),
    ) as { items: { endpoints: { conditions: { ready: boolean } }[] }[] };
    assert.equal(slices.items.flatMap((s) => s.endpoints).filter((e) => e.conditions.ready).length, 2);
    const apiService = JSON.parse(
      await n.kubectl(["get", "apiservice", "v1alpha1.login.concierge.pinniped.dev", "-o", "json"]),
    ) as { spec: { service: unknown }; status: { conditions: { type: string; status: string }[] } };
    assert.deepEqual(apiService.spec.service, { namespace, name: "pinniped-concierge-api", port: 443 });
    assert.equal(apiService.status.conditions.find((c) => c.type === "Available")?.status, "True");
  });

  it("refuses an invalid JWTAuthenticator in the admission webhook, reached through the same Service", async () => {
    const manifest = JSON.stringify({
      apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
      kind: "JWTAuthenticator",
      metadata: { name: "resilience-invalid" },
      spec: { issuer: "https://issuer.example.com", audience: "concierge", audiences: ["cli"] },
    });
    const refused = await n.kubectl(["create", "-f", "-"], manifest).then(
      async () => {
        await n.kubectl(["delete", "jwtauthenticator", "resilience-invalid"]);
        return "stored";
      },
      (err: Error) => err.message,
    );
    assert.match(
      refused,
      /admission webhook "jwtauthenticators\.authentication\.concierge\.pinniped\.dev" denied the request: spec\.audienceMatchPolicy: Required value/,
    );
  });

  it("has the agent in the Concierge's image print kube-controller-manager's signing pair, as upstream's agent prints it", async () => {
    const [agent] = await pods("kube-cert-agent.pinniped.dev=v3");
    assert.ok(agent);
    const printed = await n.kubectl([
      "exec",
      "-n",
      namespace,
      agent.metadata.name,
      "--",
      "pinniped-concierge-kube-cert-agent",
      "print",
    ]);
    assert.match(printed, /^\{"tls\.crt":"[A-Za-z0-9+/=]+","tls\.key":"[A-Za-z0-9+/=]+"\}\n?$/);
    const pair = JSON.parse(printed) as Record<string, string>;
    assert.equal(
      Buffer.from(pair["tls.crt"]!, "base64").toString(),
      await readFile("/etc/kubernetes/pki/ca.crt", "utf8"),
    );
  });

  /** Runs `disrupt` during a TCR stream, then streams on until both replicas are Ready again. */
  async function duringStream(what: string, disrupt: () => Promise<void>): Promise<StreamResult> {
    const stop = new AbortController();
    const stream = tcrStream(client, authenticator.name, 4, stop.signal);
    try {
      await new Promise((r) => setTimeout(r, 2000));
      await disrupt();
      await eventually(
        "two Ready replicas and none terminating",
        async () => {
          const all = await concierges();
          return all.length === 2 && all.every(podReady);
        },
        terminating,
      );
      // A little more through the new pods only.
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      // Also when the disruption failed: a stream left running would keep the run from ending.
      stop.abort();
    }
    const result = await stream;
    process.stderr.write(
      `# ${what}: ${result.ok} TokenCredentialRequests succeeded, ${result.failed} failed\n`,
    );
    return result;
  }

  it("loses no TokenCredentialRequest when a Concierge pod is deleted", async () => {
    const victim = (await concierges())[0]!.metadata.name;
    const result = await duringStream("pod deleted", async () => {
      await n.kubectl(["delete", "pod", "-n", namespace, victim, "--wait=false"]);
      await eventually(
        "the deleted pod is gone",
        async () => !(await concierges()).some((p) => p.metadata.name === victim),
        terminating,
      );
    });
    assert.ok(result.ok > 0);
    assert.deepEqual(result.errors.slice(0, 5), []);
    assert.equal(result.failed, 0);
  });

  it("loses no TokenCredentialRequest during kubectl rollout restart", async () => {
    const before = new Set((await concierges()).map((p) => p.metadata.name));
    const result = await duringStream("rollout restart", async () => {
      await n.kubectl(["rollout", "restart", "-n", namespace, "deployment/pinniped-concierge"]);
      await n.kubectl([
        "rollout",
        "status",
        "-n",
        namespace,
        "deployment/pinniped-concierge",
        // Two new pods one after the other, each Ready in 20-80 s on a loaded 2-core machine.
        "--timeout=360s",
      ]);
      await eventually(
        "the old pods are gone",
        async () => !(await concierges()).some((p) => before.has(p.metadata.name)),
        terminating,
      );
    });
    assert.ok(result.ok > 0);
    assert.deepEqual(result.errors.slice(0, 5), []);
    assert.equal(result.failed, 0);
  });

  it("prints the idle memory of the Concierge and agent containers, from their cgroups", async () => {
    const summary = JSON.parse(
      await n.kubectl(["get", "--raw", `/api/v1/nodes/${n.nodeName}/proxy/stats/summary`]),
    ) as {
      pods: {
        podRef: { name: string; namespace: string };
        containers: { name: string; memory: { rssBytes: number; workingSetBytes: number } }[];
      }[];
    };
    const mine = summary.pods.filter((p) => p.podRef.namespace === namespace);
    assert.ok(mine.length >= 3);
    const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
    for (const pod of mine) {
      for (const c of pod.containers) {
        process.stderr.write(
          `# ${pod.podRef.name}/${c.name}: RSS ${mib(c.memory.rssBytes)} MiB, working set ${mib(c.memory.workingSetBytes)} MiB\n`,
        );
        assert.ok(c.memory.workingSetBytes > 0);
      }
    }
  });

  it("is removed by kubectl delete of the files it was installed with, with everything it created", async () => {
    await n.kubectl(["delete", "--wait=true", "--timeout=180s", ...installFiles]);
    const left = await n.kubectl([
      "get",
      "deployments,services,secrets,configmaps,pods,leases,poddisruptionbudgets",
      "-A",
      "-l",
      "app=pinniped-concierge",
      "-o",
      "name",
    ]);
    assert.equal(left.trim(), "");
    assert.equal(
      (await n.kubectl(["get", "namespaces", "-o", "name"])).includes(`namespace/${namespace}`),
      false,
    );
    assert.doesNotMatch(await n.kubectl(["get", "crds", "-o", "name"]), /concierge\.pinniped\.dev/);
    assert.doesNotMatch(await n.kubectl(["get", "apiservices", "-o", "name"]), /concierge\.pinniped\.dev/);
    assert.doesNotMatch(
      await n.kubectl([
        "get",
        "clusterroles,clusterrolebindings,validatingwebhookconfigurations",
        "-o",
        "name",
      ]),
      /pinniped-concierge/,
    );

    // The suites after this one share the install: put it back, as a user would, with one apply.
    const { readySeconds } = await installConcierge(n, { archive: conciergeImageArchive });
    process.stderr.write(`# installed again: Ready ${readySeconds.toFixed(1)} s after kubectl apply\n`);
    // and serving its admission webhook, which the next suites call first.
    await eventually(
      "the admission webhook answers through its Service",
      () =>
        n.kubectl(
          ["create", "--dry-run=server", "-f", "-"],
          JSON.stringify({
            apiVersion: "authentication.concierge.pinniped.dev/v1alpha1",
            kind: "WebhookAuthenticator",
            metadata: { name: "probe" },
            spec: {
              endpoint: authenticator.webhook.url,
              tls: { certificateAuthorityData: authenticator.webhook.caBase64 },
            },
          }),
        ),
      polling,
    );
  });
});
