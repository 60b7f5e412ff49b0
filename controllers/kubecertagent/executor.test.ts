import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ClusterAccess } from "../../kube/kubeconfig.ts";
import type { PodExec, PodExecResult } from "../../kube/podexec.ts";
import { websocketPodCommandExecutor } from "./executor.ts";

const access: ClusterAccess = {
  getCurrentCluster: () => ({ server: "https://127.0.0.1:1", skipTLSVerify: false }),
  applyToHTTPSOptions: async () => {},
};
const never = new AbortController().signal;

/** Plays execInPod: answers each call with `answer`, recording it. */
function fakeExec(answer: (call: PodExec) => Promise<PodExecResult>) {
  const calls: PodExec[] = [];
  const exec = (_access: ClusterAccess, call: PodExec) => {
    calls.push(call);
    return answer(call);
  };
  return { calls, exec };
}

/** Never answers; rejects as execInPod does once its signal aborts. */
const hanging = (call: PodExec) =>
  new Promise<PodExecResult>((_, reject) =>
    call.signal.addEventListener("abort", () => reject(new Error("socket destroyed")), { once: true }),
  );

describe("websocketPodCommandExecutor", () => {
  it("runs the command and returns stdout and stderr", async () => {
    const f = fakeExec(async () => ({
      stdout: '{"tls.crt":"x"}',
      stderr: "warning\n",
      status: { status: "Success" },
    }));
    const out = await websocketPodCommandExecutor(access, 1000, f.exec).exec(
      "ns",
      "p",
      "sleeper",
      ["a", "b"],
      never,
    );
    assert.deepEqual(out, { stdout: '{"tls.crt":"x"}', stderr: "warning\n" });
    assert.equal(f.calls.length, 1);
    const { signal: _, ...call } = f.calls[0]!;
    assert.deepEqual(call, { namespace: "ns", pod: "p", container: "sleeper", command: ["a", "b"] });
  });

  it("fails with the status message of a failed command, never with its stdout", async () => {
    const f = fakeExec(async () => ({
      stdout: "-----BEGIN PRIVATE KEY-----",
      stderr: "",
      status: {
        status: "Failure",
        reason: "NonZeroExitCode",
        message: "command terminated with non-zero exit code: 1",
      },
    }));
    await assert.rejects(
      websocketPodCommandExecutor(access, 1000, f.exec).exec("ns", "p", "c", ["x"], never),
      {
        message: "command terminated with non-zero exit code: 1",
      },
    );
  });

  it("fails on a status without a message", async () => {
    const f = fakeExec(async () => ({ stdout: "", stderr: "", status: {} }));
    await assert.rejects(
      websocketPodCommandExecutor(access, 1000, f.exec).exec("ns", "p", "c", ["x"], never),
      {
        message: "exec failed with status {}",
      },
    );
  });

  it("fails with the connection's error", async () => {
    const f = fakeExec(async () => {
      throw new Error("connection reset");
    });
    await assert.rejects(
      websocketPodCommandExecutor(access, 1000, f.exec).exec("ns", "p", "c", ["x"], never),
      {
        message: "connection reset",
      },
    );
  });

  it("stops the exec when aborted or timed out", async () => {
    const abort = new AbortController();
    const aborted = fakeExec(hanging);
    const pending = websocketPodCommandExecutor(access, 60_000, aborted.exec).exec(
      "ns",
      "p",
      "c",
      ["x"],
      abort.signal,
    );
    abort.abort();
    await assert.rejects(pending, { message: "exec into ns/p was aborted" });
    assert.equal(aborted.calls[0]!.signal.aborted, true);

    const slow = fakeExec(hanging);
    await assert.rejects(
      websocketPodCommandExecutor(access, 5, slow.exec).exec("ns", "p", "c", ["x"], never),
      {
        message: "exec into ns/p timed out after 5ms",
      },
    );
    assert.equal(slow.calls[0]!.signal.aborted, true);
  });
});
