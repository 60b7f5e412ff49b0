import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AgentConfig,
  containerArgByName,
  type Deployment,
  deepDerivative,
  deploymentAction,
  mergeLabelsAndAnnotations,
  newAgentDeployment,
  newestRunningPod,
  newestRunningPodOnSchedulableNode,
  noControllerManagerMessage,
  type Pod,
  parsePrintOutput,
  parseStringFlags,
  signingCertPath,
  signingKeyPath,
} from "./agent.ts";

const now = Date.UTC(2021, 3, 13, 9, 57);
const ago = (hours: number) => new Date(now - hours * 3_600_000).toISOString();

function pod(name: string, phase: string, createdHoursAgo: number, nodeName?: string): Pod {
  return {
    metadata: { namespace: "kube-system", name, creationTimestamp: ago(createdHoursAgo) },
    spec: { nodeName },
    status: { phase },
  };
}

// Upstream's healthyKubeControllerManagerPod.
const controllerManager: Pod = {
  metadata: {
    namespace: "kube-system",
    name: "kube-controller-manager-1",
    labels: { component: "kube-controller-manager" },
    creationTimestamp: ago(1),
  },
  spec: {
    containers: [
      {
        name: "kube-controller-manager",
        image: "kubernetes/kube-controller-manager",
        command: [
          "kube-controller-manager",
          "--some-flag",
          "--some-other-flag",
          "--cluster-signing-cert-file",
          "/path/to/signing.crt",
          "--cluster-signing-key-file=/path/to/signing.key",
          "some arguments here",
          "--and-another-flag",
        ],
        volumeMounts: [{ name: "test-volume", readOnly: true, mountPath: "/path" }],
      },
    ],
    volumes: [{ name: "test-volume", hostPath: { path: "/host/path" } }],
    nodeName: "schedulable-node-name-1",
    nodeSelector: { "some-selector-key": "some-selector-value" },
    tolerations: [{ key: "some-toleration-key" }],
  },
  status: { phase: "Running" },
};

const config: AgentConfig = {
  namespace: "concierge",
  agentName: "pinniped-concierge-kube-cert-agent-",
  image: "pinniped-server-image",
  serviceAccountName: "test-service-account-name",
  labels: { extralabel: "labelvalue", app: "anything" },
  imagePullSecrets: ["pinniped-image-pull-secret"],
};

// Upstream's healthyAgentDeployment, as JSON.
const healthyAgentDeployment: Deployment = {
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: {
    namespace: "concierge",
    name: "pinniped-concierge-kube-cert-agent",
    labels: { extralabel: "labelvalue", app: "anything" },
  },
  spec: {
    replicas: 1,
    selector: { matchLabels: { "kube-cert-agent.pinniped.dev": "v3" } },
    template: {
      metadata: { labels: { extralabel: "labelvalue", "kube-cert-agent.pinniped.dev": "v3" } },
      spec: {
        terminationGracePeriodSeconds: 0,
        imagePullSecrets: [{ name: "pinniped-image-pull-secret" }],
        containers: [
          {
            name: "sleeper",
            image: "pinniped-server-image",
            imagePullPolicy: "IfNotPresent",
            command: ["pinniped-concierge-kube-cert-agent", "sleep"],
            volumeMounts: [{ name: "test-volume", readOnly: true, mountPath: "/path" }],
            env: [
              { name: "CERT_PATH", value: "/path/to/signing.crt" },
              { name: "KEY_PATH", value: "/path/to/signing.key" },
            ],
            resources: {
              limits: { memory: "32Mi", cpu: "20m" },
              requests: { memory: "32Mi", cpu: "0" },
            },
          },
        ],
        volumes: [{ name: "test-volume", hostPath: { path: "/host/path" } }],
        restartPolicy: "Always",
        nodeSelector: { "some-selector-key": "some-selector-value" },
        automountServiceAccountToken: false,
        serviceAccountName: "test-service-account-name",
        nodeName: "schedulable-node-name-1",
        tolerations: [{ key: "some-toleration-key" }],
        securityContext: { runAsUser: 0, runAsGroup: 0 },
      },
    },
    minReadySeconds: 10,
  },
};

describe("newestRunningPod", () => {
  const cases: { name: string; pods: Pod[]; want: string | undefined }[] = [
    { name: "no pods", pods: [], want: undefined },
    {
      name: "only pending and unknown",
      pods: [pod("a", "Pending", 1), pod("b", "Unknown", 1)],
      want: undefined,
    },
    { name: "one running", pods: [pod("a", "Pending", 0), pod("b", "Running", 5)], want: "b" },
    { name: "newest running wins", pods: [pod("old", "Running", 2), pod("new", "Running", 1)], want: "new" },
    {
      // Upstream's "created new deployment" case: -1h twice and -2h, ties broken by name.
      name: "ties broken by name ascending",
      pods: [pod("kube-controller-manager-3", "Running", 1), pod("kube-controller-manager-1", "Running", 1)],
      want: "kube-controller-manager-1",
    },
    {
      name: "a newer pod that is not running loses",
      pods: [pod("a", "Running", 2), pod("b", "Failed", 0)],
      want: "a",
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(newestRunningPod(c.pods)?.metadata?.name, c.want));
  }
});

describe("newestRunningPodOnSchedulableNode", () => {
  const schedulable = { metadata: { name: "node-ok" }, spec: {} };
  const cordoned = { metadata: { name: "node-cordoned" }, spec: { unschedulable: true } };
  it("prefers the newest pod on a schedulable node", () => {
    const pods = [pod("new", "Running", 1, "node-cordoned"), pod("old", "Running", 2, "node-ok")];
    assert.equal(newestRunningPodOnSchedulableNode(pods, [schedulable, cordoned])?.metadata?.name, "old");
  });
  it("falls back to the newest when every node is unschedulable or unknown", () => {
    const pods = [pod("new", "Running", 1, "node-cordoned"), pod("old", "Running", 2, "node-gone")];
    assert.equal(newestRunningPodOnSchedulableNode(pods, [cordoned])?.metadata?.name, "new");
  });
  it("does not consult nodes with a single running pod", () => {
    const pods = [pod("only", "Running", 1, "node-cordoned")];
    assert.equal(newestRunningPodOnSchedulableNode(pods, [cordoned])?.metadata?.name, "only");
  });
});

describe("noControllerManagerMessage", () => {
  it("adds the cloud-provider note only with zero candidates", () => {
    assert.equal(
      noControllerManagerMessage([]),
      "could not find a healthy kube-controller-manager pod (0 candidates): note that this error is the expected behavior for some cluster types, including most cloud provider clusters (e.g. GKE, AKS, EKS)",
    );
    assert.equal(
      noControllerManagerMessage([1]),
      "could not find a healthy kube-controller-manager pod (1 candidate)",
    );
    assert.equal(
      noControllerManagerMessage([1, 2]),
      "could not find a healthy kube-controller-manager pod (2 candidates)",
    );
  });
});

describe("signing file flags (pflag semantics)", () => {
  const withContainers = (...containers: { command?: string[]; args?: string[] }[]): Pod => ({
    spec: { containers },
  });
  const cases: { name: string; pod: Pod; cert: string; key: string }[] = [
    {
      name: "upstream's KCM pod: separate and =-joined",
      pod: controllerManager,
      cert: "/path/to/signing.crt",
      key: "/path/to/signing.key",
    },
    {
      name: "no containers: defaults",
      pod: {},
      cert: "/etc/kubernetes/ca/ca.pem",
      key: "/etc/kubernetes/ca/ca.key",
    },
    {
      name: "flags in args",
      pod: withContainers({
        command: ["kube-controller-manager"],
        args: ["--cluster-signing-cert-file=/a.crt", "--cluster-signing-key-file", "/a.key"],
      }),
      cert: "/a.crt",
      key: "/a.key",
    },
    {
      name: "flags split between command and args",
      pod: withContainers({ command: ["kcm", "--cluster-signing-cert-file"], args: ["/split.crt"] }),
      cert: "/split.crt",
      key: "/etc/kubernetes/ca/ca.key",
    },
    {
      name: "the kube-apiserver-client variants as a fallback",
      pod: withContainers({
        command: [
          "kcm",
          "--cluster-signing-kube-apiserver-client-cert-file=/client.crt",
          "--cluster-signing-kube-apiserver-client-key-file=/client.key",
        ],
      }),
      cert: "/client.crt",
      key: "/client.key",
    },
    {
      name: "the generic flag beats the client variant whatever the order",
      pod: withContainers({
        command: [
          "kcm",
          "--cluster-signing-kube-apiserver-client-cert-file=/client.crt",
          "--cluster-signing-cert-file=/generic.crt",
        ],
      }),
      cert: "/generic.crt",
      key: "/etc/kubernetes/ca/ca.key",
    },
    {
      name: "an empty value falls through to the next flag",
      pod: withContainers({
        command: [
          "kcm",
          "--cluster-signing-cert-file=",
          "--cluster-signing-kube-apiserver-client-cert-file=/c.crt",
        ],
      }),
      cert: "/c.crt",
      key: "/etc/kubernetes/ca/ca.key",
    },
    {
      name: "the first container with a value wins",
      pod: withContainers(
        { command: ["sidecar"] },
        { command: ["kcm", "--cluster-signing-cert-file=/second.crt"] },
      ),
      cert: "/second.crt",
      key: "/etc/kubernetes/ca/ca.key",
    },
    {
      name: "the last occurrence wins",
      pod: withContainers({
        command: ["kcm", "--cluster-signing-cert-file=/one", "--cluster-signing-cert-file=/two"],
      }),
      cert: "/two",
      key: "/etc/kubernetes/ca/ca.key",
    },
    {
      name: "an unknown flag swallows a following non-flag argument",
      pod: withContainers({ command: ["kcm", "--unknown", "--cluster-signing-cert-file=/x.crt"] }),
      cert: "/x.crt",
      key: "/etc/kubernetes/ca/ca.key",
    },
    {
      name: "flags after -- are not flags",
      pod: withContainers({ command: ["kcm", "--", "--cluster-signing-cert-file=/x.crt"] }),
      cert: "/etc/kubernetes/ca/ca.pem",
      key: "/etc/kubernetes/ca/ca.key",
    },
    {
      name: "a single dash is not our long flag",
      pod: withContainers({ command: ["kcm", "-cluster-signing-cert-file=/x.crt"] }),
      cert: "/etc/kubernetes/ca/ca.pem",
      key: "/etc/kubernetes/ca/ca.key",
    },
    {
      name: "--help stops the parse",
      pod: withContainers({ command: ["kcm", "--help", "--cluster-signing-cert-file=/x.crt"] }),
      cert: "/etc/kubernetes/ca/ca.pem",
      key: "/etc/kubernetes/ca/ca.key",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(signingCertPath(c.pod), c.cert);
      assert.equal(signingKeyPath(c.pod), c.key);
    });
  }

  it("takes the next argument as the value even when it looks like a flag", () => {
    assert.deepEqual(parseStringFlags(["--f", "--g"], ["f"]), new Map([["f", "--g"]]));
  });
  it("an unknown --x=v keeps the next argument", () => {
    assert.deepEqual(parseStringFlags(["--x=v", "--f=1"], ["f"]), new Map([["f", "1"]]));
    assert.deepEqual(parseStringFlags(["--x", "v", "--f", "1"], ["f"]), new Map([["f", "1"]]));
  });
  it("unknown shorthands swallow a value unless written -x=v", () => {
    assert.deepEqual(parseStringFlags(["-v", "2", "--f", "1"], ["f"]), new Map([["f", "1"]]));
    assert.deepEqual(parseStringFlags(["-v=2", "--f", "1"], ["f"]), new Map([["f", "1"]]));
    assert.deepEqual(parseStringFlags(["-h", "--f", "1"], ["f"]), new Map());
  });
  it("a flag missing its value at the end is ignored", () => {
    assert.deepEqual(parseStringFlags(["--f=1", "--f"], ["f"]), new Map([["f", "1"]]));
  });
  it("containerArgByName returns the fallback when nothing matches", () => {
    assert.equal(containerArgByName(controllerManager, ["nope"], "fallback"), "fallback");
  });
});

describe("newAgentDeployment", () => {
  it("builds upstream's healthy agent Deployment from its KCM pod", () => {
    assert.deepEqual(newAgentDeployment(controllerManager, config), healthyAgentDeployment);
  });

  it("copies hostNetwork, sets the priority class, and runs as the configured non-root user", () => {
    const kcm = structuredClone(controllerManager);
    kcm.spec!.hostNetwork = true;
    const d = newAgentDeployment(kcm, {
      ...config,
      priorityClassName: "high",
      runAsUser: 1000,
      runAsGroup: 2000,
    });
    const spec = d.spec?.template?.spec;
    assert.equal(spec?.hostNetwork, true);
    assert.equal(spec?.priorityClassName, "high");
    assert.deepEqual(spec?.securityContext, { runAsUser: 1000, runAsGroup: 2000, runAsNonRoot: true });
  });

  it("leaves out what the KCM pod does not have", () => {
    const d = newAgentDeployment(
      { spec: { containers: [{ name: "kcm" }] } },
      { ...config, imagePullSecrets: [] },
    );
    const spec = d.spec?.template?.spec ?? {};
    for (const field of ["volumes", "nodeName", "nodeSelector", "tolerations", "imagePullSecrets"]) {
      assert.equal(field in spec, false, field);
    }
    assert.equal("volumeMounts" in (spec.containers?.[0] ?? {}), false);
  });
});

describe("mergeLabelsAndAnnotations", () => {
  it("adds and overwrites but never removes", () => {
    assert.deepEqual(
      mergeLabelsAndAnnotations(
        { name: "x", labels: { a: "1", b: "2" }, annotations: { keep: "me" } },
        { labels: { b: "3", c: "4" }, annotations: { new: "one" } },
      ),
      { name: "x", labels: { a: "1", b: "3", c: "4" }, annotations: { keep: "me", new: "one" } },
    );
    assert.deepEqual(mergeLabelsAndAnnotations({ name: "x" }, {}), { name: "x" });
  });
});

describe("deepDerivative", () => {
  const cases: [string, unknown, unknown, boolean][] = [
    [
      "unset desired matches anything",
      { a: undefined, b: "", c: [], d: {} },
      { a: 1, b: "x", c: [1], d: { e: 1 } },
      true,
    ],
    ["extra existing fields are fine", { a: 1 }, { a: 1, b: 2 }, true],
    ["a different string differs", { a: "x" }, { a: "y" }, false],
    ["a missing desired key differs", { m: { k: "v" } }, { m: {} }, false],
    ["a longer desired list differs", { l: [1, 2] }, { l: [1] }, false],
    ["list elements compare derivatively", { l: [{ a: 1 }] }, { l: [{ a: 1, b: 2 }] }, true],
    ["false and 0 equal an absent value", { b: false, n: 0 }, {}, true],
    ["true does not equal an absent value", { b: true }, {}, false],
  ];
  for (const [name, desired, existing, want] of cases) {
    it(name, () => assert.equal(deepDerivative(desired, existing), want));
  }
});

describe("deploymentAction", () => {
  const desired = newAgentDeployment(controllerManager, config);
  // As the API server returns it: metadata, defaults and status added.
  const existing: Deployment = structuredClone(desired);
  existing.metadata = { ...existing.metadata, uid: "uid-1", resourceVersion: "7", generation: 1 };
  Object.assign(existing.spec!, { revisionHistoryLimit: 10, progressDeadlineSeconds: 600 });
  Object.assign(existing.spec!, { strategy: { type: "RollingUpdate" } });
  const container = existing.spec!.template!.spec!.containers![0]!;
  Object.assign(container, { terminationMessagePath: "/dev/termination-log" });
  Object.assign(existing.spec!.template!.spec!, {
    dnsPolicy: "ClusterFirst",
    schedulerName: "default-scheduler",
  });
  existing.status = { replicas: 1 };

  const edited = (edit: (d: Deployment) => void): Deployment => {
    const d = structuredClone(existing);
    edit(d);
    return d;
  };

  it("creates when there is none", () => {
    assert.deepEqual(deploymentAction(undefined, desired), { type: "create", deployment: desired });
  });
  it("does nothing when only server defaults and extra labels differ", () => {
    assert.deepEqual(deploymentAction(existing, desired), { type: "none" });
    const extra = edited((d) => {
      d.metadata!.labels = { ...d.metadata!.labels, someone: "else" };
      d.metadata!.annotations = { "deployment.kubernetes.io/revision": "1" };
    });
    assert.deepEqual(deploymentAction(extra, desired), { type: "none" });
  });
  it("updates a changed image, keeping the resourceVersion and merging labels", () => {
    const old = edited((d) => {
      d.spec!.template!.spec!.containers![0]!.image = "old-image";
      d.metadata!.labels = { someone: "else" };
    });
    const action = deploymentAction(old, desired);
    assert.equal(action.type, "update");
    const updated = (action as { deployment: Deployment }).deployment;
    assert.equal(updated.metadata?.resourceVersion, "7");
    assert.deepEqual(updated.metadata?.labels, {
      someone: "else",
      extralabel: "labelvalue",
      app: "anything",
    });
    assert.deepEqual(updated.spec, desired.spec);
  });
  it("updates when the pod labels differ (removing an old app label)", () => {
    const old = edited((d) => {
      d.spec!.template!.metadata!.labels = { ...d.spec!.template!.metadata!.labels, app: "concierge" };
    });
    assert.equal(deploymentAction(old, desired).type, "update");
  });
  it("updates when the priority class goes back to empty", () => {
    const old = edited((d) => {
      d.spec!.template!.spec!.priorityClassName = "high";
    });
    assert.equal(deploymentAction(old, desired).type, "update");
  });
  it("recreates (delete with preconditions, then create) when the selector differs", () => {
    // Upstream's healthyAgentDeploymentWithOldStyleSelector.
    const oldStyle = { app: "concierge", extralabel: "labelvalue", "kube-cert-agent.pinniped.dev": "v2" };
    const old = edited((d) => {
      d.spec!.selector = { matchLabels: oldStyle };
      d.spec!.template!.metadata!.labels = oldStyle;
    });
    assert.deepEqual(deploymentAction(old, desired), {
      type: "recreate",
      existing: old,
      deployment: desired,
    });
  });
  it("updates when the KCM pod moved to another node", () => {
    const moved = structuredClone(controllerManager);
    moved.spec!.nodeName = "other-node";
    const action = deploymentAction(existing, newAgentDeployment(moved, config));
    assert.equal(action.type, "update");
    assert.equal(
      (action as { deployment: Deployment }).deployment.spec?.template?.spec?.nodeName,
      "other-node",
    );
  });
});

describe("parsePrintOutput", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  it("decodes upstream's output", () => {
    assert.deepEqual(parsePrintOutput('{"tls.crt": "dGVzdC1jZXJ0", "tls.key": "dGVzdC1rZXk="}', "ns/p"), {
      certPEM: "test-cert",
      keyPEM: "test-key",
    });
  });
  it("names the pod and never echoes the output", () => {
    const secret = "-----BEGIN PRIVATE KEY----- secret";
    assert.throws(
      () => parsePrintOutput(`not json ${secret}`, "ns/p"),
      (e: Error) =>
        e.message.startsWith("failed to decode signing cert/key JSON from agent pod ns/p") &&
        !e.message.includes("secret"),
    );
    assert.throws(
      () => parsePrintOutput('{"tls.crt": 5}', "ns/p"),
      /failed to decode signing cert\/key JSON from agent pod ns\/p/,
    );
    assert.throws(() => parsePrintOutput('"a string"', "ns/p"), /failed to decode signing cert\/key JSON/);
  });
  it("rejects bad base64 in either field", () => {
    assert.throws(() => parsePrintOutput(JSON.stringify({ "tls.crt": "%%%", "tls.key": b64("k") }), "ns/p"), {
      message: "failed to decode signing cert base64 from agent pod ns/p",
    });
    assert.throws(() => parsePrintOutput(JSON.stringify({ "tls.crt": b64("c"), "tls.key": "abc" }), "ns/p"), {
      message: "failed to decode signing key base64 from agent pod ns/p",
    });
  });
  it("treats missing fields and null as empty, as Go's decoder does", () => {
    assert.deepEqual(parsePrintOutput("{}", "ns/p"), { certPEM: "", keyPEM: "" });
    assert.deepEqual(parsePrintOutput("null", "ns/p"), { certPEM: "", keyPEM: "" });
  });
});
