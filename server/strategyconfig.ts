// The `strategies` key of the Concierge config (ours, not upstream's): which login strategies run
// and the order in which the TokenCredentialRequest handler asks their issuers. Strategies that
// need settings (the Secrets to read, the CSR API's probe) run only when their key is present, so
// a config without `strategies` behaves as upstream: the borrowed cluster signing key, then the
// impersonation proxy's signer.
import type { SecretSource } from "../controllers/secretsigner/decide.ts";

export const strategyNames = [
  "KubeClusterSigningCertificate",
  "SecretSigningCertificate",
  "CertificateSigningRequestAPI",
  "ImpersonationProxy",
] as const;
export type StrategyName = (typeof strategyNames)[number];

export interface StrategiesConfig {
  /** Priority order of the issuers; a strategy left out issues nothing (its status still shows). */
  order: StrategyName[];
  secretSigningCertificate?: { secrets: SecretSource[] };
  certificateSigningRequestAPI?: { probeIntervalSeconds: number };
}

export const defaultCSRProbeIntervalSeconds = 300;

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
  },
} as const;

export interface RawStrategies {
  order?: StrategyName[];
  secretSigningCertificate?: {
    secrets: { namespace: string; name: string; certificateKey?: string; privateKeyKey?: string }[];
  };
  certificateSigningRequestAPI?: { probeIntervalSeconds?: number };
}

/** Completes the key after the schema has checked its shape. */
export function strategiesFromRaw(raw: RawStrategies | undefined): StrategiesConfig {
  const secret = raw?.secretSigningCertificate;
  const csr = raw?.certificateSigningRequestAPI;
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
  };
}
