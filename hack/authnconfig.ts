// kube-apiserver's structured authentication configuration (`--authentication-config`, beta from
// Kubernetes 1.30, `apiserver.config.k8s.io/v1` from 1.34): the file a control plane here starts
// with when a test asks for JWT authenticators, such as one trusting the Concierge's issuer.
import { execFile } from "node:child_process";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** One `jwt[]` entry; kube-apiserver's JWTAuthenticator. */
export interface JWTAuthenticatorEntry {
  issuer: { url: string; audiences: string[]; certificateAuthority?: string; discoveryURL?: string };
  claimMappings: Record<string, unknown>;
  [field: string]: unknown;
}

/** The configuration without apiVersion and kind, which follow the binaries' version. */
export interface AuthenticationConfigBody {
  jwt: JWTAuthenticatorEntry[];
}

/** The Kubernetes minor of a kube-apiserver binary, from its `--version` ("Kubernetes v1.34.4"). */
export async function apiServerMinor(binDir: string): Promise<number> {
  const { stdout } = await execFileAsync(join(binDir, "kube-apiserver"), ["--version"]);
  const match = /v1\.(\d+)\./.exec(stdout);
  if (!match) throw new Error(`cannot read the version from kube-apiserver --version: ${stdout.trim()}`);
  return Number(match[1]);
}

/** v1 from 1.34 (v1beta1 is still served there, but v1 is what 1.34 documents), v1beta1 on 1.30–1.33. */
export function authenticationConfigAPIVersion(minor: number): string {
  if (minor < 30)
    throw new Error(`structured authentication configuration needs Kubernetes 1.30 or newer, not 1.${minor}`);
  return minor >= 34 ? "apiserver.config.k8s.io/v1" : "apiserver.config.k8s.io/v1beta1";
}

/**
 * A JWT authenticator trusting `issuerURL` for `audience`, with the Concierge's claims: the
 * username from `username`, groups from `groups`, and a uid when the token has one.
 */
export function conciergeJWTAuthenticator(options: {
  issuerURL: string;
  audience: string;
  /** PEM of the CA that signed the issuer's serving certificate. */
  certificateAuthority: string;
}): JWTAuthenticatorEntry {
  return {
    issuer: {
      url: options.issuerURL,
      audiences: [options.audience],
      certificateAuthority: options.certificateAuthority,
    },
    claimMappings: {
      username: { claim: "username", prefix: "" },
      groups: { claim: "groups", prefix: "" },
      uid: { expression: "has(claims.uid) ? claims.uid : ''" },
    },
  };
}

/** Writes the file whole (a rename), so kube-apiserver's reload never reads half of it. */
export async function writeAuthenticationConfig(
  path: string,
  minor: number,
  body: AuthenticationConfigBody,
): Promise<void> {
  const document = {
    apiVersion: authenticationConfigAPIVersion(minor),
    kind: "AuthenticationConfiguration",
    ...body,
  };
  await writeFile(`${path}.tmp`, JSON.stringify(document, null, 2), { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}
