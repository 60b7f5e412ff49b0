// The Helm chart (charts/concierge) without a node: helm lint, the default render against crds/ and
// config/ (so the chart and the one-apply install cannot drift), what each value changes, the
// values schema refusing bad values, and every render accepted by the real kube-apiserver
// (`kubectl apply --dry-run=server`).
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import { renderInstall } from "../../hack/render-install.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { chartDir, type Helm, newHelm, repoRoot } from "../harness/helm.ts";

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

const docs = (text: string): Obj[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);

const key = (o: Obj) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`;

/** What `kubectl apply -f crds/ -f config/` installs. */
function repositoryInstall(): Obj[] {
  return ["crds", "config"].flatMap((dir) =>
    readdirSync(join(repoRoot, dir))
      .filter((f) => f.endsWith(".yaml"))
      .flatMap((f) => docs(readFileSync(join(repoRoot, dir, f), "utf8"))),
  );
}

/**
 * Comparable objects by kind, namespace and name: the config file parsed (its comments differ),
 * and without the chart's one addition, the Deployment's checksum of the config file (Helm's
 * idiom for rolling the pods when only the ConfigMap changed).
 */
function normalised(objects: Obj[]): Map<string, Obj> {
  const out = new Map<string, Obj>();
  for (const o of structuredClone(objects)) {
    if (o.kind === "ConfigMap") {
      const data = o.data as Record<string, string>;
      o.data = { ...data, "pinniped.yaml": parse(data["pinniped.yaml"] ?? "") };
    }
    if (o.kind === "Deployment") {
      const meta = (o.spec as { template: { metadata: { annotations?: Record<string, string> } } }).template
        .metadata;
      delete meta.annotations?.["checksum/config"];
      if (meta.annotations && Object.keys(meta.annotations).length === 0) delete meta.annotations;
    }
    assert.ok(!out.has(key(o)), `${key(o)} rendered twice`);
    out.set(key(o), o);
  }
  return out;
}

const configFile = (objects: Obj[]) => {
  const cm = objects.find((o) => o.kind === "ConfigMap");
  assert.ok(cm, "a ConfigMap is rendered");
  return parse((cm.data as Record<string, string>)["pinniped.yaml"] ?? "") as Record<string, unknown>;
};
const deployment = (objects: Obj[]) =>
  objects.find((o) => o.kind === "Deployment") as Obj & {
    spec: {
      replicas: number;
      template: {
        metadata: { labels: Record<string, string> };
        spec: {
          containers: { image: string; env: { name: string; value?: string }[]; resources: unknown }[];
          priorityClassName?: string;
          nodeSelector?: Record<string, string>;
          tolerations?: unknown[];
          imagePullSecrets?: { name: string }[];
        };
      };
    };
  };

describe("the Helm chart", () => {
  let helm: Helm;
  let cluster: TestCluster;
  const template = (args: string[] = []) =>
    helm(["template", "concierge", chartDir, ...args]).then((text) => ({ text, objects: docs(text) }));

  before(async () => {
    helm = await newHelm();
    cluster = await testCluster();
  });
  after(async () => {
    await helm?.cleanup();
  });

  it("passes helm lint --strict with its defaults and with every value changed", async () => {
    await helm(["lint", "--strict", chartDir]);
    await helm(["lint", "--strict", chartDir, "-f", join(import.meta.dirname, "helm-values-all.yaml")]);
  });

  it("renders with default values exactly what kubectl apply -f crds/ -f config/ installs", async () => {
    const chart = normalised((await template()).objects);
    const repo = normalised(repositoryInstall());
    assert.deepEqual([...chart.keys()].sort(), [...repo.keys()].sort());
    for (const [k, o] of repo)
      assert.deepEqual(chart.get(k), o, `${k} differs between the chart and crds/ + config/`);
  });

  it("renders a second install as hack/render-install.ts does (suffix, namespace and name)", async () => {
    const options = { apiGroupSuffix: "acme.example", namespace: "acme-concierge", name: "acme-concierge" };
    const chart = normalised(
      (
        await template([
          "--set",
          `apiGroupSuffix=${options.apiGroupSuffix}`,
          "--set",
          `namespace=${options.namespace}`,
          "--set",
          `appName=${options.name}`,
        ])
      ).objects,
    );
    const rendered = normalised(docs(renderInstall(options)));
    assert.deepEqual([...chart.keys()].sort(), [...rendered.keys()].sort());
    for (const [k, o] of rendered)
      assert.deepEqual(chart.get(k), o, `${k} differs between the chart and hack/render-install.ts`);
  });

  it("renders every value where it belongs", async () => {
    const { objects } = await template(["-f", join(import.meta.dirname, "helm-values-all.yaml")]);
    const ns = "auth-system";
    assert.equal(
      objects.find((o) => o.kind === "Namespace"),
      undefined,
      "intoNamespace: no Namespace object",
    );
    for (const o of objects) {
      if (o.metadata.namespace) {
        assert.ok(
          [ns, "kube-system", "kube-public"].includes(o.metadata.namespace),
          `${key(o)} is in intoNamespace or a system namespace`,
        );
      }
      assert.equal(o.metadata.labels?.team, "identity", `${key(o)} carries the custom label`);
      assert.ok(!JSON.stringify(o).includes("pinniped-concierge-"), `${key(o)} is named after appName only`);
      assert.ok(!JSON.stringify(o).includes('concierge.pinniped.dev"'), `${key(o)} uses the suffix`);
    }
    const crds = objects.filter((o) => o.kind === "CustomResourceDefinition").map((o) => o.metadata.name);
    assert.deepEqual(crds.sort(), [
      "credentialissuers.config.concierge.acme.example",
      "jwtauthenticators.authentication.concierge.acme.example",
      "webhookauthenticators.authentication.concierge.acme.example",
    ]);
    for (const crd of objects.filter((o) => o.kind === "CustomResourceDefinition"))
      assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], "keep");
    assert.deepEqual(
      objects
        .filter((o) => o.kind === "APIService")
        .map((o) => [o.metadata.name, (o.spec as { service: { namespace: string; name: string } }).service]),
      [
        ["v1alpha1.login.concierge.acme.example", { namespace: ns, name: "acme-concierge-api", port: 443 }],
        [
          "v1alpha1.identity.concierge.acme.example",
          { namespace: ns, name: "acme-concierge-api", port: 443 },
        ],
      ],
    );
    const webhook = objects.find((o) => o.kind === "ValidatingWebhookConfiguration") as Obj & {
      webhooks: { name: string; rules: { apiGroups: string[] }[] }[];
    };
    assert.deepEqual(
      webhook.webhooks.map((w) => [w.name, w.rules[0]?.apiGroups]),
      [
        [
          "jwtauthenticators.authentication.concierge.acme.example",
          ["authentication.concierge.acme.example"],
        ],
        [
          "webhookauthenticators.authentication.concierge.acme.example",
          ["authentication.concierge.acme.example"],
        ],
      ],
    );
    const d = deployment(objects);
    const pod = d.spec.template.spec;
    const container = pod.containers[0];
    assert.equal(d.spec.replicas, 3);
    assert.equal(container?.image, `registry.example.com/concierge@sha256:${"a".repeat(64)}`);
    // Helm merges a map from values files into the default one: the limits stay.
    assert.deepEqual(container?.resources, {
      requests: { cpu: "200m", memory: "100Mi" },
      limits: { cpu: "500m", memory: "256Mi" },
    });
    assert.deepEqual(
      container?.env.filter((e) => e.name.endsWith("PROXY")),
      [
        { name: "HTTPS_PROXY", value: "http://proxy.example:3128" },
        { name: "NO_PROXY", value: "10.0.0.0/8,.svc" },
      ],
    );
    assert.equal(pod.priorityClassName, "system-cluster-critical");
    assert.deepEqual(pod.nodeSelector, { "kubernetes.io/os": "linux" });
    assert.deepEqual(pod.tolerations, [
      { key: "dedicated", operator: "Equal", value: "auth", effect: "NoSchedule" },
    ]);
    assert.deepEqual(pod.imagePullSecrets, [{ name: "registry-credentials" }]);
    assert.equal(d.spec.template.metadata.labels.team, "identity");
    assert.deepEqual(
      objects.filter((o) => o.kind === "PodDisruptionBudget").map((o) => o.spec),
      [{ maxUnavailable: 2, selector: { matchLabels: { "deployment.pinniped.dev": "concierge" } } }],
    );
    const monitor = objects.find((o) => o.kind === "ServiceMonitor");
    assert.ok(monitor, "serviceMonitor.enabled renders a ServiceMonitor");
    assert.equal(monitor.metadata.labels?.release, "prometheus");
    const endpoints = (
      monitor.spec as { endpoints: { interval: string; tlsConfig: { serverName: string } }[] }
    ).endpoints;
    assert.equal(endpoints[0]?.interval, "15s");
    assert.equal(endpoints[0]?.tlsConfig.serverName, "acme-concierge-api.auth-system.svc");
    const config = configFile(objects);
    assert.equal(config.apiGroupSuffix, "acme.example");
    assert.deepEqual(config.labels, { app: "acme-concierge", team: "identity" });
    assert.deepEqual(config.log, { level: "debug", format: "text" });
    assert.deepEqual(config.kubeCertAgent, {
      namePrefix: "acme-concierge-kube-cert-agent-",
      image: "registry.example.com/agent:v1",
      imagePullSecrets: ["agent-credentials"],
      priorityClassName: "agent-priority",
    });
    assert.equal(config.impersonationProxyServerPort, 9444);
    assert.deepEqual(config.impersonationProxy, { pingIntervalSeconds: 15, upgradeIdleTimeoutSeconds: 3600 });
    assert.deepEqual(config.tokenCredentialRequest, { clientCertificateTTLSeconds: 600 });
    assert.deepEqual(config.discovery, { url: "https://api.example.com" });
    assert.deepEqual(config.audit, { logUsernamesAndGroups: "enabled" });
    assert.deepEqual(config.outbound, { allowLinkLocalAddresses: true });
    assert.deepEqual(config.strategies, { order: ["KubeClusterSigningCertificate", "ImpersonationProxy"] });
  });

  it("refuses bad values before rendering anything", async () => {
    for (const [set, says] of [
      ["log.level=loud", "log.level"],
      ["replicaCount=3", "replicaCount"],
      ["image.digest=latest", "image.digest"],
      ["apiGroupSuffix=Not_A_Domain", "apiGroupSuffix"],
    ] as const) {
      await assert.rejects(template(["--set", set]), (err: Error) => {
        assert.match(err.message, new RegExp(says.replace(".", "\\.?.*")), set);
        return true;
      });
    }
  });

  it("renders objects the real kube-apiserver accepts (kubectl apply --dry-run=server)", async () => {
    // The default render with its namespace created (a dry run does not create the namespace
    // its namespaced objects need), and a second install beside it in an existing namespace.
    const namespace = await cluster.newNamespace("helm-chart");
    const into = await cluster.newNamespace("helm-into");
    try {
      for (const args of [
        ["--set", `namespace=${namespace}`],
        [
          "--set",
          `intoNamespace=${into}`,
          "--set",
          "apiGroupSuffix=chart-dry-run.example",
          "--set",
          "appName=dry-run-concierge",
          "--set",
          "customLabels.team=identity",
        ],
      ]) {
        const { text } = await template(args);
        const res = await cluster.kubectl(["apply", "--dry-run=server", "-f", "-"], { input: text });
        assert.equal(res.code, 0, `kubectl apply --dry-run=server ${args.join(" ")}: ${res.stderr}`);
        assert.match(res.stdout, /deployment\.apps\/\S+ (created|configured) \(server dry run\)/);
      }
    } finally {
      await cluster.kubectl(["delete", "namespace", namespace, into, "--wait=false"]);
    }
  });
});
