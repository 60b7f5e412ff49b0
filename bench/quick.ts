// CI runs every benchmark so that none rots, but it needs only their code paths exercised and
// their figures printed, not full-length measurement windows. CONCIERGE_BENCH_QUICK=1 asks for
// the short form: fewer rounds, shorter windows and counts, the same steps in the same order.
// Without it (the default, and what the README's figures come from) each bench runs full length.

export const benchQuickVariable = "CONCIERGE_BENCH_QUICK";

/** Whether this run is the short form. */
export const quick = process.env[benchQuickVariable] === "1";

/** `full` in a full-length run, `short` in the short form. */
export function quickOr<T>(full: T, short: T): T {
  return quick ? short : full;
}
