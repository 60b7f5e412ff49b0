// Discovery and OpenAPI documents of the aggregated kinds, built once from their schemas in
// apis/. kube-apiserver reads them through the APIServices: legacy discovery (`/apis/<g>/<v>`)
// feeds `kubectl api-resources`, and the OpenAPI documents (with x-kubernetes-group-version-kind)
// feed `kubectl explain`.
import { createHash } from "node:crypto";
import { type KindModule, kinds } from "../apis/index.ts";
import type { GroupSuffix } from "../kube/groupsuffix.ts";

export const aggregatedKinds: readonly KindModule[] = kinds.filter((k) => k.servedBy === "aggregated");

/**
 * The aggregated kinds under the groups an install serves (kube/groupsuffix.ts); every function
 * below takes such a list and defaults to the code's own names.
 */
export function servedKinds(groups: GroupSuffix): readonly KindModule[] {
  return aggregatedKinds.map((k) => ({ ...k, group: groups.served(k.group) }));
}

export function kindFor(
  group: string,
  version: string,
  plural: string,
  ks: readonly KindModule[] = aggregatedKinds,
): KindModule | undefined {
  return ks.find((k) => k.group === group && k.version === version && k.plural === plural);
}

function groupVersions(group: string, ks: readonly KindModule[]) {
  return [...new Set(ks.filter((k) => k.group === group).map((k) => k.version))].map((version) => ({
    groupVersion: `${group}/${version}`,
    version,
  }));
}

export function apiGroup(group: string, ks: readonly KindModule[] = aggregatedKinds) {
  const versions = groupVersions(group, ks);
  if (versions.length === 0) return undefined;
  return { kind: "APIGroup", apiVersion: "v1", name: group, versions, preferredVersion: versions[0] };
}

export function apiGroupList(ks: readonly KindModule[] = aggregatedKinds) {
  const groups = [...new Set(ks.map((k) => k.group))];
  const items = groups.map((g) => {
    const { kind: _k, apiVersion: _a, ...rest } = apiGroup(g, ks)!;
    return rest;
  });
  return { kind: "APIGroupList", apiVersion: "v1", groups: items };
}

export function apiResourceList(group: string, version: string, ks: readonly KindModule[] = aggregatedKinds) {
  const resources = ks.filter((k) => k.group === group && k.version === version);
  if (resources.length === 0) return undefined;
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: `${group}/${version}`,
    resources: resources.map((k) => ({
      name: k.plural,
      singularName: k.singular,
      namespaced: k.scope === "Namespaced",
      kind: k.kind,
      verbs: [...k.verbs],
      ...(k.shortNames.length > 0 ? { shortNames: [...k.shortNames] } : {}),
      categories: [...k.categories],
    })),
  };
}

/** The empty list upstream's `list` always answers. */
export function emptyList(k: KindModule) {
  return {
    kind: k.listKind,
    apiVersion: `${k.group}/${k.version}`,
    metadata: { resourceVersion: "0" },
    items: [],
  };
}

/** The same empty list as a meta.k8s.io Table, for `kubectl get`, with the default columns. */
export function emptyTable(k: KindModule, tableVersion: "v1" | "v1beta1") {
  return {
    kind: "Table",
    apiVersion: `meta.k8s.io/${tableVersion}`,
    metadata: { resourceVersion: "0" },
    columnDefinitions: k.printerColumns.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.jsonPath === ".metadata.name" ? "name" : "",
      description: c.description ?? "",
      priority: c.priority ?? 0,
    })),
    rows: [],
  };
}

// Reverse-domain names, as Kubernetes names definitions after Go packages.
function definitionName(group: string, version: string, kind: string): string {
  return `${group.split(".").reverse().join(".")}.${version}.${kind}`;
}

const listMeta = {
  type: "object",
  description: "Standard list metadata.",
  properties: { resourceVersion: { type: "string" } },
};

function definitions(ks: readonly KindModule[], ref: (name: string) => string) {
  const defs: Record<string, unknown> = {};
  for (const k of ks) {
    const gvk = (kind: string) => [{ group: k.group, kind, version: k.version }];
    defs[definitionName(k.group, k.version, k.kind)] = {
      ...k.schema,
      "x-kubernetes-group-version-kind": gvk(k.kind),
    };
    defs[definitionName(k.group, k.version, k.listKind)] = {
      type: "object",
      description: `${k.listKind} is a list of ${k.kind} objects; it is always empty.`,
      required: ["items"],
      properties: {
        apiVersion: k.schema.properties?.apiVersion,
        kind: k.schema.properties?.kind,
        metadata: listMeta,
        items: { type: "array", items: { $ref: ref(definitionName(k.group, k.version, k.kind)) } },
      },
      "x-kubernetes-group-version-kind": gvk(k.listKind),
    };
  }
  return defs;
}

const queryParameter = (name: string, description: string) => ({ name, in: "query", description });

function paths(ks: readonly KindModule[], v3: boolean, ref: (name: string) => string) {
  const out: Record<string, unknown> = {};
  for (const k of ks) {
    const objectRef = { $ref: ref(definitionName(k.group, k.version, k.kind)) };
    const listRef = { $ref: ref(definitionName(k.group, k.version, k.listKind)) };
    const body = (schema: unknown) => (v3 ? { content: { "application/json": { schema } } } : { schema });
    const id = `${k.group.split(".")[0]}${k.version[0]!.toUpperCase()}${k.version.slice(1)}`;
    const gvk = { group: k.group, version: k.version, kind: k.kind };
    const param = (name: string, description: string) =>
      v3
        ? { ...queryParameter(name, description), schema: { type: "string" } }
        : { ...queryParameter(name, description), type: "string" };
    out[`/apis/${k.group}/${k.version}/${k.plural}`] = {
      get: {
        operationId: `list${id[0]!.toUpperCase()}${id.slice(1)}${k.kind}`,
        description: `list objects of kind ${k.kind} (always empty)`,
        responses: { "200": { description: "OK", ...body(listRef) }, "401": { description: "Unauthorized" } },
        "x-kubernetes-action": "list",
        "x-kubernetes-group-version-kind": gvk,
      },
      post: {
        operationId: `create${id[0]!.toUpperCase()}${id.slice(1)}${k.kind}`,
        description: `create a ${k.kind}`,
        ...(v3
          ? { requestBody: { required: true, content: { "application/json": { schema: objectRef } } } }
          : { parameters: [{ name: "body", in: "body", required: true, schema: objectRef }] }),
        responses: {
          "200": { description: "OK", ...body(objectRef) },
          "201": { description: "Created", ...body(objectRef) },
          "401": { description: "Unauthorized" },
        },
        "x-kubernetes-action": "post",
        "x-kubernetes-group-version-kind": gvk,
      },
      parameters: [
        param("dryRun", "Not supported: any value is refused."),
        param("fieldManager", "Ignored: nothing is stored."),
        param(
          "fieldValidation",
          "Ignore, Warn (the default) or Strict: what to do with unknown or duplicate fields in the body.",
        ),
        param("pretty", "Ignored."),
      ],
    };
  }
  return out;
}

const info = { title: "Pinniped Concierge", version: "v1alpha1" };

export function openAPIV2(ks: readonly KindModule[] = aggregatedKinds) {
  const ref = (name: string) => `#/definitions/${name}`;
  return {
    swagger: "2.0",
    info,
    paths: paths(ks, false, ref),
    definitions: definitions(ks, ref),
  };
}

export function openAPIV3GroupVersion(
  group: string,
  version: string,
  all: readonly KindModule[] = aggregatedKinds,
) {
  const ks = all.filter((k) => k.group === group && k.version === version);
  if (ks.length === 0) return undefined;
  const ref = (name: string) => `#/components/schemas/${name}`;
  return {
    openapi: "3.0.0",
    info,
    paths: paths(ks, true, ref),
    components: { schemas: definitions(ks, ref) },
  };
}

/**
 * The `/openapi/v3` index. Each entry's hash changes with its document, which lets
 * kube-apiserver's aggregator skip refetching unchanged ones.
 */
export function openAPIV3Index(ks: readonly KindModule[] = aggregatedKinds) {
  const index: Record<string, { serverRelativeURL: string }> = {};
  const seen = new Set<string>();
  for (const k of ks) {
    const path = `apis/${k.group}/${k.version}`;
    if (seen.has(path)) continue;
    seen.add(path);
    const hash = createHash("sha512")
      .update(JSON.stringify(openAPIV3GroupVersion(k.group, k.version, ks)))
      .digest("hex")
      .toUpperCase();
    index[path] = { serverRelativeURL: `/openapi/v3/${path}?hash=${hash}` };
  }
  return { paths: index };
}
