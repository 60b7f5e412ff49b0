import { goQuote } from "./goquote.ts";
// Field errors worded like k8s.io/apimachinery's field.Error, so a refusal from the admission
// webhook reads like one from kube-apiserver itself: `spec.issuer: Invalid value: "http://x": <detail>`.

export interface FieldError {
  /** The field path, e.g. `spec.tls.certificateAuthorityData` or `spec.claims.extra[1].key`. */
  readonly field: string;
  /** Everything after `<field>: `, e.g. `Invalid value: "x": must be lowercase`. */
  readonly message: string;
}

export function invalid(field: string, value: string, detail: string): FieldError {
  return { field, message: `Invalid value: ${goQuote(value)}: ${detail}` };
}

export function required(field: string, detail = ""): FieldError {
  return { field, message: detail ? `Required value: ${detail}` : "Required value" };
}

export function forbidden(field: string, detail: string): FieldError {
  return { field, message: `Forbidden: ${detail}` };
}

export function duplicate(field: string, value: string): FieldError {
  return { field, message: `Duplicate value: ${goQuote(value)}` };
}

export function formatFieldError(e: FieldError): string {
  return `${e.field}: ${e.message}`;
}

/**
 * What `ErrorList.ToAggregate().Error()` prints: one error alone, several as `[a, b]`, each
 * distinct message once.
 */
export function aggregateMessage(errors: readonly FieldError[]): string {
  const distinct = [...new Set(errors.map(formatFieldError))];
  return distinct.length === 1 ? (distinct[0] ?? "") : `[${distinct.join(", ")}]`;
}
