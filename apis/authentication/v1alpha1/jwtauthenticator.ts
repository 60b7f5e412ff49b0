import { apiVersionProperty, kindProperty, metadataProperty } from "../../meta/v1/meta.ts";
import type { PrinterColumn } from "../../schema.ts";
import { authenticatorPhases, conditionsProperty, statusTypeNames } from "./status.ts";
import { tlsSpecSchema, tlsTypeNames } from "./tls.ts";

export { categories, group, version } from "./group.ts";

export const kind = "JWTAuthenticator";
export const listKind = "JWTAuthenticatorList";
export const plural = "jwtauthenticators";
export const singular = "jwtauthenticator";
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

/** How `aud` is matched against `spec.audience` and `spec.audiences`, as Kubernetes' `issuer.audienceMatchPolicy`. */
export const audienceMatchPolicies = ["MatchAny"] as const;
/** Whether `system:` usernames and groups may log in; absent means `Reject`. */
export const systemPrefixPolicies = ["Reject", "Allow"] as const;
export const maxAudiences = 10;

// Our additions to upstream's spec are optional, so every upstream manifest stays valid. The schema
// has no CEL rule (x-kubernetes-validations): with one, kube-apiserver adds "some validation rules
// were not checked because the object was invalid" to blocking errors (a missing field, a value
// outside an enum), and upstream's messages would not come out unchanged. The one rule our
// additions need, audienceMatchPolicy with audiences, is the admission webhook's
// (webhooks/validation.ts).

export const printerColumns = [
  { name: "Issuer", type: "string", jsonPath: ".spec.issuer" },
  { name: "Audience", type: "string", jsonPath: ".spec.audience" },
  { name: "Status", type: "string", jsonPath: ".status.phase" },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
] as const satisfies readonly PrinterColumn[];

export const schema = {
  type: "object",
  description: `JWTAuthenticator describes the configuration of a JWT authenticator.

Upon receiving a signed JWT, a JWTAuthenticator will performs some validation on it (e.g., valid
signature, existence of claims, etc.) and extract the username and groups from the token.`,
  required: ["spec"],
  properties: {
    apiVersion: apiVersionProperty,
    kind: kindProperty,
    metadata: metadataProperty,
    spec: {
      type: "object",
      description: "spec for configuring the authenticator.",
      required: ["audience", "issuer"],
      properties: {
        audience: {
          type: "string",
          description: 'audience is the required value of the "aud" JWT claim.',
          minLength: 1,
        },
        audienceMatchPolicy: {
          type: "string",
          description: `audienceMatchPolicy says how the "aud" JWT claim is matched against audience and audiences.
The only policy is MatchAny: the "aud" claim must contain at least one of them. It must be set
when audiences is set, as Kubernetes' AuthenticationConfiguration issuer.audienceMatchPolicy.
This field is an addition to the upstream Pinniped API.`,
          enum: audienceMatchPolicies,
        },
        audiences: {
          type: "array",
          description: `audiences are acceptable values of the "aud" JWT claim, accepted in addition to audience,
for example when a command-line client and a web application of the same issuer use different
client IDs. A token is accepted when its "aud" claim contains audience or any of audiences.
Requires audienceMatchPolicy MatchAny. At most ${maxAudiences} entries, each non-empty and unique.
This field is an addition to the upstream Pinniped API.`,
          maxItems: maxAudiences,
          "x-kubernetes-list-type": "set",
          items: { type: "string", minLength: 1 },
        },
        claimValidationRules: {
          type: "array",
          description: `claimValidationRules are rules that are applied to validate token claims to authenticate users.
This is similar to claimValidationRules from Kubernetes AuthenticationConfiguration as documented in
https://kubernetes.io/docs/reference/access-authn-authz/authentication.
This is an advanced configuration option. During an end-user login flow, mistakes in this
configuration will cause the user's login to fail.`,
          items: {
            type: "object",
            description: "ClaimValidationRule provides the configuration for a single claim validation rule.",
            properties: {
              claim: {
                type: "string",
                description: `claim is the name of a required claim.
Only string claim keys are supported.
Mutually exclusive with expression and message.`,
              },
              expression: {
                type: "string",
                description: `expression represents the expression which will be evaluated by CEL.
Must produce a boolean.

CEL expressions have access to the contents of the token claims, organized into CEL variable:
- 'claims' is a map of claim names to claim values.
  For example, a variable named 'sub' can be accessed as 'claims.sub'.
  Nested claims can be accessed using dot notation, e.g. 'claims.foo.bar'.
Must return true for the validation to pass.

Documentation on CEL: https://kubernetes.io/docs/reference/using-api/cel/

Mutually exclusive with claim and requiredValue.`,
              },
              message: {
                type: "string",
                description: `message customizes the returned error message when expression returns false.
message is a literal string.
Mutually exclusive with claim and requiredValue.`,
              },
              requiredValue: {
                type: "string",
                description: `requiredValue is the value of a required claim.
Only string claim values are supported.
If claim is set and requiredValue is not set, the claim must be present with a value set to the empty string.
Mutually exclusive with expression and message.`,
              },
            },
          },
        },
        claims: {
          type: "object",
          description: `claims allows customization of the claims that will be mapped to user identity
for Kubernetes access.`,
          properties: {
            extra: {
              type: "array",
              description: `extra is similar to claimMappings.extra from Kubernetes AuthenticationConfiguration
as documented in https://kubernetes.io/docs/reference/access-authn-authz/authentication.

However, note that the Pinniped Concierge issues client certificates to users for the purpose
of authenticating, and the Kubernetes API server does not have any mechanism for transmitting
auth extras via client certificates. When configured, these extras will appear in client
certificates issued by the Pinniped Supervisor in the x509 Subject field as Organizational
Units (OU). However, when this client certificate is presented to Kubernetes for authentication,
Kubernetes will ignore these extras. This is probably only useful if you are using a custom
authenticating proxy in front of your Kubernetes API server which can translate these OUs into
auth extras, as described by
https://kubernetes.io/docs/reference/access-authn-authz/authentication/#authenticating-proxy.
This is an advanced configuration option. During an end-user login flow, each of these CEL expressions
must evaluate to either a string or an array of strings, or else the user's login will fail.

These keys must be a domain-prefixed path (such as "acme.io/foo") and must not contain an equals sign ("=").

expression must produce a string or string array value.
If the value is empty, the extra mapping will not be present.

Documentation on CEL: https://kubernetes.io/docs/reference/using-api/cel/

hard-coded extra key/value
- key: "acme.io/foo"
  valueExpression: "'bar'"
This will result in an extra attribute - acme.io/foo: ["bar"]

hard-coded key, value copying claim value
- key: "acme.io/foo"
  valueExpression: "claims.some_claim"
This will result in an extra attribute - acme.io/foo: [value of some_claim]

hard-coded key, value derived from claim value
- key: "acme.io/admin"
  valueExpression: '(has(claims.is_admin) && claims.is_admin) ? "true":""'
This will result in:
 - if is_admin claim is present and true, extra attribute - acme.io/admin: ["true"]
 - if is_admin claim is present and false or is_admin claim is not present, no extra attribute will be added`,
              items: {
                type: "object",
                description: "ExtraMapping provides the configuration for a single extra mapping.",
                required: ["key", "valueExpression"],
                properties: {
                  key: {
                    type: "string",
                    description: `key is a string to use as the extra attribute key.
key must be a domain-prefix path (e.g. example.org/foo). All characters before the first "/" must be a valid
subdomain as defined by RFC 1123. All characters trailing the first "/" must
be valid HTTP Path characters as defined by RFC 3986.
key must be lowercase.
Required to be unique.
Additionally, the key must not contain an equals sign ("=").`,
                  },
                  valueExpression: {
                    type: "string",
                    description: `valueExpression is a CEL expression to extract extra attribute value.
valueExpression must produce a string or string array value.
"", [], and null values are treated as the extra mapping not being present.
Empty string values contained within a string array are filtered out.

CEL expressions have access to the contents of the token claims, organized into CEL variable:
- 'claims' is a map of claim names to claim values.
  For example, a variable named 'sub' can be accessed as 'claims.sub'.
  Nested claims can be accessed using dot notation, e.g. 'claims.foo.bar'.

Documentation on CEL: https://kubernetes.io/docs/reference/using-api/cel/`,
                  },
                },
              },
            },
            groups: {
              type: "string",
              description: `groups is the name of the claim which should be read to extract the user's
group membership from the JWT token. When not specified, it will default to "groups",
unless groupsExpression is specified.

Mutually exclusive with groupsExpression. Use either groups or groupsExpression to
determine the user's group membership from the JWT token.`,
            },
            groupsExpression: {
              type: "string",
              description: `groupsExpression represents an expression which will be evaluated by CEL.
The expression's result will become the user's group memberships.

groupsExpression is similar to claimMappings.groups.expression from Kubernetes AuthenticationConfiguration
as documented in https://kubernetes.io/docs/reference/access-authn-authz/authentication.
This is an advanced configuration option. During an end-user login flow, each of these CEL expressions
must evaluate to one of the expected types without errors, or else the user's login will fail.
Additionally, mistakes in this configuration can cause the users to have unintended group memberships.

The expression must produce a string or string array value.
 "", [], and null values are treated as the group mapping not being present.

CEL expressions have access to the contents of the token claims, organized into CEL variable:
- 'claims' is a map of claim names to claim values.
  For example, a variable named 'sub' can be accessed as 'claims.sub'.
  Nested claims can be accessed using dot notation, e.g. 'claims.foo.bar'.

Documentation on CEL: https://kubernetes.io/docs/reference/using-api/cel/

Mutually exclusive with groups. Use either groups or groupsExpression to
determine the user's group membership from the JWT token.`,
            },
            username: {
              type: "string",
              description: `username is the name of the claim which should be read to extract the
username from the JWT token. When not specified, it will default to "username",
unless usernameExpression is specified.

Mutually exclusive with usernameExpression. Use either username or usernameExpression to
determine the user's username from the JWT token.`,
            },
            usernameExpression: {
              type: "string",
              description: `usernameExpression represents an expression which will be evaluated by CEL.
The expression's result will become the user's username.

usernameExpression is similar to claimMappings.username.expression from Kubernetes AuthenticationConfiguration
as documented in https://kubernetes.io/docs/reference/access-authn-authz/authentication.
This is an advanced configuration option. During an end-user login flow, each of these CEL expressions
must evaluate to the expected type without errors, or else the user's login will fail.
Additionally, mistakes in this configuration can cause the users to have unintended usernames.

The expression must produce a non-empty string value.
If the expression uses 'claims.email', then 'claims.email_verified' must be used in
the expression or extra[*].valueExpression or claimValidationRules[*].expression.
An example claim validation rule expression that matches the validation automatically
applied when username.claim is set to 'email' is 'claims.?email_verified.orValue(true) == true'.
By explicitly comparing the value to true, we let type-checking see the result will be a boolean,
and to make sure a non-boolean email_verified claim will be caught at runtime.

CEL expressions have access to the contents of the token claims, organized into CEL variable:
- 'claims' is a map of claim names to claim values.
  For example, a variable named 'sub' can be accessed as 'claims.sub'.
  Nested claims can be accessed using dot notation, e.g. 'claims.foo.bar'.

Documentation on CEL: https://kubernetes.io/docs/reference/using-api/cel/

Mutually exclusive with username. Use either username or usernameExpression to
determine the user's username from the JWT token.`,
            },
          },
        },
        issuer: {
          type: "string",
          description: `issuer is the OIDC issuer URL that will be used to discover public signing keys. Issuer is
also used to validate the "iss" JWT claim.`,
          minLength: 1,
          pattern: "^https://",
        },
        systemPrefixPolicy: {
          type: "string",
          description: `systemPrefixPolicy decides whether a username or group starting with "system:", the prefix
Kubernetes reserves for its own components (for example the group system:masters), may log in.
Reject, which applies when this field is omitted, fails the login of such an identity; Allow
accepts it, as upstream Pinniped does. This field is an addition to the upstream Pinniped API.`,
          enum: systemPrefixPolicies,
        },
        tls: {
          ...tlsSpecSchema,
          description: "tls is the configuration for communicating with the OIDC provider via TLS.",
        },
        userValidationRules: {
          type: "array",
          description: `userValidationRules are rules that are applied to final user before completing authentication.
These allow invariants to be applied to incoming identities such as preventing the
use of the system: prefix that is commonly used by Kubernetes components.
The validation rules are logically ANDed together and must all return true for the validation to pass.
This is similar to claimValidationRules from Kubernetes AuthenticationConfiguration as documented in
https://kubernetes.io/docs/reference/access-authn-authz/authentication.
This is an advanced configuration option. During an end-user login flow, mistakes in this
configuration will cause the user's login to fail.`,
          items: {
            type: "object",
            description:
              "UserValidationRule provides the configuration for a single user info validation rule.",
            required: ["expression"],
            properties: {
              expression: {
                type: "string",
                description: `expression represents the expression which will be evaluated by CEL.
Must return true for the validation to pass.

CEL expressions have access to the contents of UserInfo, organized into CEL variable:
- 'user' - authentication.k8s.io/v1, Kind=UserInfo object
   Refer to https://github.com/kubernetes/api/blob/release-1.28/authentication/v1/types.go#L105-L122 for the definition.
   API documentation: https://kubernetes.io/docs/reference/generated/kubernetes-api/v1.28/#userinfo-v1-authentication-k8s-io

Documentation on CEL: https://kubernetes.io/docs/reference/using-api/cel/`,
              },
              message: {
                type: "string",
                description: `message customizes the returned error message when rule returns false.
message is a literal string.`,
              },
            },
          },
        },
      },
    },
    status: {
      type: "object",
      description: "status of the authenticator.",
      properties: {
        conditions: conditionsProperty,
        phase: {
          type: "string",
          description: "Phase summarizes the overall status of the JWTAuthenticator.",
          enum: authenticatorPhases,
          default: "Pending",
        },
      },
    },
  },
} as const;

export const typeNames = {
  "": "JWTAuthenticator",
  spec: "JWTAuthenticatorSpec",
  "spec.audienceMatchPolicy": "AudienceMatchPolicy",
  "spec.systemPrefixPolicy": "SystemPrefixPolicy",
  "spec.claims": "JWTTokenClaims",
  "spec.claims.extra[]": "ExtraMapping",
  "spec.claimValidationRules[]": "ClaimValidationRule",
  "spec.userValidationRules[]": "UserValidationRule",
  status: "JWTAuthenticatorStatus",
  "status.phase": "JWTAuthenticatorPhase",
  ...tlsTypeNames,
  ...statusTypeNames,
} as const;
