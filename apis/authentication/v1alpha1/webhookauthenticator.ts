import { apiVersionProperty, kindProperty, metadataProperty } from "../../meta/v1/meta.ts";
import type { PrinterColumn } from "../../schema.ts";
import { systemPrefixPolicies } from "./jwtauthenticator.ts";
import { authenticatorPhases, conditionsProperty, statusTypeNames } from "./status.ts";
import { tlsSpecSchema, tlsTypeNames } from "./tls.ts";

export { categories, group, version } from "./group.ts";

export const kind = "WebhookAuthenticator";
export const listKind = "WebhookAuthenticatorList";
export const plural = "webhookauthenticators";
export const singular = "webhookauthenticator";
export const shortNames = [] as const;
export const scope = "Cluster";
export const servedBy = "crd";
export const verbs = [
  "create",
  "delete",
  "deletecollection",
  "get",
  "list",
  "patch",
  "update",
  "watch",
] as const;
export const statusSubresource = true;

export const printerColumns = [
  { name: "Endpoint", type: "string", jsonPath: ".spec.endpoint" },
  { name: "Status", type: "string", jsonPath: ".status.phase" },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
] as const satisfies readonly PrinterColumn[];

export const schema = {
  type: "object",
  description: "WebhookAuthenticator describes the configuration of a webhook authenticator.",
  required: ["spec"],
  properties: {
    apiVersion: apiVersionProperty,
    kind: kindProperty,
    metadata: metadataProperty,
    spec: {
      type: "object",
      description: "Spec for configuring the authenticator.",
      required: ["endpoint"],
      properties: {
        endpoint: {
          type: "string",
          description: "Webhook server endpoint URL.",
          minLength: 1,
          pattern: "^https://",
        },
        systemPrefixPolicy: {
          type: "string",
          description: `systemPrefixPolicy decides whether a username or group starting with "system:", the prefix
Kubernetes reserves for its own components (for example the group system:masters), may log in.
Allow, which applies when this field is omitted, accepts it, as upstream Pinniped does; Reject
fails the login of such an identity. This field is an addition to the upstream Pinniped API.`,
          enum: systemPrefixPolicies,
        },
        tls: { ...tlsSpecSchema, description: "TLS configuration." },
      },
    },
    status: {
      type: "object",
      description: "Status of the authenticator.",
      properties: {
        conditions: conditionsProperty,
        phase: {
          type: "string",
          description: "Phase summarizes the overall status of the WebhookAuthenticator.",
          enum: authenticatorPhases,
          default: "Pending",
        },
      },
    },
  },
} as const;

export const typeNames = {
  "": "WebhookAuthenticator",
  spec: "WebhookAuthenticatorSpec",
  status: "WebhookAuthenticatorStatus",
  "status.phase": "WebhookAuthenticatorPhase",
  "spec.systemPrefixPolicy": "SystemPrefixPolicy",
  ...tlsTypeNames,
  ...statusTypeNames,
} as const;
