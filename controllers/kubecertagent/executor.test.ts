import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Writable } from "node:stream";
import { describe, it } from "node:test";
import { type Exec, KubeConfig, type V1Status } from "@kubernetes/client-node";
import { websocketPodCommandExecutor } from "./executor.ts";

/** The websocket client-node returns: only what the executor uses. */
class FakeSocket extends EventEmitter {
  closed = false;
  close(): void {
    this.closed = true;
  }
}

interface Call {
  namespace: string;
  pod: string;
  container: string;
  command: string | string[];
  stdin: unknown;
  tty: boolean;
}

/** Plays client-node's Exec: `script` writes the streams, reports a status and closes the socket. */
function fakeExec(
  script: (io: {
    stdout: Writable;
    stderr: Writable;
    status: (s: V1Status) => void;
    socket: FakeSocket;
  }) => void,
) {
  const calls: Call[] = [];
  const socket = new FakeSocket();
  const exec: Pick<Exec, "exec"> = {
    async exec(namespace, pod, container, command, stdout, stderr, stdin, tty, statusCallback) {
      calls.push({ namespace, pod, container, command, stdin, tty });
      setImmediate(() =>
        script({ stdout: stdout!, stderr: stderr!, status: (s) => statusCallback?.(s), socket }),
      );
      return socket as never;
    },
  };
  return { calls, socket, exec };
}

const kc = new KubeConfig();
const never = new AbortController().signal;

describe("websocketPodCommandExecutor", () => {
  it("runs the command without stdin or a TTY and collects stdout and stderr", async () => {
    const f = fakeExec(({ stdout, stderr, status, socket }) => {
      stdout.write('{"tls.crt":');
      stdout.write(Buffer.from('"x"}'));
      stderr.write("warning\n");
      status({ metadata: {}, status: "Success" });
      socket.emit("close");
    });
    const out = await websocketPodCommandExecutor(kc, 1000, f.exec).exec(
      "ns",
      "p",
      "sleeper",
      ["a", "b"],
      never,
    );
    assert.deepEqual(out, { stdout: '{"tls.crt":"x"}', stderr: "warning\n" });
    assert.deepEqual(f.calls, [
      { namespace: "ns", pod: "p", container: "sleeper", command: ["a", "b"], stdin: null, tty: false },
    ]);
  });

  it("fails with the status message of a failed command, never with its stdout", async () => {
    const f = fakeExec(({ stdout, status, socket }) => {
      stdout.write("-----BEGIN PRIVATE KEY-----");
      status({
        status: "Failure",
        reason: "NonZeroExitCode",
        message: "command terminated with non-zero exit code: 1",
      });
      socket.emit("close");
    });
    await assert.rejects(websocketPodCommandExecutor(kc, 1000, f.exec).exec("ns", "p", "c", ["x"], never), {
      message: "command terminated with non-zero exit code: 1",
    });
  });

  it("fails on a status without a message", async () => {
    const f = fakeExec(({ status, socket }) => {
      status({ metadata: {} });
      socket.emit("close");
    });
    await assert.rejects(websocketPodCommandExecutor(kc, 1000, f.exec).exec("ns", "p", "c", ["x"], never), {
      message: 'exec failed with status {"metadata":{}}',
    });
  });

  it("fails on a socket error", async () => {
    const f = fakeExec(({ socket }) => socket.emit("error", new Error("connection reset")));
    await assert.rejects(websocketPodCommandExecutor(kc, 1000, f.exec).exec("ns", "p", "c", ["x"], never), {
      message: "connection reset",
    });
  });

  it("closes the socket when aborted or timed out", async () => {
    const hanging = fakeExec(() => {});
    const abort = new AbortController();
    const pending = websocketPodCommandExecutor(kc, 60_000, hanging.exec).exec(
      "ns",
      "p",
      "c",
      ["x"],
      abort.signal,
    );
    await new Promise((resolve) => setImmediate(resolve));
    abort.abort();
    await assert.rejects(pending, { message: "exec into ns/p was aborted" });
    assert.equal(hanging.socket.closed, true);

    const slow = fakeExec(() => {});
    await assert.rejects(websocketPodCommandExecutor(kc, 5, slow.exec).exec("ns", "p", "c", ["x"], never), {
      message: "exec into ns/p timed out after 5ms",
    });
    assert.equal(slow.socket.closed, true);
  });
});
