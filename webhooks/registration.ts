// The ValidatingWebhookConfiguration, read from config/06-validating-webhook.yaml so that the install
// manifest, the tests and the local demo register exactly the same webhooks.
import { readFile } from "node:fs/promises";
import type { V1LabelSelector, V1ValidatingWebhookConfiguration } from "@kubernetes/client-node";
import { parse } from "yaml";

export const validatingWebhookManifest = new URL("../config/06-validating-webhook.yaml", import.meta.url);

/** The configuration as installed: each webhook reaches the Concierge through its Service. */
export async function loadValidatingWebhookConfiguration(): Promise<V1ValidatingWebhookConfiguration> {
  return parse(await readFile(validatingWebhookManifest, "utf8")) as V1ValidatingWebhookConfiguration;
}

export interface RenderOptions {
  /** Where the webhook listens, e.g. `https://localhost:8443`; each webhook's path is appended. */
  baseURL: string;
  /** PEM of the CA that signed the webhook's serving certificate. */
  caBundlePEM: string;
  /** Replaces metadata.name, so that a test's registration cannot clash with another. */
  name?: string;
  /** Narrows every webhook to the objects it selects; the installed configuration has none. */
  objectSelector?: V1LabelSelector;
}

/**
 * The installed configuration pointed at a URL instead of the Service: kube-apiserver can call
 * `https://localhost:PORT/...`, which is how the local control plane reaches a Concierge running
 * as a plain process.
 */
export async function renderValidatingWebhookConfiguration(
  options: RenderOptions,
): Promise<V1ValidatingWebhookConfiguration> {
  const config = await loadValidatingWebhookConfiguration();
  const base = options.baseURL.replace(/\/+$/, "");
  const caBundle = Buffer.from(options.caBundlePEM).toString("base64");
  return {
    ...config,
    metadata: { ...config.metadata, ...(options.name ? { name: options.name } : {}) },
    webhooks: (config.webhooks ?? []).map((webhook) => {
      const path = webhook.clientConfig.service?.path ?? "";
      return {
        ...webhook,
        clientConfig: { url: `${base}${path}`, caBundle },
        ...(options.objectSelector ? { objectSelector: options.objectSelector } : {}),
      };
    }),
  };
}
