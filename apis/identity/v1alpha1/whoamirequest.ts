import { aggregatedVerbs, defaultTableColumns } from "../../meta/v1/aggregated.ts";
import { apiVersionProperty, kindProperty, metadataProperty } from "../../meta/v1/meta.ts";

export const group = "identity.concierge.pinniped.dev";
export const version = "v1alpha1";
export const kind = "WhoAmIRequest";
export const listKind = "WhoAmIRequestList";
export const plural = "whoamirequests";
export const singular = "whoamirequest";
export const shortNames = [] as const;
export const categories = ["pinniped"] as const;
export const scope = "Cluster";
export const servedBy = "aggregated";
export const verbs = aggregatedVerbs;
export const statusSubresource = false;
export const printerColumns = defaultTableColumns;

export const schema = {
  type: "object",
  description: "WhoAmIRequest submits a request to echo back the current authenticated user.",
  properties: {
    apiVersion: apiVersionProperty,
    kind: kindProperty,
    metadata: metadataProperty,
    spec: {
      type: "object",
      description: "Spec is always empty for a WhoAmIRequest.",
    },
    status: {
      type: "object",
      description: "Status is set by the server in the response to a WhoAmIRequest.",
      required: ["kubernetesUserInfo"],
      properties: {
        kubernetesUserInfo: {
          type: "object",
          description: "The current authenticated user, exactly as Kubernetes understands it.",
          required: ["user"],
          properties: {
            user: {
              type: "object",
              description: "User is the UserInfo associated with the current user.",
              required: ["username"],
              properties: {
                username: {
                  type: "string",
                  description: "The name that uniquely identifies this user among all active users.",
                },
                uid: {
                  type: "string",
                  description:
                    "A unique value that identifies this user across time. If this user is deleted and another user by the same name is added, they will have different UIDs.",
                },
                groups: {
                  type: "array",
                  description: "The names of groups this user is a part of.",
                  items: { type: "string" },
                },
                extra: {
                  type: "object",
                  description: "Any additional information provided by the authenticator.",
                  additionalProperties: { type: "array", items: { type: "string" } },
                },
              },
            },
            audiences: {
              type: "array",
              description: "Audiences are audience identifiers chosen by the authenticator.",
              items: { type: "string" },
            },
          },
        },
      },
    },
  },
} as const;

export const typeNames = {
  "": "WhoAmIRequest",
  spec: "WhoAmIRequestSpec",
  status: "WhoAmIRequestStatus",
  "status.kubernetesUserInfo": "KubernetesUserInfo",
  "status.kubernetesUserInfo.user": "UserInfo",
} as const;
