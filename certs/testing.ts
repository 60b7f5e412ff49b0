// Test and benchmark CAs of the key types real clusters use (kubeadm: RSA PKCS#1; k3s: EC SEC1),
// which CertificateAuthority.create (always P-256, like upstream) cannot make.
import { execFileSync } from "node:child_process";
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { keyIdOf } from "./ca.ts";
import { defaultCertEnv, randomSerial } from "./env.ts";
import {
  basicConstraints,
  createCertificate,
  encodeName,
  keyUsageDigitalSignatureCertSign,
  signatureSchemeFor,
  subjectKeyId,
  toPEM,
} from "./x509.ts";

export type TestKeyType = "rsa-2048" | "ec-p256" | "ec-p384" | "ec-p521" | "ed25519";

export function generateKey(type: TestKeyType): KeyObject {
  switch (type) {
    case "rsa-2048":
      return generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    case "ec-p256":
      return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    case "ec-p384":
      return generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
    case "ec-p521":
      return generateKeyPairSync("ec", { namedCurve: "P-521" }).privateKey;
    case "ed25519":
      return generateKeyPairSync("ed25519").privateKey;
  }
}

export interface TestCAOptions {
  commonName?: string;
  /** Whether basicConstraints says CA:TRUE; false makes a certificate Load must refuse. */
  isCA?: boolean;
  /** Whether to write a SubjectKeyId (leaves then carry an AuthorityKeyId). */
  withSubjectKeyId?: boolean;
}

/** A self-signed certificate for `key`, valid for a day, as PEM. */
export async function selfSignedCertificate(key: KeyObject, options: TestCAOptions = {}): Promise<string> {
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  const subject = encodeName(options.commonName ?? "test CA", []);
  const now = Date.now();
  const extensions = [keyUsageDigitalSignatureCertSign(), basicConstraints(options.isCA ?? true)];
  if (options.withSubjectKeyId ?? true) extensions.push(subjectKeyId(keyIdOf(spki)));
  const der = await createCertificate(
    {
      serial: randomSerial(defaultCertEnv),
      issuer: subject,
      subject,
      notBeforeMs: now - 60_000,
      notAfterMs: now + 86_400_000,
      subjectPublicKeyInfo: spki,
      extensions,
    },
    key,
    signatureSchemeFor(key),
  );
  return toPEM("CERTIFICATE", der);
}

/** The key as PEM in the given encoding: "pkcs1" (RSA PRIVATE KEY), "sec1" (EC PRIVATE KEY) or "pkcs8". */
export function keyPEM(key: KeyObject, type: "pkcs1" | "sec1" | "pkcs8"): string {
  return key.export({ type, format: "pem" }).toString();
}

/** Runs the openssl CLI in `dir` (the golden tests hold our DER to it); throws with its stderr. */
export function openssl(dir: string, ...args: string[]): string {
  return execFileSync("openssl", args, { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/**
 * A CA made by openssl itself, as clusters have them: kubeadm's RSA key in PKCS#1, k3s's P-256
 * key in SEC1. `subject` is in openssl's /A=v/B=w form.
 */
export function opensslCA(
  dir: string,
  kind: "rsa" | "ec",
  subject: string,
): { certPEM: string; keyPEM: string } {
  const key = join(dir, `${kind}-ca.key`);
  const cert = join(dir, `${kind}-ca.pem`);
  if (kind === "rsa") openssl(dir, "genrsa", "-traditional", "-out", key, "2048");
  else openssl(dir, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key);
  // Our own config, so the extensions do not depend on the distribution's openssl.cnf.
  const config = join(dir, "ca.cnf");
  writeFileSync(
    config,
    "[req]\ndistinguished_name = dn\nx509_extensions = ca\n[dn]\n[ca]\n" +
      "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,digitalSignature\n" +
      "subjectKeyIdentifier = hash\n",
  );
  openssl(
    dir,
    "req",
    "-x509",
    "-new",
    "-config",
    config,
    "-key",
    key,
    "-subj",
    subject,
    "-days",
    "2",
    "-out",
    cert,
  );
  return { certPEM: readFileSync(cert, "utf8"), keyPEM: readFileSync(key, "utf8") };
}
