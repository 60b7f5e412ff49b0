// The kubeconfig the user points at (--kubeconfig, else $KUBECONFIG, else ~/.kube/config), with
// --kubeconfig-context applied. client-node runs its exec plugins (e.g. this CLI) for us.
import { KubeConfig } from "@kubernetes/client-node";
import { UsageError } from "./flags.ts";

export function loadKubeConfig(path: string | undefined, context: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (err) {
    throw new UsageError(`could not load --kubeconfig "${path ?? "(default)"}": ${(err as Error).message}`);
  }
  if (context) {
    if (!kc.getContextObject(context))
      throw new UsageError(`no such context "${context}" in the kubeconfig (--kubeconfig-context)`);
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster()) {
    throw new UsageError(
      "the kubeconfig has no current cluster: set current-context or pass --kubeconfig-context",
    );
  }
  return kc;
}
