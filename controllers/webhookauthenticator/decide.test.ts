import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TLSCondition } from "../../authenticators/tls/cabundle.ts";
import type { ConditionUpdate } from "../runtime/conditions.ts";
import { decide, needsProbe, type Observations } from "./decide.ts";

const tlsOk: TLSCondition = {
  type: "TLSConfigurationValid",
  status: "True",
  reason: "Success",
  message: "spec.tls is valid: using configured CA bundle",
};
const tlsBad: TLSCondition = {
  type: "TLSConfigurationValid",
  status: "False",
  reason: "InvalidTLSConfig",
  message: "spec.tls.certificateAuthorityData is invalid: illegal base64 data at input byte 7",
};
const endpointOk: Observations["endpoint"] = { ok: true, hostPort: { host: "127.0.0.1", port: 443 } };
const endpointBad: Observations["endpoint"] = {
  ok: false,
  reason: "InvalidEndpointURLScheme",
  message: "spec.endpoint URL http://x has invalid scheme, require 'https'",
};

const c = (type: string, status: ConditionUpdate["status"], reason: string, message: string) => ({
  type,
  status,
  reason,
  message,
});
const endpointValid = c("EndpointURLValid", "True", "Success", "spec.endpoint is a valid URL");
const dialed = c("WebhookConnectionValid", "True", "Success", "successfully dialed webhook server");
const initialized = c("AuthenticatorValid", "True", "Success", "authenticator initialized");
const unknown = (type: string) =>
  c(type, "Unknown", "UnableToValidate", "unable to validate; see other conditions for details");
const ready = c("Ready", "True", "Success", "the WebhookAuthenticator is ready");
const notReady = c(
  "Ready",
  "False",
  "NotReady",
  "the WebhookAuthenticator is not ready: see other conditions for details",
);

const base: Observations = {
  tls: tlsOk,
  endpoint: endpointOk,
  alreadyValidated: false,
  dial: undefined,
  client: undefined,
};

describe("decide", () => {
  const cases: { name: string; in: Partial<Observations>; conditions: ConditionUpdate[]; probe: boolean }[] =
    [
      {
        name: "all checks pass",
        in: { dial: { ok: true }, client: { ok: true } },
        conditions: [tlsOk, endpointValid, dialed, initialized, ready],
        probe: true,
      },
      {
        name: "already validated with this endpoint and bundle: no probe, same success",
        in: { alreadyValidated: true },
        conditions: [tlsOk, endpointValid, dialed, initialized, ready],
        probe: false,
      },
      {
        name: "bad TLS config: nothing downstream can be validated",
        in: { tls: tlsBad },
        conditions: [
          tlsBad,
          endpointValid,
          unknown("WebhookConnectionValid"),
          unknown("AuthenticatorValid"),
          notReady,
        ],
        probe: false,
      },
      {
        name: "bad TLS config even though the cache matched before",
        in: { tls: tlsBad, alreadyValidated: true },
        conditions: [
          tlsBad,
          endpointValid,
          unknown("WebhookConnectionValid"),
          unknown("AuthenticatorValid"),
          notReady,
        ],
        probe: false,
      },
      {
        name: "bad endpoint",
        in: { endpoint: endpointBad },
        conditions: [
          tlsOk,
          c(
            "EndpointURLValid",
            "False",
            "InvalidEndpointURLScheme",
            "spec.endpoint URL http://x has invalid scheme, require 'https'",
          ),
          unknown("WebhookConnectionValid"),
          unknown("AuthenticatorValid"),
          notReady,
        ],
        probe: false,
      },
      {
        name: "dial fails",
        in: { dial: { ok: false, message: "dial tcp 127.0.0.1:443: connect: connection refused" } },
        conditions: [
          tlsOk,
          endpointValid,
          c(
            "WebhookConnectionValid",
            "False",
            "UnableToDialServer",
            "cannot dial server: dial tcp 127.0.0.1:443: connect: connection refused",
          ),
          unknown("AuthenticatorValid"),
          notReady,
        ],
        probe: true,
      },
      {
        name: "client cannot be created",
        in: { dial: { ok: true }, client: { ok: false, message: "Invalid URL" } },
        conditions: [
          tlsOk,
          endpointValid,
          dialed,
          c(
            "AuthenticatorValid",
            "False",
            "UnableToCreateClient",
            "unable to create client for this webhook: Invalid URL",
          ),
          notReady,
        ],
        probe: true,
      },
    ];
  for (const tc of cases) {
    it(tc.name, () => {
      const o = { ...base, ...tc.in };
      const decision = decide(o);
      assert.deepEqual(decision.conditions, tc.conditions);
      const valid = tc.conditions.every((x) => x.type === "Ready" || x.status === "True");
      assert.equal(decision.valid, valid);
      assert.equal(decision.phase, valid ? "Ready" : "Error");
      assert.equal(needsProbe(o), tc.probe);
    });
  }
});
