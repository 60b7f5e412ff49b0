// The `strategies` key of the Concierge config (ours, not upstream's): which login strategies run
// and the order in which the TokenCredentialRequest handler asks their issuers. Strategies that
// need settings (the Secrets to read, the CSR API's probe, the JWT issuer's URL) run only when their key is present, so
// a config without `strategies` behaves as upstream: the borrowed cluster signing key, then the
// impersonation proxy's signer.
import type { SecretSource } from "../controllers/secretsigner/decide.ts";

export const strategyNames = [
  "KubeClusterSigningCertificate",
  "SecretSigningCertificate",
  "CertificateSigningRequestAPI",
  "JWTCredential",
  "ImpersonationProxy",
] as const;
export type StrategyName = (typeof strategyNames)[number];

export interface StrategiesConfig {
  /** Priority order of the issuers; a strategy left out issues nothing (its status still shows). */
  order: StrategyName[];
  secretSigningCertificate?: { secrets: SecretSource[] };
  certificateSigningRequestAPI?: { probeIntervalSeconds: number };
  jwtCredential?: JWTCredentialConfig;
}

export interface JWTCredentialConfig {
  /** The `iss` of every token, and where discovery and the JWKS are served (its path, on the aggregated API's port). */
  issuer: string;
  /** The `aud` of every token: what kube-apiserver's JWT authenticator for this issuer expects. */
  audience: string;
  /** How long a token lives; never longer than `tokenCredentialRequest.clientCertificateTTLSeconds`. */
  ttlSeconds?: number;
  /** How often a self-minted token is checked by a TokenReview. */
  probeIntervalSeconds: number;
}

export const defaultCSRProbeIntervalSeconds = 300;
export const defaultJWTProbeIntervalSeconds = 60;

const name = { type: "string", minLength: 1 } as const;

/** The JSON schema of the key, for the config file's schema. */
export const strategiesSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    order: { type: "array", items: { enum: strategyNames }, uniqueItems: true },
    secretSigningCertificate: {
      type: "object",
      additionalProperties: false,
      required: ["secrets"],
      properties: {
        secrets: {
          type: "array",
          minItems: 1,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["namespace", "name"],
            properties: { namespace: name, name, certificateKey: name, privateKeyKey: name },
          },
        },
      },
    },
    certificateSigningRequestAPI: {
      type: "object",
      additionalProperties: false,
      properties: { probeIntervalSeconds: { type: "integer", minimum: 10 } },
    },
    jwtCredential: {
      type: "object",
      additionalProperties: false,
      required: ["issuer", "audience"],
      properties: {
        // kube-apiserver fetches discovery from it, and accepts only https issuers without query or fragment.
        issuer: { type: "string", pattern: "^https://[^?#]+$" },
        audience: name,
        ttlSeconds: { type: "integer", minimum: 60, maximum: 86_400 },
        probeIntervalSeconds: { type: "integer", minimum: 10 },
      },
    },
  },
} as const;

export interface RawStrategies {
  order?: StrategyName[];
  secretSigningCertificate?: {
    secrets: { namespace: string; name: string; certificateKey?: string; privateKeyKey?: string }[];
  };
  certificateSigningRequestAPI?: { probeIntervalSeconds?: number };
  jwtCredential?: { issuer: string; audience: string; ttlSeconds?: number; probeIntervalSeconds?: number };
}

/** Completes the key after the schema has checked its shape. */
export function strategiesFromRaw(raw: RawStrategies | undefined): StrategiesConfig {
  const secret = raw?.secretSigningCertificate;
  const csr = raw?.certificateSigningRequestAPI;
  const jwt = raw?.jwtCredential;
  return {
    order: [...(raw?.order ?? strategyNames)],
    ...(secret
      ? {
          secretSigningCertificate: {
            secrets: secret.secrets.map((s) => ({
              namespace: s.namespace,
              name: s.name,
              certificateKey: s.certificateKey ?? "tls.crt",
              privateKeyKey: s.privateKeyKey ?? "tls.key",
            })),
          },
        }
      : {}),
    ...(csr
      ? {
          certificateSigningRequestAPI: {
            probeIntervalSeconds: csr.probeIntervalSeconds ?? defaultCSRProbeIntervalSeconds,
          },
        }
      : {}),
    ...(jwt
      ? {
          jwtCredential: {
            // Exactly as written: kube-apiserver compares `iss` with its configured URL byte for byte.
            issuer: jwt.issuer,
            audience: jwt.audience,
            ...(jwt.ttlSeconds !== undefined ? { ttlSeconds: jwt.ttlSeconds } : {}),
            probeIntervalSeconds: jwt.probeIntervalSeconds ?? defaultJWTProbeIntervalSeconds,
          },
        }
      : {}),
  };
}
