// TLSSpec, shared by JWTAuthenticator and WebhookAuthenticator. Each kind adds its own description
// where it embeds this schema, as upstream's field comments differ.

export const certificateAuthorityDataSourceKinds = ["Secret", "ConfigMap"] as const;

export const tlsSpecSchema = {
  type: "object",
  properties: {
    certificateAuthorityData: {
      type: "string",
      description:
        "X.509 Certificate Authority (base64-encoded PEM bundle). If omitted, a default set of system roots will be trusted.",
    },
    certificateAuthorityDataSource: {
      type: "object",
      description: `Reference to a CA bundle in a secret or a configmap.
Any changes to the CA bundle in the secret or configmap will be dynamically reloaded.`,
      required: ["key", "kind", "name"],
      properties: {
        key: {
          type: "string",
          description: `Key is the key name within the secret or configmap from which to read the CA bundle.
The value found at this key in the secret or configmap must not be empty, and must be a valid PEM-encoded
certificate bundle.`,
          minLength: 1,
        },
        kind: {
          type: "string",
          description: `Kind configures whether the CA bundle is being sourced from a Kubernetes secret or a configmap.
Allowed values are "Secret" or "ConfigMap".
"ConfigMap" uses a Kubernetes configmap to source CA Bundles.
"Secret" uses Kubernetes secrets of type kubernetes.io/tls or Opaque to source CA Bundles.`,
          enum: certificateAuthorityDataSourceKinds,
        },
        name: {
          type: "string",
          description: `Name is the resource name of the secret or configmap from which to read the CA bundle.
The referenced secret or configmap must be created in the same namespace where Pinniped Concierge is installed.`,
          minLength: 1,
        },
      },
    },
  },
} as const;

export const tlsTypeNames = {
  "spec.tls": "TLSSpec",
  "spec.tls.certificateAuthorityDataSource": "CertificateAuthorityDataSourceSpec",
  "spec.tls.certificateAuthorityDataSource.kind": "CertificateAuthorityDataSourceKind",
} as const;
