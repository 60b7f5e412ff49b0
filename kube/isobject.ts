/** A JSON object: not null, not an array. What Kubernetes objects and their fields decode to. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
