import { isObject } from "../kube/isobject.ts";
// The type check both create handlers make before decoding: is the body an object of our kind?
// Its messages name what is wrong but never quote the body, which may be huge or deeply nested
// (`JSON.stringify` of 5,000 nested arrays overflows the stack) and is the caller's data.

export interface Kind {
  group: string;
  version: string;
  kind: string;
}

/** How Go's decoder would name a JSON value's type. */
export function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "boolean":
      return "a boolean";
    default:
      return "an object";
  }
}

/**
 * The body as an object of this kind (apiVersion and kind may be left out), or why it is not one.
 */
export function objectOfKind(
  body: unknown,
  k: Kind,
): { object: Record<string, unknown> } | { error: string } {
  const apiVersion = `${k.group}/${k.version}`;
  if (!isObject(body)) {
    return { error: `not a ${k.kind}: the body is ${jsonType(body)}, not a JSON object` };
  }
  const object = body;
  if (object.apiVersion !== undefined && object.apiVersion !== apiVersion) {
    return { error: `not a ${k.kind}: apiVersion must be "${apiVersion}"` };
  }
  if (object.kind !== undefined && object.kind !== k.kind) {
    return { error: `not a ${k.kind}: kind must be "${k.kind}"` };
  }
  return { object };
}
