// How the reconciler runs `print` in the agent pod. Upstream execs over SPDY; this speaks the
// websocket exec protocol (v5.channel.k8s.io, v4 from an older server), which kube-apiserver
// 1.30+ accepts for pods/exec.
import type { ClusterAccess } from "../../kube/kubeconfig.ts";
import { execInPod, type PodExec, type PodExecResult } from "../../kube/podexec.ts";

export interface ExecOutput {
  stdout: string;
  stderr: string;
}

/** Runs a command in a container of a pod and collects its output (upstream's PodCommandExecutor). */
export interface PodCommandExecutor {
  exec(
    namespace: string,
    pod: string,
    container: string,
    command: readonly string[],
    signal: AbortSignal,
  ): Promise<ExecOutput>;
}

/**
 * A PodCommandExecutor over the websocket exec, with the identity of `access`. The command's exit
 * status comes on the error channel: anything but Success fails with its message (stdout is not
 * part of the error, since for `print` it holds a private key). `exec` is replaceable for tests.
 */
export function websocketPodCommandExecutor(
  access: ClusterAccess,
  timeoutMs = 60_000,
  exec: (access: ClusterAccess, exec: PodExec) => Promise<PodExecResult> = execInPod,
): PodCommandExecutor {
  return {
    async exec(namespace, pod, container, command, signal) {
      const stop = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
      let result: PodExecResult;
      try {
        result = await exec(access, { namespace, pod, container, command, signal: stop });
      } catch (err) {
        if (!stop.aborted) throw err;
        const why = signal.aborted ? "was aborted" : `timed out after ${timeoutMs}ms`;
        throw new Error(`exec into ${namespace}/${pod} ${why}`, { cause: stop.reason });
      }
      const { status } = result;
      // A Status without a message (seen when kube-apiserver cannot reach the kubelet) still fails.
      if (status && status.status !== "Success") {
        throw new Error(status.message || `exec failed with status ${JSON.stringify(status)}`);
      }
      return { stdout: result.stdout, stderr: result.stderr };
    },
  };
}
