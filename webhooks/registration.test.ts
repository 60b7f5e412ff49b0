import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jwtAuthenticator, webhookAuthenticator } from "../apis/index.ts";
import { loadValidatingWebhookConfiguration, renderValidatingWebhookConfiguration } from "./registration.ts";
import { validatePath } from "./server.ts";

describe("the ValidatingWebhookConfiguration", () => {
  it("matches what the server serves and the kinds it validates", async () => {
    const config = await loadValidatingWebhookConfiguration();
    assert.equal(config.apiVersion, "admissionregistration.k8s.io/v1");
    assert.equal(config.kind, "ValidatingWebhookConfiguration");
    const kinds = [jwtAuthenticator, webhookAuthenticator];
    assert.deepEqual(
      config.webhooks?.map((w) => w.name),
      kinds.map((k) => `${k.plural}.${k.group}`),
    );
    for (const [i, webhook] of (config.webhooks ?? []).entries()) {
      const k = kinds[i]!;
      assert.deepEqual(webhook.clientConfig, {
        service: {
          namespace: "pinniped-concierge",
          name: "pinniped-concierge-api",
          path: validatePath,
          port: 443,
        },
      });
      assert.deepEqual(webhook.rules, [
        {
          apiGroups: [k.group],
          apiVersions: [k.version],
          operations: ["CREATE", "UPDATE"],
          resources: [k.plural],
          scope: "Cluster",
        },
      ]);
      assert.deepEqual(webhook.admissionReviewVersions, ["v1"]);
      assert.equal(webhook.sideEffects, "None");
      assert.equal(webhook.failurePolicy, "Fail");
      assert.deepEqual(webhook.matchConditions, [
        {
          name: "spec-may-change-validity",
          expression:
            "request.operation != 'UPDATE' || !has(object.spec) || !has(oldObject.spec) || object.spec != oldObject.spec",
        },
      ]);
      assert.equal(webhook.matchPolicy, "Equivalent");
      assert.equal(webhook.timeoutSeconds, 10);
      assert.equal(webhook.objectSelector, undefined);
    }
  });

  it("renders for a URL and CA bundle, keeping everything else", async () => {
    const installed = await loadValidatingWebhookConfiguration();
    const rendered = await renderValidatingWebhookConfiguration({
      baseURL: "https://localhost:8443/",
      caBundlePEM: "-----BEGIN CERTIFICATE-----\n...",
      name: "test-webhooks",
      objectSelector: { matchLabels: { "concierge.test/admission": "abc" } },
    });
    assert.equal(rendered.metadata?.name, "test-webhooks");
    assert.deepEqual(rendered.metadata?.labels, installed.metadata?.labels);
    for (const [i, webhook] of (rendered.webhooks ?? []).entries()) {
      const { clientConfig, objectSelector, ...rest } = webhook;
      const { clientConfig: _, ...installedRest } = installed.webhooks![i]!;
      assert.deepEqual(rest, installedRest);
      assert.deepEqual(clientConfig, {
        url: `https://localhost:8443${validatePath}`,
        caBundle: Buffer.from("-----BEGIN CERTIFICATE-----\n...").toString("base64"),
      });
      assert.deepEqual(objectSelector, { matchLabels: { "concierge.test/admission": "abc" } });
    }
  });

  it("keeps the installed name without an override", async () => {
    const rendered = await renderValidatingWebhookConfiguration({
      baseURL: "https://127.0.0.1:1",
      caBundlePEM: "x",
    });
    assert.equal(rendered.metadata?.name, "pinniped-concierge-authenticators");
    assert.equal(rendered.webhooks?.[0]?.objectSelector, undefined);
  });
});
