// The generic apiserver's field validation (`?fieldValidation=`) for the create paths we serve:
// its strict JSON decoder (sigs.k8s.io/json UnmarshalStrict) reports every unknown and duplicate
// field of a body that otherwise decodes; `Strict` refuses the body with them, `Warn` (the default)
// answers them as Warning headers, `Ignore` drops them. JSON.parse cannot see a duplicate key, so
// this reads the text itself, against the kind's schema from apis/.
import type { JSONSchemaProps } from "../apis/index.ts";
import { goQuote } from "../kube/goquote.ts";

export type FieldValidation = "Ignore" | "Warn" | "Strict";

/** What a create handler learns of the body's strict decoding, and where it leaves warnings. */
export interface StrictDecoding {
  directive: FieldValidation;
  /** `unknown field "spec.foo"`, `duplicate field "spec.token"`: at most 100, each once. */
  errors: readonly string[];
  /** Filled by `strictDecodingError` under `Warn`, for the response's Warning headers. */
  warnings: string[];
}

/**
 * Called by a handler once its own decoding succeeded (a type error wins over strict errors, as
 * in Go): the message of the 400 under `Strict`, or undefined after recording the warnings.
 */
export function strictDecodingError(strict: StrictDecoding | undefined): string | undefined {
  if (!strict || strict.errors.length === 0) return undefined;
  if (strict.directive === "Strict") return `strict decoding error: ${strict.errors.join(", ")}`;
  if (strict.directive === "Warn") strict.warnings.push(...strict.errors);
  return undefined;
}

/** The Go field a schema stands for, as far as strict decoding can tell them apart. */
type Shape =
  | { struct: ReadonlyMap<string, Shape> }
  | { map: Shape }
  | { list: Shape }
  /** A scalar, or a type with its own UnmarshalJSON (metav1.Time, FieldsV1): not looked into. */
  | "opaque";

const opaque = "opaque" as const;
const struct = (fields: Record<string, Shape>): Shape => ({ struct: new Map(Object.entries(fields)) });

// metav1.ObjectMeta's JSON fields; a kind's schema says only that metadata is an object.
const objectMeta = struct({
  name: opaque,
  generateName: opaque,
  namespace: opaque,
  selfLink: opaque,
  uid: opaque,
  resourceVersion: opaque,
  generation: opaque,
  creationTimestamp: opaque,
  deletionTimestamp: opaque,
  deletionGracePeriodSeconds: opaque,
  labels: { map: opaque },
  annotations: { map: opaque },
  ownerReferences: {
    list: struct({
      apiVersion: opaque,
      kind: opaque,
      name: opaque,
      uid: opaque,
      controller: opaque,
      blockOwnerDeletion: opaque,
    }),
  },
  finalizers: { list: opaque },
  managedFields: {
    list: struct({
      manager: opaque,
      operation: opaque,
      apiVersion: opaque,
      time: opaque,
      fieldsType: opaque,
      fieldsV1: opaque,
      subresource: opaque,
    }),
  },
});

function shapeOf(schema: JSONSchemaProps): Shape {
  if (schema.type === "array") return { list: schema.items ? shapeOf(schema.items) : opaque };
  if (schema.type !== "object") return opaque;
  if (schema.additionalProperties) return { map: shapeOf(schema.additionalProperties) };
  // An object schema without properties is an empty Go struct (WhoAmIRequestSpec).
  return struct(
    Object.fromEntries(Object.entries(schema.properties ?? {}).map(([name, s]) => [name, shapeOf(s)])),
  );
}

/** The shape of a kind's whole object: its schema, with ObjectMeta's fields under `metadata`. */
export function kindShape(schema: JSONSchemaProps): Shape {
  const top = shapeOf(schema);
  if (typeof top !== "object" || !("struct" in top)) return top;
  return { struct: new Map([...top.struct, ["metadata", objectMeta]]) };
}

const maxErrors = 100;

/**
 * The strict errors of a body JSON.parse has already accepted, in the decoder's order and
 * wording: paths join keys with `.` and indices as `[i]`; the value of an unknown field is not
 * looked into.
 */
export function strictErrors(text: string, shape: Shape): string[] {
  const seen = new Set<string>();
  const errors: string[] = [];
  const report = (kind: "unknown" | "duplicate", path: string) => {
    const message = `${kind} field ${goQuote(path)}`;
    if (errors.length >= maxErrors || seen.has(message)) return;
    seen.add(message);
    errors.push(message);
  };
  let pos = 0;
  const skipSpace = () => {
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      pos++;
    }
  };
  // At an opening quote: moves past the closing one, and gives the index of that.
  const skipString = (): number => {
    let end = text.indexOf('"', pos + 1);
    for (;;) {
      let backslashes = 0;
      while (text.charCodeAt(end - 1 - backslashes) === 0x5c) backslashes++;
      if (backslashes % 2 === 0) break;
      end = text.indexOf('"', end + 1);
    }
    pos = end + 1;
    return end;
  };
  // A key, decoded; values are only ever skipped.
  const readKey = (): string => {
    const start = pos + 1;
    const raw = text.slice(start, skipString());
    return raw.includes("\\") ? (JSON.parse(`"${raw}"`) as string) : raw;
  };
  // Any value, without recursion: nesting depth is the client's to choose.
  const skipValue = () => {
    let depth = 0;
    do {
      skipSpace();
      const c = text[pos];
      if (c === '"') skipString();
      else if (c === "{" || c === "[") {
        depth++;
        pos++;
      } else if (c === "}" || c === "]") {
        depth--;
        pos++;
      } else if (c === "," || c === ":") pos++;
      else while (pos < text.length && !',:]}" \n\r\t'.includes(text[pos]!)) pos++;
    } while (depth > 0 && pos < text.length);
  };
  const join = (path: string, key: string) => (path === "" ? key : `${path}.${key}`);
  // Each member of the object at `pos`, with its key, leaving `pos` at the member's value.
  const members = (each: (key: string) => void) => {
    pos++;
    skipSpace();
    if (text[pos] === "}") {
      pos++;
      return;
    }
    for (;;) {
      skipSpace();
      const key = readKey();
      skipSpace();
      pos++; // ':'
      skipSpace();
      each(key);
      skipSpace();
      if (text[pos++] === "}") return;
    }
  };
  const walk = (s: Shape, path: string) => {
    skipSpace();
    const c = text[pos];
    if (s === opaque || (c !== "{" && c !== "[")) return skipValue();
    if ("list" in s) {
      if (c !== "[") return skipValue();
      pos++;
      skipSpace();
      if (text[pos] === "]") {
        pos++;
        return;
      }
      for (let i = 0; ; i++) {
        walk(s.list, `${path}[${i}]`);
        skipSpace();
        if (text[pos++] === "]") return;
      }
    }
    if (c !== "{") return skipValue();
    const keys = new Set<string>();
    members((key) => {
      const field = "map" in s ? s.map : s.struct.get(key);
      if (field === undefined) {
        report("unknown", join(path, key));
        return skipValue();
      }
      if (keys.has(key)) report("duplicate", join(path, key));
      keys.add(key);
      walk(field, join(path, key));
    });
  };
  walk(shape, "");
  return errors;
}
