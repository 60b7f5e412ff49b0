// The real node the end-to-end suites run on (hack/node/): a kubelet that reports Ready with its
// version, kube-controller-manager as a kubeadm-style static pod, and exec, logs and Services
// through the real kubelet and kube-proxy.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { controlPlaneLabel, type NodeCluster } from "../../hack/node/cluster.ts";
import { uniqueName } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";
import { testNode } from "../harness/node.ts";

interface Pod {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { containers: { command?: string[]; image: string }[]; volumes?: { hostPath?: { path: string } }[] };
  status: { phase: string; podIP?: string };
}

describe("real node", () => {
  let n: NodeCluster;
  before(async () => {
    n = await testNode();
  });

  it("is Ready, reports the pinned kubelet version and is labelled control-plane", async () => {
    const node = JSON.parse(await n.kubectl(["get", "node", n.nodeName, "-o", "json"])) as {
      metadata: { labels: Record<string, string> };
      status: {
        nodeInfo: { kubeletVersion: string; containerRuntimeVersion: string };
        conditions: { type: string; status: string }[];
      };
    };
    assert.equal(node.status.nodeInfo.kubeletVersion, n.kubernetesVersion);
    assert.match(node.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\//);
    assert.equal(node.status.conditions.find((c) => c.type === "Ready")?.status, "True");
    assert.ok(controlPlaneLabel in node.metadata.labels);
  });

  it("runs kube-controller-manager as a kubeadm-style static pod with the PKI on hostPath", async () => {
    const pod = JSON.parse(
      await n.kubectl([
        "get",
        "pod",
        "-n",
        "kube-system",
        `kube-controller-manager-${n.nodeName}`,
        "-o",
        "json",
      ]),
    ) as Pod;
    assert.equal(pod.status.phase, "Running");
    assert.equal(pod.metadata.labels?.component, "kube-controller-manager");
    assert.equal(pod.metadata.labels?.tier, "control-plane");
    const command = pod.spec.containers[0]?.command ?? [];
    assert.ok(command.includes("--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt"));
    assert.ok(command.includes("--cluster-signing-key-file=/etc/kubernetes/pki/ca.key"));
    assert.ok(pod.spec.volumes?.some((v) => v.hostPath?.path === "/etc/kubernetes/pki"));
  });

  it("execs in and reads logs of a container through the real kubelet", async () => {
    const version = await n.kubectl([
      "exec",
      "-n",
      "kube-system",
      `kube-controller-manager-${n.nodeName}`,
      "--",
      "kube-controller-manager",
      "--version",
    ]);
    assert.equal(version.trim(), `Kubernetes ${n.kubernetesVersion}`);
    const logs = await n.kubectl([
      "logs",
      "-n",
      "kube-system",
      `kube-controller-manager-${n.nodeName}`,
      "--tail=200",
    ]);
    assert.ok(logs.length > 0);
  });

  it("schedules a pod onto the node, gives it an address on the bridge, and reaps it when deleted", async () => {
    const ns = uniqueName("node");
    await n.kubectl(["create", "namespace", ns]);
    const kcm = JSON.parse(
      await n.kubectl([
        "get",
        "pod",
        "-n",
        "kube-system",
        `kube-controller-manager-${n.nodeName}`,
        "-o",
        "json",
      ]),
    ) as Pod;
    const image = kcm.spec.containers[0]?.image ?? "";
    try {
      await n.kubectl(
        ["apply", "-n", ns, "-f", "-"],
        JSON.stringify({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "printer" },
          spec: {
            restartPolicy: "Never",
            containers: [
              {
                name: "main",
                image,
                imagePullPolicy: "Never",
                command: ["kube-controller-manager", "--version"],
              },
            ],
          },
        }),
      );
      const pod = await eventually(
        "the pod to succeed",
        async () => {
          const p = JSON.parse(await n.kubectl(["get", "pod", "-n", ns, "printer", "-o", "json"])) as Pod;
          return p.status.phase === "Succeeded" ? p : undefined;
        },
        { timeoutMs: 60_000 },
      );
      assert.ok(pod.status.podIP?.startsWith("10.88."), `pod IP ${pod.status.podIP}`);
      assert.equal(
        (await n.kubectl(["logs", "-n", ns, "printer"])).trim(),
        `Kubernetes ${n.kubernetesVersion}`,
      );
    } finally {
      await n.kubectl(["delete", "namespace", ns, "--wait=true", "--timeout=60s"]);
    }
  });

  it("comes back after a kubelet restart (a node reboot): pods keep running and exec works again", async () => {
    const kcmPod = `kube-controller-manager-${n.nodeName}`;
    const restarts = async () =>
      (
        JSON.parse(await n.kubectl(["get", "pod", "-n", "kube-system", kcmPod, "-o", "json"])) as {
          status: { containerStatuses: { restartCount: number; ready: boolean }[] };
        }
      ).status.containerStatuses[0];
    const before = await restarts();
    await n.stopKubelet();
    const down = await n
      .kubectl(["exec", "-n", "kube-system", kcmPod, "--", "kube-controller-manager", "--version"])
      .then(
        () => "reachable",
        (err: Error) => err.message,
      );
    assert.match(down, /connect|refused|error/i, "exec needs the kubelet");
    await n.startKubelet();
    const after = await eventually("the static pod to be ready again", async () => {
      const s = await restarts();
      return s?.ready ? s : undefined;
    });
    assert.equal(after.restartCount, before?.restartCount, "the container was adopted, not restarted");
    const version = await eventually("exec through the restarted kubelet", () =>
      n.kubectl(["exec", "-n", "kube-system", kcmPod, "--", "kube-controller-manager", "--version"]),
    );
    assert.equal(version.trim(), `Kubernetes ${n.kubernetesVersion}`);
  });
});
