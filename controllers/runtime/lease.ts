import type { ObjectMeta } from "../../kube/resource.ts";
import { isNotFound, type RestClient } from "../../kube/rest.ts";

/** `coordination.k8s.io/v1` LeaseSpec; the times are MicroTime strings. */
export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
  [field: string]: unknown;
}

export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta & { name: string; namespace: string };
  spec?: LeaseSpec;
}

/** The three calls leader election makes on its one Lease; faked in unit tests. */
export interface LeaseClient {
  readonly namespace: string;
  readonly name: string;
  /** `undefined` when the Lease does not exist. */
  get(signal?: AbortSignal): Promise<Lease | undefined>;
  create(lease: Lease, signal?: AbortSignal): Promise<Lease>;
  /** A PUT carrying `metadata.resourceVersion`: fails with 409 if the Lease changed meanwhile. */
  update(lease: Lease, signal?: AbortSignal): Promise<Lease>;
}

/**
 * Leases as plain JSON over the RestClient. client-node's CoordinationV1Api is not used because
 * its generated serializer types Lease times as `Date` but hands back strings, and sends a plain
 * `Date` with millisecond precision, which the API server rejects as a MicroTime.
 */
export function restLeaseClient(
  client: RestClient,
  namespace: string,
  name: string,
  fieldManager = "concierge",
): LeaseClient {
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  const item = `${collection}/${encodeURIComponent(name)}`;
  const query = { fieldManager };
  return {
    namespace,
    name,
    async get(signal) {
      try {
        return await client.request<Lease>({ method: "GET", path: item, signal });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    create: (lease, signal) =>
      client.request<Lease>({ method: "POST", path: collection, query, body: lease, signal }),
    update: (lease, signal) =>
      client.request<Lease>({ method: "PUT", path: item, query, body: lease, signal }),
  };
}
