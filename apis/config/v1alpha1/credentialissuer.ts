import { apiVersionProperty, conditionSchema, kindProperty, metadataProperty } from "../../meta/v1/meta.ts";
import type { PrinterColumn, ValidationRule } from "../../schema.ts";

export const group = "config.concierge.pinniped.dev";
export const version = "v1alpha1";
export const kind = "CredentialIssuer";
export const listKind = "CredentialIssuerList";
export const plural = "credentialissuers";
export const singular = "credentialissuer";
export const shortNames = [] as const;
export const categories = ["pinniped"] as const;
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
  { name: "ProxyMode", type: "string", jsonPath: ".spec.impersonationProxy.mode" },
  { name: "DefaultStrategy", type: "string", jsonPath: '.status.strategies[?(@.status == "Success")].type' },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
] as const satisfies readonly PrinterColumn[];

export const impersonationProxyModes = ["auto", "enabled", "disabled"] as const;
export const impersonationProxyServiceTypes = ["LoadBalancer", "ClusterIP", "None"] as const;
// Upstream's two types, then ours (additive: a client that knows only upstream's reads the
// frontend, which is one upstream's CLI understands).
export const strategyTypes = [
  "KubeClusterSigningCertificate",
  "ImpersonationProxy",
  "SecretSigningCertificate",
  "CertificateSigningRequestAPI",
  "JWTCredential",
] as const;
export const strategyStatuses = ["Success", "Error"] as const;
export const strategyReasons = [
  "Listening",
  "Pending",
  "Disabled",
  "ErrorDuringSetup",
  "CouldNotFetchKey",
  "CouldNotGetClusterInfo",
  "FetchedKey",
  // Ours: the CertificateSigningRequestAPI strategy's probe CSR and the JWTCredential strategy's
  // probe TokenReview.
  "ProbeSucceeded",
  "ProbeFailed",
] as const;
export const frontendTypes = ["TokenCredentialRequestAPI", "ImpersonationProxy"] as const;

// Not upstream: upstream's impersonator-config controller refuses these specs at sync time and reports
// that in the ImpersonationProxy strategy; we reject them at admission already. Each rule is skipped when
// the mode is "disabled", as the controller skips these checks then, so only specs the controller would
// refuse to act on are rejected. The messages are the controller's.
const ipv4Octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";

export const impersonationProxyValidations = [
  {
    rule: "self.mode == 'disabled' || !has(self.service.type) || self.service.type != 'None' || (has(self.externalEndpoint) && self.externalEndpoint != '')",
    message: "externalEndpoint must be set when service.type is None",
    fieldPath: ".externalEndpoint",
    reason: "FieldValueRequired",
  },
  // CEL's isIP() is refused in new CRD rules before Kubernetes 1.31, and the CRDs install on 1.30:
  // an IPv4 address is matched exactly (no leading zeros, as isIP and the controller want), an IPv6
  // one only by its characters, and the controller refuses at sync time what slips through.
  {
    rule: `self.mode == 'disabled' || !has(self.service.loadBalancerIP) || self.service.loadBalancerIP.matches('^(${ipv4Octet}[.]){3}${ipv4Octet}$') || self.service.loadBalancerIP.matches('^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$')`,
    messageExpression: "'invalid LoadBalancerIP \"' + self.service.loadBalancerIP + '\"'",
    fieldPath: ".service.loadBalancerIP",
    reason: "FieldValueInvalid",
  },
  {
    rule: "self.mode == 'disabled' || !has(self.tls) || has(self.tls.secretName)",
    message: "must provide impersonationSpec.TLS.secretName if impersonationSpec.TLS is provided",
    fieldPath: ".tls.secretName",
    reason: "FieldValueRequired",
  },
] as const satisfies readonly ValidationRule[];

export const schema = {
  type: "object",
  description:
    "CredentialIssuer describes the configuration and status of the Pinniped Concierge credential issuer.",
  properties: {
    apiVersion: apiVersionProperty,
    kind: kindProperty,
    metadata: metadataProperty,
    spec: {
      type: "object",
      description: "Spec describes the intended configuration of the Concierge.",
      required: ["impersonationProxy"],
      properties: {
        impersonationProxy: {
          type: "object",
          description:
            "ImpersonationProxy describes the intended configuration of the Concierge impersonation proxy.",
          required: ["mode", "service"],
          "x-kubernetes-validations": impersonationProxyValidations,
          properties: {
            externalEndpoint: {
              type: "string",
              description: `ExternalEndpoint describes the HTTPS endpoint where the proxy will be exposed. If not set, the proxy will
be served using the external name of the LoadBalancer service or the cluster service DNS name.

This field must be non-empty when spec.impersonationProxy.service.type is "None".`,
            },
            mode: {
              type: "string",
              description: `Mode configures whether the impersonation proxy should be started:
- "disabled" explicitly disables the impersonation proxy. This is the default.
- "enabled" explicitly enables the impersonation proxy.
- "auto" enables or disables the impersonation proxy based upon the cluster in which it is running.`,
              enum: impersonationProxyModes,
            },
            service: {
              type: "object",
              description:
                "Service describes the configuration of the Service provisioned to expose the impersonation proxy to clients.",
              default: {
                type: "LoadBalancer",
              },
              properties: {
                annotations: {
                  type: "object",
                  description:
                    "Annotations specifies zero or more key/value pairs to set as annotations on the provisioned Service.",
                  additionalProperties: {
                    type: "string",
                  },
                },
                loadBalancerIP: {
                  type: "string",
                  description: `LoadBalancerIP specifies the IP address to set in the spec.loadBalancerIP field of the provisioned Service.
This is not supported on all cloud providers.`,
                  minLength: 1,
                  maxLength: 255,
                },
                type: {
                  type: "string",
                  description: `Type specifies the type of Service to provision for the impersonation proxy.

If the type is "None", then the "spec.impersonationProxy.externalEndpoint" field must be set to a non-empty
value so that the Concierge can properly advertise the endpoint in the CredentialIssuer's status.`,
                  enum: impersonationProxyServiceTypes,
                  default: "LoadBalancer",
                },
              },
            },
            tls: {
              type: "object",
              description: `TLS contains information about how the Concierge impersonation proxy should serve TLS.

If this field is empty, the impersonation proxy will generate its own TLS certificate.`,
              properties: {
                certificateAuthorityData: {
                  type: "string",
                  description: `X.509 Certificate Authority (base64-encoded PEM bundle).
Used to advertise the CA bundle for the impersonation proxy endpoint.`,
                },
                secretName: {
                  type: "string",
                  description: `SecretName is the name of a Secret in the same namespace, of type \`kubernetes.io/tls\`, which contains
the TLS serving certificate for the Concierge impersonation proxy endpoint.`,
                  minLength: 1,
                },
              },
            },
          },
        },
      },
    },
    status: {
      type: "object",
      description: "CredentialIssuerStatus describes the status of the Concierge.",
      required: ["strategies"],
      properties: {
        conditions: {
          type: "array",
          description: `Not upstream: standard conditions summarizing the strategies, for health tools that read conditions
(kubectl wait, Argo CD, Flux/kstatus). "Ready" is True when some strategy can issue credentials, and
names the frontend clients use; each strategy also has a condition of its own type.`,
          items: conditionSchema,
          "x-kubernetes-list-map-keys": ["type"],
          "x-kubernetes-list-type": "map",
        },
        observedGeneration: {
          type: "integer",
          format: "int64",
          description: "Not upstream: the metadata.generation of the spec this status was computed for.",
          minimum: 0,
        },
        strategies: {
          type: "array",
          description: "List of integration strategies that were attempted by Pinniped.",
          items: {
            type: "object",
            description:
              "CredentialIssuerStrategy describes the status of an integration strategy that was attempted by Pinniped.",
            required: ["lastUpdateTime", "message", "reason", "status", "type"],
            properties: {
              frontend: {
                type: "object",
                description: "Frontend describes how clients can connect using this strategy.",
                required: ["type"],
                properties: {
                  impersonationProxyInfo: {
                    type: "object",
                    description: `ImpersonationProxyInfo describes the parameters for the impersonation proxy on this Concierge.
This field is only set when Type is "ImpersonationProxy".`,
                    required: ["certificateAuthorityData", "endpoint"],
                    properties: {
                      certificateAuthorityData: {
                        type: "string",
                        description:
                          "CertificateAuthorityData is the base64-encoded PEM CA bundle of the impersonation proxy.",
                        minLength: 1,
                      },
                      endpoint: {
                        type: "string",
                        description: "Endpoint is the HTTPS endpoint of the impersonation proxy.",
                        minLength: 1,
                        pattern: "^https://",
                      },
                    },
                  },
                  tokenCredentialRequestInfo: {
                    type: "object",
                    description: `TokenCredentialRequestAPIInfo describes the parameters for the TokenCredentialRequest API on this Concierge.
This field is only set when Type is "TokenCredentialRequestAPI".`,
                    required: ["certificateAuthorityData", "server"],
                    properties: {
                      certificateAuthorityData: {
                        type: "string",
                        description:
                          "CertificateAuthorityData is the base64-encoded Kubernetes API server CA bundle.",
                        minLength: 1,
                      },
                      server: {
                        type: "string",
                        description: "Server is the Kubernetes API server URL.",
                        minLength: 1,
                        pattern: "^https://|^http://",
                      },
                    },
                  },
                  type: {
                    type: "string",
                    description: "Type describes which frontend mechanism clients can use with a strategy.",
                    enum: frontendTypes,
                  },
                },
              },
              lastUpdateTime: {
                type: "string",
                format: "date-time",
                description: "When the status was last checked.",
              },
              message: {
                type: "string",
                description: "Human-readable description of the current status.",
                minLength: 1,
              },
              reason: {
                type: "string",
                description: "Reason for the current status.",
                enum: strategyReasons,
              },
              status: {
                type: "string",
                description: "Status of the attempted integration strategy.",
                enum: strategyStatuses,
              },
              type: {
                type: "string",
                description: "Type of integration attempted.",
                enum: strategyTypes,
              },
            },
          },
        },
      },
    },
  },
} as const;

export const typeNames = {
  "": "CredentialIssuer",
  spec: "CredentialIssuerSpec",
  "spec.impersonationProxy": "ImpersonationProxySpec",
  "spec.impersonationProxy.mode": "ImpersonationProxyMode",
  "spec.impersonationProxy.service": "ImpersonationProxyServiceSpec",
  "spec.impersonationProxy.service.type": "ImpersonationProxyServiceType",
  "spec.impersonationProxy.tls": "ImpersonationProxyTLSSpec",
  status: "CredentialIssuerStatus",
  "status.conditions[]": "Condition",
  "status.conditions[].status": "ConditionStatus",
  "status.strategies[]": "CredentialIssuerStrategy",
  "status.strategies[].type": "StrategyType",
  "status.strategies[].status": "StrategyStatus",
  "status.strategies[].reason": "StrategyReason",
  "status.strategies[].frontend": "CredentialIssuerFrontend",
  "status.strategies[].frontend.type": "FrontendType",
  "status.strategies[].frontend.tokenCredentialRequestInfo": "TokenCredentialRequestAPIInfo",
  "status.strategies[].frontend.impersonationProxyInfo": "ImpersonationProxyInfo",
} as const;
