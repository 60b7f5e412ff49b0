// What a WebhookAuthenticator's status should say, from what the reconciler observed: a pure
// function with upstream webhookcachefiller's conditions, reasons, messages and dependencies.
import type { TLSCondition } from "../../authenticators/tls/cabundle.ts";
import type { ConditionUpdate } from "../runtime/conditions.ts";
import type { EndpointValidation } from "./endpoint.ts";

export const unableToValidate = "unable to validate; see other conditions for details";

export type Check = { ok: true } | { ok: false; message: string };

export interface Observations {
  tls: TLSCondition;
  endpoint: EndpointValidation;
  /**
   * The cache already holds an authenticator built from this endpoint and CA bundle, so the
   * expensive checks passed before and are not repeated (upstream's havePreviouslyValidated).
   */
  alreadyValidated: boolean;
  /** The TLS dial probe, when it ran. */
  dial: Check | undefined;
  /** Building the token authenticator, when it was built. */
  client: Check | undefined;
}

export interface Decision {
  /** Every condition this reconciler owns, Ready included, in upstream's order. */
  conditions: ConditionUpdate[];
  phase: "Ready" | "Error";
  /** Whether the authenticator may serve logins (be, or stay, in the cache). */
  valid: boolean;
}

/** Whether the dial probe and authenticator construction should run at all. */
export function needsProbe(o: Pick<Observations, "tls" | "endpoint" | "alreadyValidated">): boolean {
  return o.tls.status === "True" && o.endpoint.ok && !o.alreadyValidated;
}

const unknown = (type: string): ConditionUpdate => ({
  type,
  status: "Unknown",
  reason: "UnableToValidate",
  message: unableToValidate,
});

const connectionValid: ConditionUpdate = {
  type: "WebhookConnectionValid",
  status: "True",
  reason: "Success",
  message: "successfully dialed webhook server",
};

const authenticatorValid: ConditionUpdate = {
  type: "AuthenticatorValid",
  status: "True",
  reason: "Success",
  message: "authenticator initialized",
};

export function decide(o: Observations): Decision {
  const conditions: ConditionUpdate[] = [o.tls];
  conditions.push(
    o.endpoint.ok
      ? {
          type: "EndpointURLValid",
          status: "True",
          reason: "Success",
          message: "spec.endpoint is a valid URL",
        }
      : { type: "EndpointURLValid", status: "False", reason: o.endpoint.reason, message: o.endpoint.message },
  );
  const prerequisitesOk = o.tls.status === "True" && o.endpoint.ok;
  if (prerequisitesOk && o.alreadyValidated) {
    conditions.push(connectionValid, authenticatorValid);
  } else {
    // Each check counts only when the ones it depends on passed.
    const dial = prerequisitesOk ? o.dial : undefined;
    if (!dial) conditions.push(unknown("WebhookConnectionValid"));
    else if (dial.ok) conditions.push(connectionValid);
    else {
      conditions.push({
        type: "WebhookConnectionValid",
        status: "False",
        reason: "UnableToDialServer",
        message: `cannot dial server: ${dial.message}`,
      });
    }
    const client = dial?.ok ? o.client : undefined;
    if (!client) conditions.push(unknown("AuthenticatorValid"));
    else if (client.ok) conditions.push(authenticatorValid);
    else {
      conditions.push({
        type: "AuthenticatorValid",
        status: "False",
        reason: "UnableToCreateClient",
        message: `unable to create client for this webhook: ${client.message}`,
      });
    }
  }
  const valid = conditions.every((c) => c.status === "True");
  conditions.push(
    valid
      ? { type: "Ready", status: "True", reason: "Success", message: "the WebhookAuthenticator is ready" }
      : {
          type: "Ready",
          status: "False",
          reason: "NotReady",
          message: "the WebhookAuthenticator is not ready: see other conditions for details",
        },
  );
  return { conditions, phase: valid ? "Ready" : "Error", valid };
}
