// metav1.Status bodies worded as k8s.io/apimachinery's apierrors builds them, so that kubectl and
// client-go print our errors exactly as they print upstream's.

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  group?: string;
  kind?: string;
  name?: string;
  causes?: StatusCause[];
}

export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure";
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

/** What a handler answers: an HTTP code, a JSON body, and texts for Warning headers. */
export interface APIResponse {
  code: number;
  body: unknown;
  warnings?: readonly string[];
}

function status(code: number, reason: string, message: string, details?: StatusDetails): Status {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

export function failure(code: number, reason: string, message: string): APIResponse {
  return { code, body: status(code, reason, message) };
}

export const badRequest = (message: string): APIResponse => failure(400, "BadRequest", message);

/** One field.Error: `field` is its path, `message` its ErrorBody() (e.g. `Required value: ...`). */
export interface FieldError {
  type: "FieldValueRequired" | "FieldValueNotSupported" | "FieldValueInvalid";
  field: string;
  message: string;
}

/**
 * apierrors.NewInvalid: 422 with one cause per field error. `kind` is often empty (upstream's
 * decoded objects carry no kind), which makes the qualified kind `.<group>`.
 */
export function invalid(group: string, kind: string, name: string, errors: FieldError[]): APIResponse {
  const qualified = group === "" ? kind : `${kind}.${group}`;
  const bodies = errors.map((e) => `${e.field}: ${e.message}`);
  const aggregate = bodies.length === 1 ? bodies[0] : `[${bodies.join(", ")}]`;
  const details: StatusDetails = {
    ...(group ? { group } : {}),
    ...(kind ? { kind } : {}),
    ...(name ? { name } : {}),
    causes: errors.map((e) => ({ reason: e.type, message: e.message, field: e.field })),
  };
  return {
    code: 422,
    body: status(422, "Invalid", `${qualified} ${JSON.stringify(name)} is invalid: ${aggregate}`, details),
  };
}

/** Go's `%#v` of a []string, which field.NotSupported puts in its message. */
export function goStringSlice(values: readonly string[]): string {
  return `[]string{${values.map((v) => JSON.stringify(v)).join(", ")}}`;
}

/**
 * The dryRun check both kinds make once decoding succeeded: `All` is not supported (other values
 * never get here: see createoptions.ts).
 */
export function dryRunError(group: string, dryRun: readonly string[]): APIResponse | undefined {
  if (dryRun.length === 0) return undefined;
  return invalid(group, "", "", [
    {
      type: "FieldValueNotSupported",
      field: "dryRun",
      message: `Unsupported value: ${goStringSlice(dryRun)}`,
    },
  ]);
}
