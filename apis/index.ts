import * as jwtAuthenticator from "./authentication/v1alpha1/jwtauthenticator.ts";
import type { authenticatorPhases } from "./authentication/v1alpha1/status.ts";
import type { certificateAuthorityDataSourceKinds } from "./authentication/v1alpha1/tls.ts";
import * as webhookAuthenticator from "./authentication/v1alpha1/webhookauthenticator.ts";
import * as credentialIssuer from "./config/v1alpha1/credentialissuer.ts";
import * as whoAmIRequest from "./identity/v1alpha1/whoamirequest.ts";
import * as tokenCredentialRequest from "./login/v1alpha1/tokencredentialrequest.ts";
import type { conditionStatuses } from "./meta/v1/meta.ts";
import type { KindModule } from "./schema.ts";

export type * from "./generated/types.ts";
export type { JSONSchemaProps, KindModule, PrinterColumn, ValidationRule } from "./schema.ts";
export { credentialIssuer, jwtAuthenticator, tokenCredentialRequest, webhookAuthenticator, whoAmIRequest };

export const kinds = [
  credentialIssuer,
  jwtAuthenticator,
  webhookAuthenticator,
  tokenCredentialRequest,
  whoAmIRequest,
] as const satisfies readonly KindModule[];

export const crdKinds = kinds.filter((k) => k.servedBy === "crd");

// The constant objects below must name every value of the matching schema enum, and nothing else:
// `satisfies` fails to compile when either side changes alone. Each also names the union of its
// values as a type, which hides the generated type of the same name.
type ValuesOf<T extends readonly string[]> = { readonly [V in T[number]]: V };
type CapitalizedValuesOf<T extends readonly string[]> = { readonly [V in T[number] as Capitalize<V>]: V };

export const ImpersonationProxyMode = {
  Auto: "auto",
  Enabled: "enabled",
  Disabled: "disabled",
} as const satisfies CapitalizedValuesOf<typeof credentialIssuer.impersonationProxyModes>;
export type ImpersonationProxyMode = (typeof ImpersonationProxyMode)[keyof typeof ImpersonationProxyMode];

export const ImpersonationProxyServiceType = {
  LoadBalancer: "LoadBalancer",
  ClusterIP: "ClusterIP",
  None: "None",
} as const satisfies ValuesOf<typeof credentialIssuer.impersonationProxyServiceTypes>;
export type ImpersonationProxyServiceType =
  (typeof ImpersonationProxyServiceType)[keyof typeof ImpersonationProxyServiceType];

export const StrategyType = {
  KubeClusterSigningCertificate: "KubeClusterSigningCertificate",
  ImpersonationProxy: "ImpersonationProxy",
  SecretSigningCertificate: "SecretSigningCertificate",
  CertificateSigningRequestAPI: "CertificateSigningRequestAPI",
  JWTCredential: "JWTCredential",
} as const satisfies ValuesOf<typeof credentialIssuer.strategyTypes>;
export type StrategyType = (typeof StrategyType)[keyof typeof StrategyType];

export const StrategyStatus = {
  Success: "Success",
  Error: "Error",
} as const satisfies ValuesOf<typeof credentialIssuer.strategyStatuses>;
export type StrategyStatus = (typeof StrategyStatus)[keyof typeof StrategyStatus];

export const StrategyReason = {
  Listening: "Listening",
  Pending: "Pending",
  Disabled: "Disabled",
  ErrorDuringSetup: "ErrorDuringSetup",
  CouldNotFetchKey: "CouldNotFetchKey",
  CouldNotGetClusterInfo: "CouldNotGetClusterInfo",
  FetchedKey: "FetchedKey",
  ProbeSucceeded: "ProbeSucceeded",
  ProbeFailed: "ProbeFailed",
} as const satisfies ValuesOf<typeof credentialIssuer.strategyReasons>;
export type StrategyReason = (typeof StrategyReason)[keyof typeof StrategyReason];

export const FrontendType = {
  TokenCredentialRequestAPI: "TokenCredentialRequestAPI",
  ImpersonationProxy: "ImpersonationProxy",
} as const satisfies ValuesOf<typeof credentialIssuer.frontendTypes>;
export type FrontendType = (typeof FrontendType)[keyof typeof FrontendType];

export const AuthenticatorPhase = {
  Pending: "Pending",
  Ready: "Ready",
  Error: "Error",
} as const satisfies ValuesOf<typeof authenticatorPhases>;
export type AuthenticatorPhase = (typeof AuthenticatorPhase)[keyof typeof AuthenticatorPhase];

export const CertificateAuthorityDataSourceKind = {
  Secret: "Secret",
  ConfigMap: "ConfigMap",
} as const satisfies ValuesOf<typeof certificateAuthorityDataSourceKinds>;
export type CertificateAuthorityDataSourceKind =
  (typeof CertificateAuthorityDataSourceKind)[keyof typeof CertificateAuthorityDataSourceKind];

export const ConditionStatus = {
  True: "True",
  False: "False",
  Unknown: "Unknown",
} as const satisfies ValuesOf<typeof conditionStatuses>;
export type ConditionStatus = (typeof ConditionStatus)[keyof typeof ConditionStatus];

// Condition types written by upstream's jwtcachefiller and webhookcachefiller controllers.
export const AuthenticatorConditionType = {
  Ready: "Ready",
  TLSConfigurationValid: "TLSConfigurationValid",
  AuthenticatorValid: "AuthenticatorValid",
  // JWTAuthenticator only.
  IssuerURLValid: "IssuerURLValid",
  DiscoveryURLValid: "DiscoveryURLValid",
  JWKSURLValid: "JWKSURLValid",
  JWKSFetchValid: "JWKSFetchValid",
  // Ours, not upstream's: present only while spec.claims.extra maps something.
  ClaimsExtraDeliverable: "ClaimsExtraDeliverable",
  // WebhookAuthenticator only.
  EndpointURLValid: "EndpointURLValid",
  WebhookConnectionValid: "WebhookConnectionValid",
} as const;
export type AuthenticatorConditionType =
  (typeof AuthenticatorConditionType)[keyof typeof AuthenticatorConditionType];

// Condition reasons written by the same controllers (conditionsutil, tlsconfigutil and each filler).
export const AuthenticatorConditionReason = {
  Success: "Success",
  NotReady: "NotReady",
  UnableToValidate: "UnableToValidate",
  InvalidTLSConfig: "InvalidTLSConfig",
  // JWTAuthenticator only.
  InvalidIssuerURL: "InvalidIssuerURL",
  InvalidIssuerURLScheme: "InvalidIssuerURLScheme",
  InvalidIssuerURLContainsFragment: "InvalidIssuerURLContainsFragment",
  InvalidIssuerURLContainsQueryParams: "InvalidIssuerURLContainsQueryParams",
  InvalidIssuerURLContainsWellKnownEndpoint: "InvalidIssuerURLContainsWellKnownEndpoint",
  InvalidDiscoveryProbe: "InvalidDiscoveryProbe",
  InvalidProviderJWKSURL: "InvalidProviderJWKSURL",
  InvalidProviderJWKSURLScheme: "InvalidProviderJWKSURLScheme",
  InvalidCouldNotFetchJWKS: "InvalidCouldNotFetchJWKS",
  InvalidAuthenticator: "InvalidAuthenticator",
  NoStrategyCarriesExtras: "NoStrategyCarriesExtras",
  // WebhookAuthenticator only.
  InvalidEndpointURL: "InvalidEndpointURL",
  InvalidEndpointURLScheme: "InvalidEndpointURLScheme",
  InvalidEndpointCannotDetermineProxy: "InvalidEndpointCannotDetermineProxy",
  UnableToDialServer: "UnableToDialServer",
  UnableToCreateClient: "UnableToCreateClient",
  UnableToInstantiateWebhook: "UnableToInstantiateWebhook",
} as const;
export type AuthenticatorConditionReason =
  (typeof AuthenticatorConditionReason)[keyof typeof AuthenticatorConditionReason];

// The message of every condition with reason UnableToValidate.
export const unableToValidateMessage = "unable to validate; see other conditions for details";
