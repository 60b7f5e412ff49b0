// A value from a request or an answer, for an error message: a short string quoted, anything else
// only named. `JSON.stringify` of a deeply nested value overflows the stack, and a long one would
// be echoed back whole.

export function shownValue(value: unknown, maxLength = 253): string {
  if (value === undefined) return "undefined";
  if (typeof value === "string") {
    return value.length <= maxLength ? JSON.stringify(value) : `a string of ${value.length} characters`;
  }
  if (value === null) return "null";
  return Array.isArray(value) ? "an array" : `a ${typeof value}`;
}
