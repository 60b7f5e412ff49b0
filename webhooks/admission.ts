// admission.k8s.io/v1 AdmissionReview in, AdmissionReview out. Pure: the HTTP server around it
// only reads bodies, counts and logs.
import { jwtAuthenticator, webhookAuthenticator } from "../apis/index.ts";
import { aggregateMessage, type FieldError, formatFieldError } from "../kube/fielderror.ts";
import { isObject } from "../kube/isobject.ts";
import { shownValue } from "../kube/shown.ts";
import {
  jwtAuthenticatorAdvisories,
  jwtAuthenticatorDenials,
  validateJWTAuthenticator,
  validateWebhookAuthenticator,
} from "./validation.ts";

export const admissionAPIVersion = "admission.k8s.io/v1";

export type ValidatedKind = typeof jwtAuthenticator.kind | typeof webhookAuthenticator.kind;

export interface AdmissionOptions {
  /** A configured strategy's credential carries extras (the JWTCredential strategy): no warning about them. */
  extrasDeliverable?: boolean;
  /** The authenticators' group as the install serves it (kube/groupsuffix.ts); default upstream's. */
  group?: string;
}

/** Per kind: what is refused, and what is only warned about. */
function validatorsFor(
  options: AdmissionOptions,
): Record<ValidatedKind, { deny: (obj: unknown) => FieldError[]; warn: (obj: unknown) => FieldError[] }> {
  return {
    [jwtAuthenticator.kind]: {
      deny: jwtAuthenticatorDenials,
      warn: (o: unknown) => [
        ...validateJWTAuthenticator(o),
        ...jwtAuthenticatorAdvisories(o, options.extrasDeliverable),
      ],
    },
    [webhookAuthenticator.kind]: { deny: () => [], warn: validateWebhookAuthenticator },
  };
}

/** metav1.Status, as AdmissionResponse.status carries it. */
export interface AdmissionStatus {
  status: "Failure";
  code: number;
  reason: "Invalid" | "BadRequest" | "RequestEntityTooLarge";
  message: string;
}

export interface AdmissionReviewResponse {
  apiVersion: typeof admissionAPIVersion;
  kind: "AdmissionReview";
  response: { uid: string; allowed: boolean; status?: AdmissionStatus; warnings?: string[] };
}

export interface AdmissionDecision {
  review: AdmissionReviewResponse;
  /** Undefined when the request was for a kind this webhook does not validate. */
  kind: ValidatedKind | undefined;
  operation: string;
  name: string;
  allowed: boolean;
  /**
   * The fields a denial names. Logs get these rather than the messages, which quote values
   * (an issuer URL, an expression) that are the object owner's business.
   */
  deniedFields: string[];
  /** The fields the warnings of an admitted object name, for logs likewise. */
  warnedFields: string[];
}

/** The body is not an AdmissionReview this webhook can answer at all: the server says 400. */
export class MalformedAdmissionReview extends Error {}

/** A denial for a review whose body was too large to read, answered with its uid alone. */
export function denyUnread(uid: string, message: string): AdmissionReviewResponse {
  return {
    apiVersion: admissionAPIVersion,
    kind: "AdmissionReview",
    response: {
      uid,
      allowed: false,
      status: { status: "Failure", code: 413, reason: "RequestEntityTooLarge", message },
    },
  };
}

const shown = (value: unknown) => shownValue(value);

const part = (value: unknown) =>
  typeof value === "string" && value.length <= 253 ? value : value === undefined ? "undefined" : "?";

export function reviewAdmission(body: unknown, options: AdmissionOptions = {}): AdmissionDecision {
  const group = options.group ?? jwtAuthenticator.group;
  const validators = validatorsFor(options);
  if (!isObject(body)) throw new MalformedAdmissionReview("the body is not a JSON object");
  if (body.apiVersion !== admissionAPIVersion || body.kind !== "AdmissionReview") {
    throw new MalformedAdmissionReview(
      `expected an AdmissionReview in ${admissionAPIVersion}, got kind ${shown(body.kind)} in ${shown(body.apiVersion)}`,
    );
  }
  const request = body.request;
  if (!isObject(request)) throw new MalformedAdmissionReview("request is missing");
  const uid = request.uid;
  if (typeof uid !== "string" || uid === "") throw new MalformedAdmissionReview("request.uid is missing");

  const operation = typeof request.operation === "string" ? request.operation : "";
  const object = request.object;
  const name = nameOf(request, object);
  const decide = (
    kind: ValidatedKind | undefined,
    status?: AdmissionStatus,
    deniedFields: string[] = [],
    warnings: FieldError[] = [],
  ): AdmissionDecision => ({
    review: {
      apiVersion: admissionAPIVersion,
      kind: "AdmissionReview",
      response: status
        ? { uid, allowed: false, status }
        : warnings.length > 0
          ? { uid, allowed: true, warnings: warnings.map(formatFieldError) }
          : { uid, allowed: true },
    },
    kind,
    operation,
    name,
    allowed: status === undefined,
    deniedFields,
    warnedFields: status ? [] : fieldsOf(warnings),
  });
  const badRequest = (kind: ValidatedKind | undefined, message: string) =>
    decide(kind, { status: "Failure", code: 400, reason: "BadRequest", message });

  // Anything else can only arrive through a misconfigured ValidatingWebhookConfiguration;
  // refusing it makes that mistake visible instead of silently waving objects through.
  const kind = validatedKind(request.kind, group);
  if (!kind || (typeof request.subResource === "string" && request.subResource !== "")) {
    const gvk = isObject(request.kind) ? request.kind : {};
    const sub =
      typeof request.subResource === "string" && request.subResource ? `/${part(request.subResource)}` : "";
    return badRequest(
      undefined,
      `this webhook validates only ${jwtAuthenticator.kind} and ${webhookAuthenticator.kind} in ${group}/${jwtAuthenticator.version}, not kind ${shown(gvk.kind)}${sub} in ${shown(`${part(gvk.group)}/${part(gvk.version)}`)}`,
    );
  }
  // Deleting must always work, above all for an object that is wrong.
  if (operation === "DELETE") return decide(kind);
  if (operation !== "CREATE" && operation !== "UPDATE") {
    return badRequest(kind, `operation ${shown(operation)} is not validated by this webhook`);
  }
  if (!isObject(object)) return badRequest(kind, "request.object is missing");

  let denials = validators[kind].deny(object);
  // Ratcheting, as kube-apiserver does for CRD rules: an UPDATE is refused only for problems it
  // introduces, so an object stored before a rule existed can still be labelled or finalized.
  if (operation === "UPDATE" && isObject(request.oldObject) && denials.length > 0) {
    const before = new Set(validators[kind].deny(request.oldObject).map(formatFieldError));
    denials = denials.filter((e) => !before.has(formatFieldError(e)));
  }
  if (denials.length > 0) {
    return decide(
      kind,
      { status: "Failure", code: 422, reason: "Invalid", message: aggregateMessage(denials) },
      fieldsOf(denials),
    );
  }
  // Upstream's CRDs refuse none of these: it stores the object and reports the problem in its
  // conditions, which our reconcilers do in upstream's words. So the object is admitted, and the
  // problems come back as warnings, which kubectl prints at apply time.
  return decide(kind, undefined, [], validators[kind].warn(object));
}

const fieldsOf = (errors: readonly FieldError[]) => [...new Set(errors.map((e) => e.field))];

function validatedKind(gvk: unknown, group: string): ValidatedKind | undefined {
  if (!isObject(gvk) || gvk.group !== group || gvk.version !== jwtAuthenticator.version) {
    return undefined;
  }
  return gvk.kind === jwtAuthenticator.kind || gvk.kind === webhookAuthenticator.kind ? gvk.kind : undefined;
}

function nameOf(request: Record<string, unknown>, object: unknown): string {
  if (typeof request.name === "string" && request.name !== "") return request.name;
  const metadata = isObject(object) ? object.metadata : undefined;
  return isObject(metadata) && typeof metadata.name === "string" ? metadata.name : "";
}
