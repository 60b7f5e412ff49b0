// Polling for integration tests: wait until something the test cannot be told about has happened.
// (Unit tests with fake clocks have their own, in controllers/runtime/testing.ts.)

export interface EventuallyOptions {
  /** How long to keep trying before giving up; 60 s unless given. */
  timeoutMs?: number;
  /** How long to wait between tries; 250 ms unless given. */
  intervalMs?: number;
}

/**
 * Calls `check` until it returns something other than `undefined` or `false`, and resolves to that.
 * A check that throws counts as "not yet". After `timeoutMs` it rejects with
 * `timed out waiting for <what>`, followed by the error the last try threw, if it threw.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: EventuallyOptions = {},
): Promise<T> {
  const { timeoutMs = 60_000, intervalMs = 250 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let failure: { error: unknown } | undefined;
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      failure = { error };
    }
    if (Date.now() > deadline) {
      if (!failure) throw new Error(`timed out waiting for ${what}`);
      const { error } = failure;
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`timed out waiting for ${what}: ${message}`, { cause: error });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
