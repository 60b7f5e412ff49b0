import { type KubeObject, keyFor, keyOf } from "../../kube/resource.ts";
import type { Filter, InformerEvent } from "./controller.ts";

/** Every event maps to the key of the object itself. */
export const ownKey: Filter = (event) => keyOf(event.obj);

/** Every event maps to one fixed key: for controllers that reconcile "the world" (upstream's singleton queue). */
export function singletonKey(key: string): Filter {
  return () => key;
}

/**
 * Drops events whose object does not satisfy `predicate` (an update passes when either the old
 * or the new object does, so leaving the selection is seen too), then maps with `then`.
 */
export function when<T extends KubeObject>(predicate: (obj: T) => boolean, then: Filter<T>): Filter<T> {
  return (event: InformerEvent<T>) => {
    const matches = predicate(event.obj) || (event.type === "update" && predicate(event.old));
    return matches ? then(event) : undefined;
  };
}

/** True for exactly the named object (in `namespace`, when given). */
export function named(name: string, namespace?: string): (obj: KubeObject) => boolean {
  return (obj) =>
    obj.metadata?.name === name && (namespace === undefined || obj.metadata?.namespace === namespace);
}

/**
 * Drops updates of objects that have a `metadata.generation` when it did not change (status or
 * label edits, resyncs); objects without a generation, adds and deletes pass.
 */
export function generationChanged<T extends KubeObject>(then: Filter<T>): Filter<T> {
  return (event) => {
    if (event.type !== "update") return then(event);
    const before = event.old.metadata?.generation;
    return before !== undefined && before === event.obj.metadata?.generation ? undefined : then(event);
  };
}

/** Maps an event to the key of the object's controlling owner of `kind`, if it has one. */
export function controllerOwnerKey(kind: string): Filter {
  return (event) => {
    const refs = event.obj.metadata?.ownerReferences as
      | { kind?: string; name?: string; controller?: boolean }[]
      | undefined;
    const owner = refs?.find((r) => r.controller && r.kind === kind && r.name);
    return owner?.name ? keyFor(owner.name, event.obj.metadata?.namespace) : undefined;
  };
}
