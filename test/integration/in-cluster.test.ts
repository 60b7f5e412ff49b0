// The Concierge as a user runs it: its image on the real node, installed with
// `kubectl apply -f crds/ -f config/` (test/harness/node.ts). Two replicas behind the real
// Service, the aggregated APIs through kube-apiserver's aggregator and that Service, the
// kube-cert-agent pod beside the static kube-controller-manager pod, exec'd through the real
// kubelet. Then a login: a TokenCredentialRequest checked by a TokenReview webhook that pods
// reach on the bridge, a certificate that kube-apiserver accepts, and a WhoAmIRequest; and the
// same again after a node reboot (kubelet stopped and started).
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { NodeCluster } from "../../hack/node/cluster.ts";
import { uniqueName } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import { loginOnNode } from "../harness/login.ts";
import {
  conciergePods,
  type NodeWebhookAuthenticator,
  podReady,
  testConcierge,
  webhookAuthenticator,
} from "../harness/node.ts";
import { runCommand } from "../harness/process.ts";

describe("the Concierge installed from its image on the real node", () => {
  let n: NodeCluster;
  let authenticator: NodeWebhookAuthenticator;
  let dir: string;
  const token = uniqueName("in-cluster-token");
  const user = { username: "pinny-in-cluster", groups: ["seals"] };

  const pods = (selector: string) => conciergePods(n, selector);

  /** A TokenCredentialRequest through the aggregator; the certificate as a kubeconfig. */
  const login = async (name: string): Promise<string> => {
    return loginOnNode(
      n,
      token,
      { kind: "WebhookAuthenticator", name: authenticator.name },
      join(dir, `${name}.kubeconfig`),
    );
  };

  const whoami = async (kubeconfig: string) => {
    // --validate=false: client-side validation lists CRDs, which a plain user may not.
    const res = await runCommand(
      join(n.binDir, "kubectl"),
      [
        "--kubeconfig",
        kubeconfig,
        "--cache-dir",
        join(dir, "cache"),
        "create",
        "--validate=false",
        "-o",
        "json",
        "-f",
        "-",
      ],
      {
        input: JSON.stringify({
          apiVersion: "identity.concierge.pinniped.dev/v1alpha1",
          kind: "WhoAmIRequest",
        }),
      },
    );
    assert.equal(res.code, 0, res.stderr);
    return (
      JSON.parse(res.stdout) as {
        status: { kubernetesUserInfo: { user: { username: string; groups: string[] } } };
      }
    ).status.kubernetesUserInfo.user;
  };

  before(async () => {
    ({ node: n } = await testConcierge());
    dir = await mkdtemp(join(tmpdir(), "in-cluster-"));
    authenticator = await webhookAuthenticator(n, "in-cluster", { [token]: user });
  });

  after(async () => {
    await authenticator?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("runs two ready Concierge pods from the image and the kube-cert-agent pod next to kube-controller-manager", async () => {
    const concierge = await pods("app=pinniped-concierge");
    assert.equal(concierge.length, 2, concierge.map((p) => p.metadata.name).join(", "));
    for (const p of concierge) {
      assert.ok(podReady(p), `${p.metadata.name} is not Ready`);
      assert.match(p.spec.containers[0]?.image ?? "", /pinniped-concierge/);
    }
    const [agent] = await pods("kube-cert-agent.pinniped.dev=v3");
    assert.ok(agent && podReady(agent), "the kube-cert-agent pod is not Ready");
    assert.equal(agent.spec.nodeName, n.nodeName);
    // The leader publishes the strategy on its sync after the agent pod runs, a moment after Ready.
    const strategy = async () => {
      const issuer = JSON.parse(
        await n.kubectl(["get", "credentialissuer", "pinniped-concierge-config", "-o", "json"]),
      ) as { status: { strategies: { type: string; status: string; reason: string }[] } };
      return issuer.status.strategies.find((s) => s.type === "KubeClusterSigningCertificate");
    };
    await eventually(
      "the KubeClusterSigningCertificate strategy succeeds",
      async () => (await strategy())?.status === "Success",
      { timeoutMs: 120_000 },
    );
    assert.equal((await strategy())?.reason, "FetchedKey");
  });

  it("logs in through the aggregator: TokenCredentialRequest, then the certificate works and WhoAmIRequest names the user", async () => {
    const kubeconfig = await login("first");
    const who = await whoami(kubeconfig);
    assert.equal(who.username, user.username);
    assert.deepEqual(who.groups, [...user.groups, "system:authenticated"]);
    assert.ok(
      authenticator.webhook.requests.some((r) => r.token === token),
      "the webhook was never asked",
    );
  });

  it("comes back after a node reboot: kubelet stopped and started, pods Ready again, logins work", async () => {
    await n.stopKubelet();
    await n.startKubelet();
    await eventually(
      "every Concierge pod and the agent pod Ready again",
      async () => {
        const all = [
          ...(await pods("app=pinniped-concierge")),
          ...(await pods("kube-cert-agent.pinniped.dev=v3")),
        ];
        return all.length === 3 && all.every(podReady);
      },
      { timeoutMs: 120_000 },
    );
    const kubeconfig = await eventually("a login after the reboot", () => login("after-reboot"), {
      timeoutMs: 60_000,
    });
    assert.equal((await whoami(kubeconfig)).username, user.username);
  });
});
