// The part of apiextensions.k8s.io/v1 JSONSchemaProps that our kinds use. Everything is readonly so
// that the kind modules can declare their schemas `as const` and still be checked against this shape.

export interface ValidationRule {
  readonly rule: string;
  readonly message?: string;
  readonly messageExpression?: string;
  readonly reason?:
    | "FieldValueInvalid"
    | "FieldValueForbidden"
    | "FieldValueRequired"
    | "FieldValueDuplicate";
  readonly fieldPath?: string;
}

export interface JSONSchemaProps {
  readonly type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  readonly format?: "int32" | "int64" | "byte" | "date-time";
  readonly description?: string;
  readonly enum?: readonly string[];
  readonly default?: unknown;
  readonly minimum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly maxItems?: number;
  readonly pattern?: string;
  readonly required?: readonly string[];
  readonly properties?: { readonly [name: string]: JSONSchemaProps };
  readonly additionalProperties?: JSONSchemaProps;
  readonly items?: JSONSchemaProps;
  readonly "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  readonly "x-kubernetes-list-map-keys"?: readonly string[];
  readonly "x-kubernetes-map-type"?: "atomic" | "granular";
  readonly "x-kubernetes-validations"?: readonly ValidationRule[];
}

export interface PrinterColumn {
  readonly name: string;
  readonly type: "string" | "integer" | "number" | "boolean" | "date";
  readonly jsonPath: string;
  readonly description?: string;
  readonly priority?: number;
}

// What every kind module under apis/<group>/<version>/ exports. The generator, the aggregated API
// server (discovery and OpenAPI) and the tests read kinds only through this shape.
export interface KindModule {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly listKind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  readonly scope: "Cluster" | "Namespaced";
  // "crd" kinds are stored by kube-apiserver; "aggregated" kinds are served by our own API server.
  readonly servedBy: "crd" | "aggregated";
  readonly verbs: readonly string[];
  readonly statusSubresource: boolean;
  readonly printerColumns: readonly PrinterColumn[];
  readonly schema: JSONSchemaProps;
  // Names for the generated TypeScript declarations, keyed by schema path ("" is the root, "a.b" a
  // property, "a[]" the items of an array). Every object with properties needs one; an enum may have one.
  readonly typeNames: { readonly [path: string]: string };
}
