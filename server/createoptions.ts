// The query of a create (metav1.CreateOptions), checked as the generic apiserver's
// ValidateCreateOptions does before the body is decoded: every problem in one 422.
import { goQuote } from "../kube/goquote.ts";
import { type APIResponse, type FieldError, goStringSlice, invalid } from "./status.ts";
import type { FieldValidation } from "./strictdecode.ts";

export interface CreateOptions {
  dryRun: string[];
  /** An absent (or empty) `fieldValidation` is `Warn`. */
  fieldValidation: FieldValidation;
}

const fieldValidations: readonly string[] = ["Ignore", "Strict", "Warn"];

export function createOptions(query: URLSearchParams): CreateOptions | APIResponse {
  const dryRun = query.getAll("dryRun");
  // A single-valued parameter takes the first of several, as the parameter codec does.
  const fieldValidation = query.get("fieldValidation") ?? "";
  const errors: FieldError[] = [];
  if (dryRun.some((v) => v !== "All")) {
    errors.push({
      type: "FieldValueNotSupported",
      field: "dryRun",
      message: `Unsupported value: ${goStringSlice(dryRun)}: supported values: "All"`,
    });
  }
  if (fieldValidation !== "" && !fieldValidations.includes(fieldValidation)) {
    errors.push({
      type: "FieldValueNotSupported",
      field: "fieldValidation",
      message: `Unsupported value: ${goQuote(fieldValidation)}: supported values: ${["", ...fieldValidations].map(goQuote).join(", ")}`,
    });
  }
  if (errors.length > 0) return invalid("meta.k8s.io", "CreateOptions", "", errors);
  return { dryRun, fieldValidation: (fieldValidation || "Warn") as FieldValidation };
}
