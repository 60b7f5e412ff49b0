import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { parseConfig } from "../server/config.ts";
import { repoRoot } from "./gen-kustomize.ts";
import { renderErrors, renderInstall } from "./render-install.ts";

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

const objects = (text: string): Obj[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);

const sources = () =>
  ["crds", "config"].flatMap((dir) =>
    readdirSync(join(repoRoot, dir))
      .filter((f) => f.endsWith(".yaml"))
      .sort()
      .flatMap((f) => objects(readFileSync(join(repoRoot, dir, f), "utf8"))),
  );

function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const v of value) strings(v, out);
  else if (value && typeof value === "object") for (const v of Object.values(value)) strings(v, out);
  return out;
}

const namespaced = (o: Obj) => o.metadata.namespace !== undefined;
/** What another install could collide with: cluster-scoped objects and those in shared namespaces. */
const shared = (os: Obj[]) =>
  os
    .filter((o) => !namespaced(o) || ["kube-system", "kube-public"].includes(o.metadata.namespace!))
    .filter((o) => o.kind !== "Namespace")
    .map((o) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`);

const acme = { apiGroupSuffix: "acme.example", namespace: "acme-system", name: "acme-concierge" };

describe("render-install", () => {
  it("with the defaults, renders crds/ and config/ unchanged, in apply order", () => {
    assert.deepEqual(objects(renderInstall()), sources());
  });

  const rendered = objects(renderInstall(acme));

  it("renames every Concierge group, and keeps labels and paths that are not groups", () => {
    const all = strings(rendered);
    const upstreamGroups = /\b(login|identity|authentication|config)\.concierge\.pinniped\.dev\b/;
    assert.deepEqual(
      all.filter((s) => upstreamGroups.test(s)),
      [],
    );
    const crds = rendered.filter((o) => o.kind === "CustomResourceDefinition");
    assert.deepEqual(crds.map((o) => o.metadata.name).sort(), [
      "credentialissuers.config.concierge.acme.example",
      "jwtauthenticators.authentication.concierge.acme.example",
      "webhookauthenticators.authentication.concierge.acme.example",
    ]);
    const apiServices = rendered.filter((o) => o.kind === "APIService");
    assert.deepEqual(
      apiServices.map((o) => [o.metadata.name, (o.spec as { service: unknown }).service]),
      [
        [
          "v1alpha1.login.concierge.acme.example",
          { namespace: "acme-system", name: "acme-concierge-api", port: 443 },
        ],
        [
          "v1alpha1.identity.concierge.acme.example",
          { namespace: "acme-system", name: "acme-concierge-api", port: 443 },
        ],
      ],
    );
    const webhook = rendered.find((o) => o.kind === "ValidatingWebhookConfiguration")!;
    assert.equal(webhook.metadata.name, "acme-concierge-authenticators");
    const hooks = webhook.webhooks as {
      name: string;
      clientConfig: { service: unknown };
      rules: { apiGroups: string[] }[];
    }[];
    assert.deepEqual(
      hooks.map((h) => [h.name, h.rules[0]!.apiGroups]),
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
    assert.deepEqual(hooks[0]!.clientConfig.service, {
      namespace: "acme-system",
      name: "acme-concierge-api",
      path: "/validate-authentication-concierge-pinniped-dev-v1alpha1",
      port: 443,
    });
    assert.ok(all.includes("concierge"), "the pods' deployment.pinniped.dev label stays");
  });

  it("moves the Concierge's objects and every reference to them into the namespace", () => {
    for (const o of rendered.filter(namespaced)) {
      assert.ok(
        ["acme-system", "kube-system", "kube-public"].includes(o.metadata.namespace!),
        `${o.kind} ${o.metadata.name}`,
      );
    }
    assert.equal(rendered.find((o) => o.kind === "Namespace")?.metadata.name, "acme-system");
    for (const o of rendered.filter((o) => o.kind.endsWith("Binding"))) {
      for (const s of o.subjects as { kind: string; namespace?: string; name: string }[]) {
        if (s.kind === "ServiceAccount") {
          assert.equal(s.namespace, "acme-system");
          assert.match(s.name, /^acme-concierge/);
        }
      }
    }
  });

  it("names every object after the install, and keeps the container's name and command", () => {
    for (const o of rendered.filter(
      (o) => o.kind !== "CustomResourceDefinition" && o.kind !== "APIService",
    )) {
      if (o.kind === "Namespace") continue;
      assert.match(o.metadata.name, /^acme-concierge/, `${o.kind} ${o.metadata.name}`);
      assert.equal(o.metadata.labels?.app, "acme-concierge", `${o.kind} ${o.metadata.name}`);
    }
    const deployment = rendered.find((o) => o.kind === "Deployment")!;
    const pod = (deployment.spec as { template: { spec: Record<string, unknown> } }).template.spec;
    const container = (pod.containers as { name: string; command: string[] }[])[0]!;
    assert.equal(container.name, "pinniped-concierge");
    assert.deepEqual(container.command, ["pinniped-concierge"]);
    assert.equal(pod.serviceAccountName, "acme-concierge");
  });

  it("the config file loads with the suffix and the install's names", () => {
    const cm = rendered.find((o) => o.kind === "ConfigMap")!;
    const config = parseConfig((cm.data as Record<string, string>)["pinniped.yaml"]!, {
      env: { POD_NAMESPACE: "acme-system" },
    });
    assert.equal(config.apiGroupSuffix, "acme.example");
    assert.equal(config.names.credentialIssuer, "acme-concierge-config");
    assert.equal(config.names.deployment, "acme-concierge");
    assert.equal(config.names.validatingWebhookConfiguration, "acme-concierge-authenticators");
    assert.equal(config.kubeCertAgent.namePrefix, "acme-concierge-kube-cert-agent-");
    assert.deepEqual(config.labels, { app: "acme-concierge" });
    for (const name of Object.values(config.names)) assert.match(name, /^acme-concierge-?/);
  });

  it("two installs with different suffixes and names share no cluster-wide name", () => {
    const other = objects(
      renderInstall({ apiGroupSuffix: "other.example", namespace: "other", name: "other" }),
    );
    const ours = new Set(shared(rendered));
    assert.deepEqual(
      shared(other).filter((id) => ours.has(id)),
      [],
    );
    const defaults = new Set(shared(objects(renderInstall())));
    assert.deepEqual(
      shared(rendered).filter((id) => defaults.has(id)),
      [],
    );
  });

  it("refuses what cannot be installed, in upstream's words for the suffix", () => {
    assert.deepEqual(renderErrors({ apiGroupSuffix: "acme" }), ["--api-group-suffix: must contain '.'"]);
    assert.match(renderErrors({ namespace: "Acme" })[0]!, /--namespace: must be a DNS label/);
    assert.match(
      renderErrors({ name: "a".repeat(30) })[0]!,
      /--name: must be a DNS label of at most 29 characters/,
    );
    assert.deepEqual(renderErrors({ name: "a".repeat(29) }), []);
    assert.throws(() => renderInstall({ apiGroupSuffix: "x" }), /must contain '.'/);
  });
});
