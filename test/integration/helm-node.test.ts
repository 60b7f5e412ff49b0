// The Helm chart end to end on the real node, as an operator uses it: `helm install` of
// charts/concierge with the image imported into containerd, then a login (TokenCredentialRequest
// checked by a TokenReview webhook, a certificate kube-apiserver accepts); `helm upgrade` to three
// replicas and log level debug, observed on the pods; `helm uninstall`, after which nothing
// labelled as the Concierge's, and none of its cluster-scoped objects, is left. The run's
// kubectl-applied Concierge (test/harness/node.ts) owns the same API groups, so it is removed
// first; the next suite that needs it installs it again.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { NodeCluster } from "../../hack/node/cluster.ts";
import { buildConciergeImage, conciergeServing } from "../../hack/node/install-concierge.ts";
import { eventually } from "../harness/eventually.ts";
import { chartDir, type Helm, newHelm } from "../harness/helm.ts";
import { loginOnNode } from "../harness/login.ts";
import {
  type NodeWebhookAuthenticator,
  removeTestConcierge,
  signingKeyBorrowed,
  testNode,
  webhookAuthenticator,
} from "../harness/node.ts";
import { runCommand } from "../harness/process.ts";

const namespace = "pinniped-concierge";
const release = "concierge";
const user = { username: "pinny-helm", groups: ["seals"] };

// Where the Concierge's objects may be, and the label the chart and the Concierge put on them.
const namespacedKinds = [
  "deployments.apps",
  "replicasets.apps",
  "pods",
  "services",
  "secrets",
  "configmaps",
  "serviceaccounts",
  "roles.rbac.authorization.k8s.io",
  "rolebindings.rbac.authorization.k8s.io",
  "poddisruptionbudgets.policy",
];
const clusterKinds = [
  "clusterroles.rbac.authorization.k8s.io",
  "clusterrolebindings.rbac.authorization.k8s.io",
  "apiservices.apiregistration.k8s.io",
  "validatingwebhookconfigurations.admissionregistration.k8s.io",
  "namespaces",
];
const crds = [
  "credentialissuers.config.concierge.pinniped.dev",
  "jwtauthenticators.authentication.concierge.pinniped.dev",
  "webhookauthenticators.authentication.concierge.pinniped.dev",
];

describe("the Helm chart on the real node", () => {
  let n: NodeCluster;
  let helm: Helm;
  let dir: string;
  let authenticator: NodeWebhookAuthenticator | undefined;
  let installed = false;
  const token = "helm-user-token";

  /** Every object labelled app=pinniped-concierge, and the CRDs, as `kind/name` lines. */
  const leftovers = async () => {
    const labelled = await n.kubectl([
      "get",
      [...namespacedKinds, ...clusterKinds].join(","),
      "-A",
      "-l",
      "app=pinniped-concierge",
      "-o",
      "name",
    ]);
    const defined = await n.kubectl(["get", "crd", ...crds, "--ignore-not-found", "-o", "name"]);
    return `${labelled}${defined}`.split("\n").filter(Boolean).sort();
  };

  const conciergePods = async () =>
    (
      JSON.parse(
        await n.kubectl([
          "get",
          "pods",
          "-n",
          namespace,
          "-l",
          "deployment.pinniped.dev=concierge",
          "-o",
          "json",
        ]),
      ) as {
        items: {
          metadata: { name: string; deletionTimestamp?: string };
          status: { conditions?: { type: string; status: string }[] };
        }[];
      }
    ).items.filter((p) => !p.metadata.deletionTimestamp);

  /** A TokenCredentialRequest through the aggregator, then `kubectl auth whoami` with its certificate. */
  const loginAndWhoami = async () => {
    assert.ok(authenticator, "the authenticator is created first");
    const kubeconfig = await loginOnNode(
      n,
      token,
      { kind: "WebhookAuthenticator", name: authenticator.name },
      join(dir, "user.kubeconfig"),
    );
    const res = await runCommand(join(n.binDir, "kubectl"), [
      "--kubeconfig",
      kubeconfig,
      "--cache-dir",
      join(dir, "cache"),
      "auth",
      "whoami",
      "-o",
      "json",
    ]);
    assert.equal(res.code, 0, res.stderr);
    const whoami = JSON.parse(res.stdout) as { status: { userInfo: { username: string; groups: string[] } } };
    assert.equal(whoami.status.userInfo.username, user.username);
    assert.ok(whoami.status.userInfo.groups.includes("seals"), whoami.status.userInfo.groups.join(","));
  };

  before(async () => {
    n = await testNode();
    helm = await newHelm();
    dir = await mkdtemp(join(tmpdir(), "concierge-helm-node-"));
    await n.importImage(await buildConciergeImage());
    await removeTestConcierge(n);
  });

  after(async () => {
    await authenticator?.remove();
    if (installed)
      await helm(["uninstall", release, "--wait", "--timeout=5m"], { kubeconfig: n.kubeconfigPath });
    await helm?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("helm install: the Concierge serves and a user logs in", async () => {
    assert.deepEqual(await leftovers(), [], "no Concierge on the node before the install");
    const began = Date.now();
    installed = true;
    await helm(["install", release, chartDir, "--wait", "--timeout=5m"], { kubeconfig: n.kubeconfigPath });
    await conciergeServing(n);
    process.stderr.write(`# helm install to serving: ${((Date.now() - began) / 1000).toFixed(1)} s\n`);
    authenticator = await webhookAuthenticator(n, "helm", { [token]: user });
    await signingKeyBorrowed(n);
    await loginAndWhoami();
  });

  it("helm upgrade: three replicas, and every one logs at debug level", async () => {
    const before = new Set((await conciergePods()).map((p) => p.metadata.name));
    await helm(
      [
        "upgrade",
        release,
        chartDir,
        "--reuse-values",
        "--set",
        "replicas=3",
        "--set",
        "log.level=debug",
        "--wait",
        "--timeout=5m",
      ],
      { kubeconfig: n.kubeconfigPath },
    );
    await conciergeServing(n);
    // The changed config file rolls the pods (the chart's checksum annotation); the old ones drain.
    const pods = await eventually(
      "three new Ready replicas and no old one",
      async () => {
        const now = await conciergePods();
        const ready = now.filter((p) =>
          p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        return (
          ready.length === 3 && now.length === 3 && now.every((p) => !before.has(p.metadata.name)) && now
        );
      },
      { timeoutMs: 300_000, intervalMs: 1000 },
    );
    for (const pod of pods) {
      await eventually(`a debug line in ${pod.metadata.name}'s log`, async () =>
        (await n.kubectl(["logs", "-n", namespace, pod.metadata.name])).split("\n").some((line) => {
          try {
            return (JSON.parse(line) as { level?: string }).level === "debug";
          } catch {
            return false;
          }
        }),
      );
    }
    await signingKeyBorrowed(n);
    await loginAndWhoami();
  });

  it("helm uninstall: nothing the chart or the Concierge made is left", async () => {
    await authenticator?.remove();
    authenticator = undefined;
    const present = await leftovers();
    process.stderr.write(
      `# before helm uninstall (labelled app=pinniped-concierge, and the CRDs):\n#   ${present.join("\n#   ")}\n`,
    );
    // What the Concierge itself created, beside what the chart rendered.
    for (const made of [
      "deployment.apps/pinniped-concierge-kube-cert-agent",
      "secret/pinniped-concierge-api-tls-serving-certificate",
    ])
      assert.ok(present.includes(made), `${made} is there before the uninstall`);
    await helm(["uninstall", release, "--wait", "--timeout=5m"], { kubeconfig: n.kubeconfigPath });
    installed = false;
    const left = await eventually(
      "the namespace and everything in it gone",
      async () => {
        const now = await leftovers();
        return now.length === 0 ? now : false;
      },
      { timeoutMs: 300_000, intervalMs: 1000 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\nleft: ${(await leftovers()).join(", ")}`);
    });
    assert.deepEqual(left, []);
    assert.equal(
      await n.kubectl(["get", "namespace", namespace, "--ignore-not-found", "-o", "name"]),
      "",
      "the chart's namespace is gone",
    );
  });
});
