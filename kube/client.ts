// A client for one resource, so reconcilers say what they want done ("create this Secret",
// "merge-patch that Service") instead of building URLs and methods. The answers are decided here
// once: reading or deleting what is not there (404) is no error, and a write that lost a race
// (409: it exists already, or it changed since it was read) throws an ApiError that
// `isConflict` names, so the controller requeues and the next sync decides again from the
// informer's newer copy.
import { collectionPath, type KubeObject, objectPath, type ResourceRef } from "./resource.ts";
import { isNotFound, type Query, type RestClient } from "./rest.ts";

export interface WriteOptions {
  signal?: AbortSignal;
  /** Server-side field ownership, e.g. the reconciler's name. */
  fieldManager?: string;
}

export interface DeleteOptions {
  signal?: AbortSignal;
  /** Deletes only the object that was read: a newer one with the same name is left alone. */
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface ResourceClient<T extends KubeObject> {
  readonly ref: ResourceRef;
  /** The object, or undefined when there is none. */
  get(name: string, options?: { signal?: AbortSignal }): Promise<T | undefined>;
  list(options?: { labelSelector?: string; fieldSelector?: string; signal?: AbortSignal }): Promise<T[]>;
  create(object: T, options?: WriteOptions): Promise<T>;
  /** Replaces the object named by its metadata; its resourceVersion, if any, must still be current. */
  update(name: string, object: T, options?: WriteOptions): Promise<T>;
  /** A JSON merge patch: only the fields given change, so fields others own survive. */
  mergePatch(name: string, patch: unknown, options?: WriteOptions): Promise<T>;
  /** True when this call deleted it, false when it was gone already. */
  delete(name: string, options?: DeleteOptions): Promise<boolean>;
}

const query = (options: WriteOptions | undefined): { query?: Query } =>
  options?.fieldManager ? { query: { fieldManager: options.fieldManager } } : {};

/** `namespace` overrides the ref's; cluster-scoped resources have neither. */
export function resourceClient<T extends KubeObject>(
  client: RestClient,
  ref: ResourceRef,
  namespace = ref.namespace,
): ResourceClient<T> {
  const item = (name: string) => objectPath(ref, name, namespace);
  const absentOnNotFound = async <R>(absent: R, call: () => Promise<R>) => {
    try {
      return await call();
    } catch (error) {
      if (isNotFound(error)) return absent;
      throw error;
    }
  };
  return {
    ref,
    get: (name, options) =>
      absentOnNotFound(undefined, () =>
        client.request<T>({ method: "GET", path: item(name), signal: options?.signal }),
      ),
    list: async (options) => {
      const list = await client.request<{ items?: T[] }>({
        method: "GET",
        path: collectionPath(ref, namespace),
        query: { labelSelector: options?.labelSelector, fieldSelector: options?.fieldSelector },
        signal: options?.signal,
      });
      return list.items ?? [];
    },
    create: (object, options) =>
      client.request<T>({
        method: "POST",
        path: collectionPath(ref, namespace),
        ...query(options),
        body: object,
        signal: options?.signal,
      }),
    update: (name, object, options) =>
      client.request<T>({
        method: "PUT",
        path: item(name),
        ...query(options),
        body: object,
        signal: options?.signal,
      }),
    mergePatch: (name, patch, options) =>
      client.request<T>({
        method: "PATCH",
        path: item(name),
        ...query(options),
        contentType: "application/merge-patch+json",
        body: patch,
        signal: options?.signal,
      }),
    delete: (name, options) =>
      absentOnNotFound(false, async () => {
        await client.request({
          method: "DELETE",
          path: item(name),
          ...(options?.preconditions
            ? { body: { apiVersion: "v1", kind: "DeleteOptions", preconditions: options.preconditions } }
            : {}),
          signal: options?.signal,
        });
        return true;
      }),
  };
}
