import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { parse, parseAllDocuments } from "yaml";
import { kubernetesBinDir } from "./controlplane.ts";
import { kustomizeFiles, repoRoot } from "./gen-kustomize.ts";

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
  spec?: Record<string, unknown>;
  webhooks?: { clientConfig: { service: { namespace: string } } }[];
  data?: Record<string, string>;
}

const clusterScoped = new Set([
  "Namespace",
  "CustomResourceDefinition",
  "ClusterRole",
  "ClusterRoleBinding",
  "APIService",
  "ValidatingWebhookConfiguration",
]);

async function kustomize(dir: string): Promise<Obj[]> {
  const kubectl = join(await kubernetesBinDir(), "kubectl");
  const { stdout } = await promisify(execFile)(kubectl, ["kustomize", resolve(repoRoot, dir)], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return parseAllDocuments(stdout).map((d) => d.toJS() as Obj);
}

describe("the kustomize base and component", () => {
  it("are what hack/gen-kustomize.ts makes of crds/ and config/ (run npm run generate)", () => {
    for (const [path, text] of kustomizeFiles()) {
      assert.equal(readFileSync(join(repoRoot, path), "utf8"), text, `${path} is stale`);
    }
  });

  it("install into another namespace from another registry, leaving the kube-system and kube-public Roles in place", async () => {
    const objects = await kustomize("deploy/kustomize/example");
    const ns = (o: Obj) => o.metadata.namespace;
    const system = objects.filter((o) => ns(o) === "kube-system" || ns(o) === "kube-public");
    assert.deepEqual(system.map((o) => `${o.kind} ${ns(o)}/${o.metadata.name}`).sort(), [
      "Role kube-public/pinniped-concierge-cluster-info-lister-watcher",
      "Role kube-system/pinniped-concierge-kube-system-pod-read",
      "RoleBinding kube-public/pinniped-concierge-cluster-info-lister-watcher",
      "RoleBinding kube-system/pinniped-concierge-extension-apiserver-authentication-reader",
      "RoleBinding kube-system/pinniped-concierge-kube-system-pod-read",
    ]);
    for (const binding of system.filter((o) => o.kind === "RoleBinding")) {
      assert.deepEqual(binding.subjects, [
        { kind: "ServiceAccount", name: "pinniped-concierge", namespace: "auth-system" },
      ]);
    }
    const rest = objects.filter((o) => !system.includes(o));
    for (const o of rest) {
      if (clusterScoped.has(o.kind)) assert.equal(ns(o), undefined, `${o.kind} ${o.metadata.name}`);
      else assert.equal(ns(o), "auth-system", `${o.kind} ${o.metadata.name}`);
    }
    assert.deepEqual(
      objects.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name),
      ["auth-system"],
    );
    for (const o of objects.filter((o) => o.kind === "APIService")) {
      assert.equal((o.spec?.service as { namespace?: string } | undefined)?.namespace, "auth-system");
    }
    for (const o of objects.filter((o) => o.kind === "ValidatingWebhookConfiguration")) {
      for (const w of o.webhooks ?? []) assert.equal(w.clientConfig.service.namespace, "auth-system");
    }
    const deployment = objects.find((o) => o.kind === "Deployment");
    const template = deployment?.spec?.template as
      | { spec?: { containers?: { image: string }[] } }
      | undefined;
    const containers = template?.spec?.containers ?? [];
    assert.deepEqual(
      containers.map((c) => c.image),
      ["registry.example.com/pinniped-concierge:v0.1.0"],
    );
    // No kubeCertAgent.image: the agent runs the image the Deployment's pod runs, so images: reaches it.
    const configMap = objects.find((o) => o.kind === "ConfigMap" && o.data?.["pinniped.yaml"]);
    const config = parse(configMap?.data?.["pinniped.yaml"] ?? "") as { kubeCertAgent?: { image?: string } };
    assert.equal(config.kubeCertAgent?.image, undefined);
  });

  it("adds a ServiceMonitor that follows the namespace into its own and the serving certificate's name", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "kustomize-servicemonitor-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, "kustomization.yaml"),
      `resources: [${relative(dir, join(repoRoot, "deploy/kustomize/example/concierge"))}]\n` +
        `components: [${relative(dir, join(repoRoot, "deploy/kustomize/components/servicemonitor"))}]\n`,
    );
    const objects = await kustomize(dir);
    const monitor = objects.find((o) => o.kind === "ServiceMonitor") as
      | (Obj & { spec: { endpoints: { port: string; tlsConfig: { serverName: string } }[] } })
      | undefined;
    assert.equal(monitor?.metadata.namespace, "auth-system");
    assert.deepEqual(
      monitor?.spec.endpoints.map((e) => [e.port, e.tlsConfig.serverName]),
      [["https-metrics", "pinniped-concierge-api.auth-system.svc"]],
    );
    const service = objects.find(
      (o) => o.kind === "Service" && o.metadata.name === "pinniped-concierge-metrics",
    );
    assert.equal(service?.metadata.namespace, "auth-system");
  });

  it("adds the CSR API strategy's opt-in RBAC, its binding following the namespace; the base grants none of it", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "kustomize-csr-api-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, "kustomization.yaml"),
      `resources: [${relative(dir, join(repoRoot, "deploy/kustomize/example/concierge"))}]\n` +
        `components: [${relative(dir, join(repoRoot, "deploy/kustomize/components/csr-api-rbac"))}]\n`,
    );
    const objects = await kustomize(dir);
    const binding = objects.find(
      (o) => o.kind === "ClusterRoleBinding" && o.metadata.name === "pinniped-concierge-csr-api",
    );
    assert.deepEqual(binding?.subjects, [
      { kind: "ServiceAccount", name: "pinniped-concierge", namespace: "auth-system" },
    ]);
    const role = objects.find(
      (o) => o.kind === "ClusterRole" && o.metadata.name === "pinniped-concierge-csr-api",
    ) as (Obj & { rules: { resources: string[]; verbs: string[]; resourceNames?: string[] }[] }) | undefined;
    assert.deepEqual(
      role?.rules.find((r) => r.verbs.includes("approve")),
      {
        apiGroups: ["certificates.k8s.io"],
        resources: ["signers"],
        resourceNames: ["kubernetes.io/kube-apiserver-client"],
        verbs: ["approve"],
      },
    );
    const base = JSON.stringify(await kustomize("deploy/kustomize/example"));
    assert.doesNotMatch(base, /certificatesigningrequests|"signers"/);
  });
});
