/** The parts of object metadata the runtime relies on. */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

/** Any Kubernetes object as it travels as JSON. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [field: string]: unknown;
}

/**
 * Which objects to list and watch: a resource (plural, lower case, as in the URL), optionally
 * limited to one namespace and by selectors. The core group is `""`.
 */
export interface ResourceRef {
  group: string;
  version: string;
  resource: string;
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** `/api/v1/...` for the core group, `/apis/<group>/<version>/...` for the rest. */
export function groupVersionPath(ref: Pick<ResourceRef, "group" | "version">): string {
  return ref.group === "" ? `/api/${ref.version}` : `/apis/${ref.group}/${ref.version}`;
}

/** The collection URL path, e.g. `/api/v1/namespaces/ns/configmaps` or `/apis/g/v/plural`. */
export function collectionPath(ref: ResourceRef, namespace = ref.namespace): string {
  const ns = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  return `${groupVersionPath(ref)}${ns}/${ref.resource}`;
}

/** The URL path of one object (append `/status` for its status subresource). */
export function objectPath(ref: ResourceRef, name: string, namespace?: string): string {
  return `${collectionPath(ref, namespace ?? ref.namespace)}/${encodeURIComponent(name)}`;
}

/** `group/resource` (or just `resource` for the core group): a short, stable label value. */
export function groupResource(ref: Pick<ResourceRef, "group" | "resource">): string {
  return ref.group === "" ? ref.resource : `${ref.group}/${ref.resource}`;
}

/** A work-queue key: `namespace/name`, or `name` for cluster-scoped objects. */
export function keyOf(obj: KubeObject): string {
  return keyFor(obj.metadata?.name ?? "", obj.metadata?.namespace);
}

export function keyFor(name: string, namespace?: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/** The inverse of `keyFor`: names and namespaces cannot contain `/`. */
export function splitKey(key: string): { name: string; namespace?: string } {
  const slash = key.indexOf("/");
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * A decoded object as a cache keeps it: without `metadata.managedFields`, which no reconciler reads
 * and which is often the largest part of a small object (client-go's informers drop it the same
 * way with a transform), and frozen. Takes ownership of `obj`: it must be freshly decoded.
 */
export function cacheable<T extends KubeObject>(obj: T): T {
  // A frozen object was cached before (a test's fixture); it keeps what it has.
  if (obj.metadata && "managedFields" in obj.metadata && !Object.isFrozen(obj.metadata)) {
    delete obj.metadata.managedFields;
  }
  return deepFreeze(obj);
}

/** Freezes an object and everything inside it, so cached objects cannot be mutated by callers. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
