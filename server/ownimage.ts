// The image the Concierge runs from, read from its own Pod: the kube-cert-agent's default image,
// as upstream's install sets it. It carries pinniped-concierge-kube-cert-agent, and reading it
// here (rather than repeating it in the ConfigMap) keeps the two equal when only the Deployment's
// image is changed, e.g. by kustomize's `images:` or a Helm value.

import { objectPath } from "../kube/resource.ts";
import type { RestClient } from "../kube/rest.ts";
import type { Logger } from "../observability/logger.ts";

/** Upstream's default when nothing better is known: an image whose `sleep` keeps the pod up. */
export const fallbackAgentImage = "debian:latest";

interface PodSpecImages {
  spec?: {
    containers?: { name?: string; image?: string }[];
    imagePullSecrets?: { name?: string }[];
  };
}

export interface OwnImage {
  image: string;
  imagePullSecrets: string[];
}

/** The image of `containerName` (else the first container) in the Pod, with its pull secrets. */
export function imageOfPod(pod: PodSpecImages, containerName: string): OwnImage | undefined {
  const containers = pod.spec?.containers ?? [];
  const image = (containers.find((c) => c.name === containerName) ?? containers[0])?.image;
  if (!image) return undefined;
  return {
    image,
    imagePullSecrets: (pod.spec?.imagePullSecrets ?? []).flatMap((s) => (s.name ? [s.name] : [])),
  };
}

/** Reads this process's Pod; undefined (and a warning) when it cannot. */
export async function ownImage(
  client: RestClient,
  pod: { namespace: string; name: string; containerName: string },
  log: Logger,
): Promise<OwnImage | undefined> {
  try {
    const found = await client.request<PodSpecImages>({
      method: "GET",
      path: objectPath({ group: "", version: "v1", resource: "pods" }, pod.name, pod.namespace),
    });
    return imageOfPod(found, pod.containerName);
  } catch (err) {
    log.warn("could not read the Concierge's own Pod for the kube-cert-agent image", {
      pod: `${pod.namespace}/${pod.name}`,
      error: err,
      using: fallbackAgentImage,
    });
    return undefined;
  }
}
