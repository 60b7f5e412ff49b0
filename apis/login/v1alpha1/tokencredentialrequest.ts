import { aggregatedVerbs, defaultTableColumns } from "../../meta/v1/aggregated.ts";
import { apiVersionProperty, kindProperty, metadataProperty } from "../../meta/v1/meta.ts";

export const group = "login.concierge.pinniped.dev";
export const version = "v1alpha1";
export const kind = "TokenCredentialRequest";
export const listKind = "TokenCredentialRequestList";
export const plural = "tokencredentialrequests";
export const singular = "tokencredentialrequest";
export const shortNames = [] as const;
export const categories = ["pinniped"] as const;
export const scope = "Cluster";
export const servedBy = "aggregated";
export const verbs = aggregatedVerbs;
export const statusSubresource = false;
export const printerColumns = defaultTableColumns;

export const schema = {
  type: "object",
  description:
    "TokenCredentialRequest submits an IDP-specific credential to Pinniped in exchange for a cluster-specific credential.",
  properties: {
    apiVersion: apiVersionProperty,
    kind: kindProperty,
    metadata: metadataProperty,
    spec: {
      type: "object",
      description: "Specification of a TokenCredentialRequest, expected on requests to the Pinniped API.",
      required: ["authenticator"],
      properties: {
        token: {
          type: "string",
          description: "Bearer token supplied with the credential request.",
        },
        certificateSigningRequest: {
          type: "string",
          description: `Not upstream: a PEM certificate signing request made by the client (ECDSA P-256 or P-384, Ed25519, or
RSA of at least 2048 bits, signed with its own key). The answer then holds a certificate for that key and
no private key, which never leaves the client. Only the key is used: the certificate names the
authenticated user, whatever the request's subject says.`,
        },
        authenticator: {
          type: "object",
          description: "Reference to an authenticator which can validate this credential request.",
          required: ["kind", "name"],
          "x-kubernetes-map-type": "atomic",
          properties: {
            apiGroup: {
              type: "string",
              description:
                "APIGroup is the group for the resource being referenced. If APIGroup is not specified, the specified Kind must be in the core API group. For any other third-party types, APIGroup is required.",
            },
            kind: {
              type: "string",
              description: "Kind is the type of resource being referenced",
            },
            name: {
              type: "string",
              description: "Name is the name of resource being referenced",
            },
          },
        },
      },
    },
    status: {
      type: "object",
      description: "Status of a TokenCredentialRequest, returned on responses to the Pinniped API.",
      properties: {
        credential: {
          type: "object",
          description: "A Credential will be returned for a successful credential request.",
          properties: {
            expirationTimestamp: {
              type: "string",
              format: "date-time",
              description: "ExpirationTimestamp indicates a time when the provided credentials expire.",
            },
            token: {
              type: "string",
              description: "Token is a bearer token used by the client for request authentication.",
            },
            clientCertificateData: {
              type: "string",
              description: "PEM-encoded client TLS certificates (including intermediates, if any).",
            },
            clientKeyData: {
              type: "string",
              description: "PEM-encoded private key for the above certificate.",
            },
          },
        },
        message: {
          type: "string",
          description: "An error message will be returned for an unsuccessful credential request.",
        },
      },
    },
  },
} as const;

export const typeNames = {
  "": "TokenCredentialRequest",
  spec: "TokenCredentialRequestSpec",
  "spec.authenticator": "TypedLocalObjectReference",
  status: "TokenCredentialRequestStatus",
  "status.credential": "ClusterCredential",
} as const;
