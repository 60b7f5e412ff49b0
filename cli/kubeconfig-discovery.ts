// The Concierge-side autodiscovery of `pinniped get kubeconfig`: which frontend to use (upstream's
// step 3), waiting for Pending strategies, and the JWTAuthenticator's OIDC CA bundle when it lives
// in a Secret or ConfigMap of the Concierge's namespace.

import { X509Certificate } from "node:crypto";
import type { RestClient } from "../kube/rest.ts";
import type { ClaimMappingsLike } from "./claim-scopes.ts";
import { UsageError } from "./flags.ts";

export type ConciergeMode = "TokenCredentialRequestAPI" | "ImpersonationProxy";

/** `--concierge-mode`, case-insensitively, as upstream's flag type. */
export function parseConciergeMode(value: string): ConciergeMode | undefined {
  if (value === "") return undefined;
  for (const mode of ["TokenCredentialRequestAPI", "ImpersonationProxy"] as const) {
    if (value.toLowerCase() === mode.toLowerCase()) return mode;
  }
  throw new UsageError(
    `invalid mode "${value}", valid modes are TokenCredentialRequestAPI and ImpersonationProxy`,
  );
}

export interface Frontend {
  type?: string;
  impersonationProxyInfo?: { endpoint?: string; certificateAuthorityData?: string };
}
export interface Strategy {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
  frontend?: Frontend;
}
export interface CredentialIssuer {
  metadata: { name: string };
  status?: { strategies?: Strategy[] };
}

const describe = (s: Strategy) => `${s.type}: ${s.status}/${s.reason}: ${s.message}`;

/** One log line per strategy, so a user can see why the Concierge is not ready. */
export function strategyLines(issuer: CredentialIssuer): string[] {
  return (issuer.status?.strategies ?? []).map(
    (s) =>
      `found CredentialIssuer strategy (type: ${s.type}, status: ${s.status}, reason: ${s.reason}, message: ${s.message})`,
  );
}

/** Upstream's walk: the first successful strategy with a known frontend that matches the mode. */
export function pickFrontend(
  issuer: CredentialIssuer,
  mode: ConciergeMode | undefined,
): Frontend & {
  type: ConciergeMode;
} {
  const strategies = issuer.status?.strategies ?? [];
  for (const s of strategies) {
    if (s.status !== "Success" || !s.frontend) continue;
    const type = s.frontend.type;
    if (type !== "TokenCredentialRequestAPI" && type !== "ImpersonationProxy") continue;
    if (mode !== undefined && mode !== type) continue;
    return { ...s.frontend, type };
  }
  const summary = strategies.map(describe).join("; ") || "no strategies";
  const hint = `(CredentialIssuer ${issuer.metadata.name} reports ${summary})`;
  if (mode === undefined) throw new Error(`could not autodiscover --concierge-mode ${hint}`);
  throw new Error(`could not find successful Concierge strategy matching --concierge-mode=${mode} ${hint}`);
}

export const hasPendingStrategy = (issuer: CredentialIssuer): boolean =>
  (issuer.status?.strategies ?? []).some((s) => s.reason === "Pending");

/** Sleeps, or rejects with the signal's reason when it fires first. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((ok, fail) => {
    if (signal.aborted) return fail(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      fail(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      ok();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Re-reads the CredentialIssuer while any strategy is Pending (the impersonation proxy's load
 * balancer may still be coming up), so that the frontend choice sees the settled status.
 */
export async function waitWhilePending(
  first: CredentialIssuer,
  reload: () => Promise<CredentialIssuer>,
  opts: { pollMs: number; signal: AbortSignal; deadline: number; log: (line: string) => void },
): Promise<CredentialIssuer> {
  let issuer = first;
  for (let attempts = 1; hasPendingStrategy(issuer); attempts++) {
    for (const line of strategyLines(issuer)) opts.log(line);
    const remaining = Math.max(0, Math.round((opts.deadline - Date.now()) / 1000));
    opts.log(
      `waiting for CredentialIssuer pending strategies to finish (attempts: ${attempts}, remaining: ${remaining}s)`,
    );
    try {
      await sleep(opts.pollMs, opts.signal);
    } catch {
      throw new Error(
        `timed out waiting for CredentialIssuer ${issuer.metadata.name} to have no Pending strategies ` +
          "(raise --timeout, or pass --concierge-skip-wait to use the strategies as they are)",
      );
    }
    issuer = await reload();
  }
  return issuer;
}

/** The certificates in a PEM bundle that parse, as Go's CertPool counts them. */
export function countCerts(pem: string): number {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.filter((b) => {
    try {
      new X509Certificate(b);
      return true;
    } catch {
      return false;
    }
  }).length;
}

/** Strict standard base64, as Go's decoder: Node's Buffer.from silently skips bad characters. */
export function decodeBase64Strict(data: string): string {
  if (data.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) {
    throw new Error("illegal base64 data");
  }
  return Buffer.from(data, "base64").toString("utf8");
}

export interface JWTAuthenticatorSpecLike extends ClaimMappingsLike {
  issuer?: string;
  audience?: string;
  audiences?: string[];
  tls?: {
    certificateAuthorityData?: string;
    certificateAuthorityDataSource?: { kind?: string; name?: string; key?: string };
  };
}

/** The Concierge's namespace: where the Service behind its login API's APIService lives. */
export async function discoverConciergeNamespace(
  client: RestClient,
  suffix: string,
  signal?: AbortSignal,
): Promise<string> {
  const group = `login.concierge.${suffix}`;
  let items: { spec?: { group?: string; service?: { namespace?: string } } }[];
  try {
    ({ items } = await client.request<{ items: typeof items }>({
      method: "GET",
      path: "/apis/apiregistration.k8s.io/v1/apiservices",
      ...(signal ? { signal } : {}),
    }));
  } catch (err) {
    throw new Error(`error listing APIServices: ${(err as Error).message}`);
  }
  const namespace = items.find((a) => a.spec?.group === group && a.spec.service?.namespace)?.spec?.service
    ?.namespace;
  if (!namespace) {
    throw new Error(`could not find APIService with non-empty spec.service.namespace for API group ${group}`);
  }
  return namespace;
}

/**
 * The JWTAuthenticator's CA bundle as PEM, or undefined when it trusts the system roots. Errors
 * start with upstream's "tried to autodiscover --oidc-ca-bundle, but".
 */
export async function discoverOIDCCABundle(
  client: RestClient,
  suffix: string,
  name: string,
  spec: JWTAuthenticatorSpecLike,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const tried = "tried to autodiscover --oidc-ca-bundle, but";
  const tls = spec.tls;
  if (tls?.certificateAuthorityData) {
    let pem: string;
    try {
      pem = decodeBase64Strict(tls.certificateAuthorityData);
    } catch (err) {
      throw new Error(
        `${tried} JWTAuthenticator ${name} has invalid spec.tls.certificateAuthorityData: ${(err as Error).message}`,
      );
    }
    log(`discovered OIDC CA bundle (roots: ${countCerts(pem)})`);
    return pem;
  }
  const source = tls?.certificateAuthorityDataSource;
  if (!source) return undefined;
  let namespace: string;
  try {
    namespace = await discoverConciergeNamespace(client, suffix, signal);
  } catch (err) {
    throw new Error(
      `${tried} encountered error discovering namespace of Concierge for JWTAuthenticator ${name}: ${(err as Error).message}`,
    );
  }
  log(`discovered Concierge namespace ${namespace} for API group suffix ${suffix}`);
  const { kind, name: objectName, key = "" } = source;
  const where = `${kind} ${namespace}/${objectName}`;
  if (kind !== "Secret" && kind !== "ConfigMap") {
    throw new Error(
      `${tried} JWTAuthenticator ${name} spec.tls.certificateAuthorityDataSource.Kind value "${kind}" is not supported by this CLI version`,
    );
  }
  const plural = kind === "Secret" ? "secrets" : "configmaps";
  let data: Record<string, string> | undefined;
  try {
    ({ data } = await client.request<{ data?: Record<string, string> }>({
      method: "GET",
      path: `/api/v1/namespaces/${namespace}/${plural}/${objectName}`,
      ...(signal ? { signal } : {}),
    }));
  } catch (err) {
    throw new Error(
      `${tried} encountered error getting ${where} specified by JWTAuthenticator ${name} spec.tls.certificateAuthorityDataSource: ${(err as Error).message}`,
    );
  }
  const raw = data?.[key];
  if (raw === undefined) {
    throw new Error(
      `${tried} key "${key}" specified by JWTAuthenticator ${name} spec.tls.certificateAuthorityDataSource.key does not exist in ${where}`,
    );
  }
  // Secret data is base64 on the wire; ConfigMap data is the PEM itself.
  const pem = kind === "Secret" ? Buffer.from(raw, "base64").toString("utf8") : raw;
  if (pem === "") {
    throw new Error(
      `${tried} key "${key}" specified by JWTAuthenticator ${name} spec.tls.certificateAuthorityDataSource.key exists but has empty value in ${where}`,
    );
  }
  const roots = countCerts(pem);
  if (roots === 0) {
    throw new Error(
      `${tried} value at key "${key}" specified by JWTAuthenticator ${name} spec.tls.certificateAuthorityDataSource.key does not contain any CA certificates in ${where}`,
    );
  }
  log(
    `discovered OIDC CA bundle from JWTAuthenticator spec.tls.certificateAuthorityDataSource (roots: ${roots})`,
  );
  return pem;
}
