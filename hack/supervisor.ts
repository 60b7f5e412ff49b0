// Runs the control plane's processes so that none of them can outlive us.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { open } from "node:fs/promises";

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * A child process started under `setpriv --pdeathsig KILL`, so the kernel kills
 * it when the Node process that started it dies for any reason (SIGKILL of a
 * test run included): there is no way to leave an orphan etcd or API server.
 */
export class SupervisedProcess {
  readonly spec: ProcessSpec;
  #child: ChildProcess | undefined;
  #exit: Promise<number | null> | undefined;

  constructor(spec: ProcessSpec) {
    this.spec = spec;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    // Output goes straight to the log file, and the child is unref'd: nothing here keeps
    // the event loop of a finished test run alive.
    const log = openSync(this.spec.logFile, "a");
    const child = spawn("setpriv", ["--pdeathsig", "KILL", "--", this.spec.command, ...this.spec.args], {
      stdio: ["ignore", log, log],
      env: this.spec.env ?? process.env,
    });
    closeSync(log);
    child.unref();
    this.#child = child;
    this.#exit = new Promise((resolve) => {
      child.once("error", () => resolve(null));
      child.once("exit", (code) => resolve(code));
    });
  }

  /** Resolves when the process ends on its own; used to fail fast during start-up. */
  exited(): Promise<number | null> {
    if (!this.#exit) throw new Error(`${this.spec.name} was never started`);
    return this.#exit;
  }

  /** SIGTERM, then SIGKILL if it has not exited within the grace period. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    // Held while stopping, so the loop stays alive until the exit is seen.
    child.ref();
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await this.#exit;
    clearTimeout(timer);
  }

  async logTail(lines = 30): Promise<string> {
    try {
      const file = await open(this.spec.logFile);
      const text = await file.readFile("utf8");
      await file.close();
      return text.trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

/**
 * How long a component may take to start. It bounds a hung start, never measures speed: a process
 * that dies ends the wait at once, and on 2 cores shared by several test runs etcd alone took
 * more than 30 s to answer /health and kube-apiserver more than 90 s to be ready.
 */
export const startBoundMs = 5 * 60_000;

/** Waits until `check` resolves true, the process dies, or the deadline passes. */
export async function waitUntil(
  what: string,
  proc: SupervisedProcess,
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let died = false;
  void proc.exited().then(() => {
    died = true;
  });
  while (Date.now() < deadline) {
    if (died) {
      throw new Error(
        `${proc.spec.name} exited while waiting for ${what}; last log lines:\n${await proc.logTail()}`,
      );
    }
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}; last log lines of ${proc.spec.name}:\n${await proc.logTail()}`,
  );
}
