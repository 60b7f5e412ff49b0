// How the reconciler runs `print` in the agent pod. Upstream execs over SPDY; client-node speaks
// only the websocket exec protocol (v5.channel.k8s.io and older), which kube-apiserver 1.30+
// accepts for pods/exec.
import { Writable } from "node:stream";
import { Exec, type KubeConfig, type V1Status } from "@kubernetes/client-node";

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

/** Collects a stream's chunks into a string. */
class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    done();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

/**
 * A PodCommandExecutor over client-node's websocket Exec, with the identity of `kc`. The
 * command's exit status comes on the error channel: anything but Success fails with its
 * message (stdout is not part of the error, since for `print` it holds a private key).
 * `exec` is replaceable for tests.
 */
export function websocketPodCommandExecutor(
  kc: KubeConfig,
  timeoutMs = 60_000,
  exec: Pick<Exec, "exec"> = new Exec(kc),
): PodCommandExecutor {
  return {
    async exec(namespace, pod, container, command, signal) {
      const stdout = new Collector();
      const stderr = new Collector();
      let status: V1Status | undefined;
      const ws = await exec.exec(
        namespace,
        pod,
        container,
        [...command],
        stdout,
        stderr,
        null,
        false,
        (s) => {
          status = s;
        },
      );
      const stop = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          ws.close();
          const why = signal.aborted ? "was aborted" : `timed out after ${timeoutMs}ms`;
          reject(new Error(`exec into ${namespace}/${pod} ${why}`, { cause: stop.reason }));
        };
        if (stop.aborted) return onAbort();
        stop.addEventListener("abort", onAbort, { once: true });
        ws.on("close", () => {
          stop.removeEventListener("abort", onAbort);
          resolve();
        });
        ws.on("error", (err: Error) => {
          stop.removeEventListener("abort", onAbort);
          reject(err);
        });
      });
      // A Status without a message (seen when kube-apiserver cannot reach the kubelet) still fails.
      if (status && status.status !== "Success") {
        throw new Error(status.message || `exec failed with status ${JSON.stringify(status)}`);
      }
      return { stdout: stdout.text(), stderr: stderr.text() };
    },
  };
}
