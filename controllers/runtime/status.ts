import { isDeepStrictEqual } from "node:util";
import { isObject } from "../../kube/isobject.ts";
import { type KubeObject, objectPath, type ResourceRef } from "../../kube/resource.ts";
import { isConflict, type RestClient } from "../../kube/rest.ts";
import { discardLogger, type Logger } from "../../observability/logger.ts";
import { SyntheticRequeue } from "./controller.ts";

export const FIELD_MANAGER = "concierge";

/** Something that refuses writes when this replica may not write (the leader elector). */
export interface WriteGuard {
  assertLeader(): void;
}

export interface StatusWriterOptions {
  client: RestClient;
  guard?: WriteGuard;
  fieldManager?: string;
  log?: Logger;
}

type Status = Record<string, unknown>;

/**
 * Writes `status` through the status subresource, only when it differs from the cached object.
 *
 * Why a JSON merge patch and not Server-Side Apply: the patch is computed as the difference
 * between the cached status and the desired one (with `null` for fields to drop), so after the
 * write the status is exactly the desired one, including the removal of fields someone edited
 * in by hand, which SSA would leave alone since we never owned them. The patch also carries the
 * cached `resourceVersion`, which makes it an optimistic-concurrency write like upstream's
 * `UpdateStatus`: two reconcilers sharing one status (the CredentialIssuer's strategies list,
 * an atomic list in the CRD, so SSA could not split its ownership either) cannot overwrite each
 * other's news. The body holds only `metadata.resourceVersion` and `status`, so `spec` is never
 * touched, and `fieldManager` still records us in managedFields.
 */
export class StatusWriter {
  readonly #client: RestClient;
  readonly #guard: WriteGuard | undefined;
  readonly #fieldManager: string;
  readonly #log: Logger;

  constructor(options: StatusWriterOptions) {
    this.#client = options.client;
    this.#guard = options.guard;
    this.#fieldManager = options.fieldManager ?? FIELD_MANAGER;
    this.#log = options.log ?? discardLogger();
  }

  /**
   * Makes `current.status` equal `desired` (JSON semantics: `undefined` fields are absent, and a
   * `null` cannot be stored, it deletes). Returns whether a write happened. A conflict means the
   * cache was stale; it throws `SyntheticRequeue` so the key is synced again, quietly.
   */
  async write(
    resource: ResourceRef,
    current: KubeObject,
    desired: Status,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const patch = mergePatch(current.status ?? {}, desired);
    if (patch === undefined) return false;
    const name = current.metadata?.name;
    if (!name) throw new Error("cannot write the status of an object without a name");
    this.#guard?.assertLeader();
    const path = `${objectPath(resource, name, current.metadata?.namespace)}/status`;
    try {
      await this.#client.request({
        method: "PATCH",
        path,
        query: { fieldManager: this.#fieldManager },
        contentType: "application/merge-patch+json",
        body: { metadata: { resourceVersion: current.metadata?.resourceVersion }, status: patch },
        signal,
      });
    } catch (err) {
      if (isConflict(err)) {
        this.#log.debug("status write conflicted with a newer version; will sync again", { path });
        throw SyntheticRequeue;
      }
      throw err;
    }
    this.#log.debug("status written", { path });
    return true;
  }
}

/**
 * The RFC 7386 merge patch that turns `from` into `to`, or `undefined` when they are equal.
 * Objects are diffed key by key (removed keys become `null`); arrays and scalars are replaced.
 */
export function mergePatch(from: unknown, to: unknown): unknown {
  const a = normalise(from);
  const b = normalise(to);
  return isDeepStrictEqual(a, b) ? undefined : diff(a, b);
}

function diff(from: unknown, to: unknown): unknown {
  if (!isObject(from) || !isObject(to)) return to;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(to)) {
    if (!(key in from)) out[key] = value;
    else if (!isDeepStrictEqual(from[key], value)) out[key] = diff(from[key], value);
  }
  for (const key of Object.keys(from)) if (!(key in to)) out[key] = null;
  return out;
}

function normalise(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}
