import { Ajv, type AnySchemaObject, type ErrorObject } from "ajv";
import type { JSONSchemaProps } from "./schema.ts";

// Validates objects against our kinds' schemas the way kube-apiserver validates custom resources:
// defaults first, then the OpenAPI checks, with errors worded like apiextensions-apiserver's
// (`spec.issuer: Invalid value: "": spec.issuer in body should be at least 1 chars long`).
// CEL rules (x-kubernetes-validations) are not evaluated here; only the API server runs them.
// Unknown fields are neither rejected nor pruned.

export interface ValidationResult {
  // A copy of the input with the schema defaults applied, as the API server would store it.
  readonly object: unknown;
  // One message per problem, each `<field path>: <detail>`; empty when the object is valid.
  readonly errors: readonly string[];
}

const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// An Ajv that understands the OpenAPI dialect of CRD schemas: the formats Kubernetes defines and the
// x-kubernetes-* extensions (list-type uniqueness is checked, the rest are annotations for the server).
export function newKubernetesAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, verbose: true, useDefaults: true, strict: true });
  ajv.addFormat("int32", {
    type: "number",
    validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31,
  });
  ajv.addFormat("int64", { type: "number", validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat("byte", { type: "string", validate: (s: string) => base64.test(s) });
  ajv.addFormat("date-time", { type: "string", validate: (s: string) => rfc3339.test(s) });
  ajv.addKeyword({ keyword: "x-kubernetes-list-map-keys", schemaType: "array" });
  ajv.addKeyword({ keyword: "x-kubernetes-map-type", schemaType: "string" });
  ajv.addKeyword({ keyword: "x-kubernetes-validations", schemaType: "array" });
  ajv.addKeyword({
    keyword: "x-kubernetes-list-type",
    type: "array",
    schemaType: "string",
    errors: true,
    validate: validateListType,
  });
  return ajv;
}

// Ajv reads a function keyword's errors from a property of the function itself.
function validateListType(listType: string, items: unknown[], parentSchema?: AnySchemaObject): boolean {
  const errors: Partial<ErrorObject>[] = [];
  if (listType === "set" || listType === "map") {
    const mapKeys: readonly string[] = parentSchema?.["x-kubernetes-list-map-keys"] ?? [];
    const seen = new Set<string>();
    items.forEach((item, index) => {
      const identity =
        listType === "set"
          ? JSON.stringify(item)
          : JSON.stringify(mapKeys.map((k) => (item as Record<string, unknown>)[k]));
      if (seen.has(identity))
        errors.push({ keyword: "x-kubernetes-list-type", params: { index, listType, mapKeys } });
      seen.add(identity);
    });
  }
  validateListType.errors = errors;
  return errors.length === 0;
}
validateListType.errors = [] as Partial<ErrorObject>[];

let sharedAjv: Ajv | undefined;

// `root` names where the validated value sits in its object. kube-apiserver validates writes to the
// status subresource against the status schema alone (root "status"), which shows in its messages:
// `status.conditions[0].reason: Invalid value: "x": conditions[0].reason in body should match ...`.
export function compileValidator(schema: JSONSchemaProps, root = ""): (object: unknown) => ValidationResult {
  sharedAjv ??= newKubernetesAjv();
  const validate = sharedAjv.compile(schema);
  return (object) => {
    const copy = structuredClone(object);
    validate(copy);
    return {
      object: copy,
      errors: firstStringErrors(validate.errors ?? []).map((e) => formatError(schema, root, e)),
    };
  };
}

// kube-openapi checks a string's maxLength, minLength and pattern in that order and reports only the
// first that fails, where Ajv reports all of them.
const stringChecks = ["maxLength", "minLength", "pattern"];

function firstStringErrors(errors: readonly ErrorObject[]): ErrorObject[] {
  return errors.filter(
    (e) =>
      !errors.some(
        (other) =>
          other.instancePath === e.instancePath &&
          stringChecks.includes(other.keyword) &&
          stringChecks.includes(e.keyword) &&
          stringChecks.indexOf(other.keyword) < stringChecks.indexOf(e.keyword),
      ),
  );
}

// apiextensions-apiserver turns kube-openapi's errors into field errors; this mirrors that wording.
function formatError(schema: JSONSchemaProps, root: string, e: ErrorObject): string {
  const path = fieldPath(schema, e.instancePath);
  const field = join(root, path);
  const invalid = (detail: string, value = goValue(e.data)) => `${field}: Invalid value: ${value}: ${detail}`;
  switch (e.keyword) {
    case "required":
      return `${join(field, e.params.missingProperty)}: Required value`;
    case "enum":
      return `${field}: Unsupported value: ${goValue(e.data)}: supported values: ${(e.schema as string[]).map((v) => JSON.stringify(v)).join(", ")}`;
    case "pattern":
      return invalid(`${path} in body should match '${e.params.pattern}'`);
    case "minLength":
      return invalid(`${path} in body should be at least ${e.params.limit} chars long`);
    case "maxLength":
      return `${field}: Too long: may not be more than ${e.params.limit} bytes`;
    case "maxItems":
      return `${field}: Too many: ${(e.data as unknown[]).length}: must have at most ${e.params.limit} items`;
    case "minimum":
      return invalid(`${path} in body should be greater than or equal to ${e.params.limit}`);
    case "type": {
      const actual = JSON.stringify(jsonType(e.data));
      return invalid(`${path} in body must be of type ${e.params.type}: ${actual}`, actual);
    }
    case "format":
      return invalid(`${path} in body must be of type ${e.params.format}: ${goValue(e.data)}`);
    case "x-kubernetes-list-type": {
      const item = (e.data as unknown[])[e.params.index] as Record<string, unknown>;
      const value =
        e.params.listType === "map"
          ? JSON.stringify(Object.fromEntries((e.params.mapKeys as string[]).map((k) => [k, item[k]])))
          : goValue(item);
      return `${field}[${e.params.index}]: Duplicate value: ${value}`;
    }
    default:
      return invalid(e.message ?? e.keyword);
  }
}

// Kubernetes field paths as kube-openapi writes them: `spec.claims.extra[0].key`, and map entries
// joined with a dot too (`annotations.example.com/a`).
function fieldPath(schema: JSONSchemaProps, instancePath: string): string {
  let path = "";
  let node: JSONSchemaProps | undefined = schema;
  for (const raw of instancePath.split("/").slice(1)) {
    const segment = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (node?.type === "array") {
      path += `[${segment}]`;
      node = node.items;
    } else {
      path = join(path, segment);
      node = node?.properties?.[segment] ?? node?.additionalProperties;
    }
  }
  return path;
}

function join(path: string, name: string): string {
  return path === "" || name === "" ? path + name : `${path}.${name}`;
}

// How Go's field.Error prints a bad value: strings quoted, scalars bare.
function goValue(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}
