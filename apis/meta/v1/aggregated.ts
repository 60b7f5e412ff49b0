import type { PrinterColumn } from "../../schema.ts";

// The columns of k8s.io/apiserver's default table convertor, which upstream's aggregated kinds use.
export const defaultTableColumns = [
  { name: "Name", type: "string", jsonPath: ".metadata.name" },
  { name: "Created At", type: "date", jsonPath: ".metadata.creationTimestamp" },
] as const satisfies readonly PrinterColumn[];

// Upstream serves the aggregated kinds with create (the only real verb) and list (always empty), so
// that `kubectl get pinniped` works.
export const aggregatedVerbs = ["create", "list"] as const;
