// A node:test reporter for test/matrix/run.ts: one JSON line per finished check (the tests
// inside the smoke's describe), with the first line of its error, for the matrix table.
import type { TestEvent } from "node:test/reporters";

export interface CheckResult {
  name: string;
  ok: boolean;
  error?: string;
}

/** The first line of what failed: the assertion's or the command's own words, not the runner's wrapper. */
export function firstLine(error: unknown): string {
  let e = error;
  while (e instanceof Error && e.cause !== undefined && (e as { code?: string }).code === "ERR_TEST_FAILURE")
    e = e.cause;
  const text = e instanceof Error ? e.message : String(e);
  return (
    text
      .split("\n")
      .map((line) => line.trim())
      .find((line) => line !== "") ?? "failed"
  );
}

export default async function* reporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  for await (const event of source) {
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    const data = event.data;
    // Nesting 0 is the describe block (or a failure outside it, reported once below).
    if (data.nesting !== 1 && !(data.nesting === 0 && event.type === "test:fail")) continue;
    if (data.details.type === "suite" && event.type === "test:pass") continue;
    const result: CheckResult =
      event.type === "test:pass"
        ? { name: data.name, ok: true }
        : { name: data.name, ok: false, error: firstLine(event.data.details.error) };
    yield `${JSON.stringify(result)}\n`;
  }
}
