// Running a program (the pinniped CLI, kubectl as a user) from an integration test.
// kubectl as the cluster admin has its own helper, runKubectl in cluster.ts.
import { spawn } from "node:child_process";
import type { KubectlResult } from "./cluster.ts";

export interface RunOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Written to the program's stdin, which is then closed (it is closed at once without it). */
  input?: string;
  /** After this the program is killed (SIGTERM); 60 s unless given. */
  timeoutMs?: number;
}

/**
 * Runs `command` to its end and resolves to its exit code and output; never rejects. A program that
 * could not be started, or was killed, ends with code 1.
 */
export function runCommand(
  command: string,
  args: string[],
  options: RunOptions = {},
): Promise<KubectlResult> {
  const { env = {}, input = "", timeoutMs = 60_000 } = options;
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, timeout: timeoutMs });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let startError = "";
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (err) => {
      startError = `${err.message}\n`;
    });
    // A program that exits without reading its stdin must not fail the write.
    child.stdin.on("error", () => {});
    child.on("close", (code) =>
      resolve({
        code: startError || code === null ? 1 : code,
        stdout: Buffer.concat(stdout).toString(),
        stderr: Buffer.concat(stderr).toString() + startError,
      }),
    );
    child.stdin.end(input);
  });
}
