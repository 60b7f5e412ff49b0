// Go's time.ParseDuration, because upstream's --timeout is a Go duration flag and users copy
// upstream's examples (`10m`, `1m30s`).
import { UsageError } from "./flags.ts";

const unitMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Milliseconds of a Go duration such as `10m`, `30s`, `1m30s`, `1.5h` or `0`. */
export function parseGoDuration(text: string): number {
  const invalid = () => new UsageError(`time: invalid duration "${text}" (e.g. 10m, 30s, 1m30s)`);
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    sign = rest.startsWith("-") ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") throw invalid();
  const part = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  let total = 0;
  while (rest !== "") {
    const m = part.exec(rest);
    if (!m) throw invalid();
    total += Number(m[1]) * unitMs[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return sign * total;
}
