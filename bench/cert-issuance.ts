// Client-certificate issuances per second (the TokenCredentialRequest hot path: fresh P-256 key,
// CA signature, PEM of both) through certs/issue.ts (hand-written DER + node:crypto) and through
// @peculiar/x509, with an RSA-2048 CA and a P-256 CA, next to this machine's crypto ceiling
// measured in the same run: a P-256 key generation plus one CA signature, nothing else. One
// issuance in flight at a time; "per CPU-s" divides by the process's CPU time, since signing
// runs on libuv's thread pool. About 20 s.
//
//   node bench/cert-issuance.ts        (Node 24; node_modules/.bin/node where the system node is older)
//
// @peculiar/x509 is not a dependency (this comparison is why); to include it:
//   npm i --no-save @peculiar/x509 reflect-metadata
import { generateKeyPairSync, type KeyObject, sign, webcrypto } from "node:crypto";
import { CertificateAuthority } from "../certs/ca.ts";
import { issueClientCertificate } from "../certs/issue.ts";
import { generateKey, keyPEM, selfSignedCertificate } from "../certs/testing.ts";
import { quickOr } from "./quick.ts";

const warmupMs = quickOr(400, 200);
const rounds = quickOr(5, 2);
const roundMs = quickOr(400, 200);

interface Tally {
  count: number;
  seconds: number;
  cpuSeconds: number;
}

async function round(op: () => Promise<unknown>, ms: number, tally: Tally): Promise<void> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const end = started + ms;
  while (performance.now() < end) {
    await op();
    tally.count++;
  }
  tally.seconds += (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  tally.cpuSeconds += (used.user + used.system) / 1e6;
}

/** Interleaves short rounds so a noisy neighbour or a GC pause hits every candidate alike. */
async function measure(ops: Array<() => Promise<unknown>>): Promise<Tally[]> {
  const tallies = ops.map(() => ({ count: 0, seconds: 0, cpuSeconds: 0 }));
  const scratch = { count: 0, seconds: 0, cpuSeconds: 0 };
  for (const op of ops) await round(op, warmupMs, scratch);
  for (let i = 0; i < rounds; i++) {
    for (const [j, op] of ops.entries()) await round(op, roundMs, tallies[j]!);
  }
  return tallies;
}

/** The part of @peculiar/x509 used here, typed locally so this file compiles without it installed. */
interface Peculiar {
  X509CertificateGenerator: {
    create(params: object): Promise<{ toString(format: "pem"): string }>;
  };
  X509Certificate: new (pem: string) => { subject: string };
  ExtendedKeyUsageExtension: new (usages: string[], critical?: boolean) => object;
  BasicConstraintsExtension: new (ca: boolean, pathLength?: number, critical?: boolean) => object;
  AuthorityKeyIdentifierExtension: new (keyId: string, critical?: boolean) => object;
}

async function loadPeculiar(): Promise<Peculiar | undefined> {
  // Variables as specifiers keep tsc from resolving modules that may be absent.
  const names = ["reflect-metadata", "@peculiar/x509"];
  try {
    await import(names[0]!);
    return (await import(names[1]!)) as Peculiar;
  } catch {
    return undefined;
  }
}

function signAsync(hash: string, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign(hash, data, key, (error, signature) => (error ? reject(error) : resolve(signature)));
  });
}

/** The least any issuer must do: a P-256 key pair for the leaf and one CA signature over a TBS-sized input. */
function ceiling(caKey: KeyObject): () => Promise<unknown> {
  const tbs = Buffer.alloc(420, 1);
  return async () => {
    generateKeyPairSync("ec", { namedCurve: "P-256" });
    return signAsync("sha256", tbs, caKey);
  };
}

const identity = {
  username: "jane@example.com",
  groups: ["developers", "platform-team", "on-call", "readers", "system:authenticated"],
};

async function peculiarIssuer(x509: Peculiar, ca: CertificateAuthority, caKey: KeyObject) {
  const algorithm =
    caKey.asymmetricKeyType === "rsa"
      ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }
      : { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const signingKey = await webcrypto.subtle.importKey(
    "pkcs8",
    caKey.export({ type: "pkcs8", format: "der" }),
    algorithm,
    false,
    ["sign"],
  );
  const issuer = new x509.X509Certificate(ca.certPEM).subject;
  const keyId = ca.subjectKeyId!.toString("hex");
  const subject = [`CN=${identity.username}`, ...identity.groups.map((g) => `O=${g}`)].join(", ");
  return async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: webcrypto.getRandomValues(Buffer.alloc(16)).toString("hex"),
      subject,
      issuer,
      notBefore: new Date(now - 300_000),
      notAfter: new Date(now + 300_000),
      signingAlgorithm: algorithm,
      publicKey: publicKey.export({ type: "spki", format: "der" }),
      signingKey,
      extensions: [
        new x509.ExtendedKeyUsageExtension(["1.3.6.1.5.5.7.3.2"]),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.AuthorityKeyIdentifierExtension(keyId),
      ],
    });
    return [cert.toString("pem"), privateKey.export({ type: "pkcs8", format: "pem" })];
  };
}

const x509 = await loadPeculiar();
const fmt = (n: number) => n.toFixed(0).padStart(7);
console.log(
  `node ${process.version}; ${rounds} × ${roundMs} ms per line, interleaved; issuances/s (per CPU-s)`,
);
if (!x509) console.log("@peculiar/x509 not installed: npm i --no-save @peculiar/x509 reflect-metadata");

for (const type of ["rsa-2048", "ec-p256"] as const) {
  const key = generateKey(type);
  const ca = CertificateAuthority.load(
    await selfSignedCertificate(key),
    keyPEM(key, type === "rsa-2048" ? "pkcs1" : "sec1"),
  );
  const names = ["crypto ceiling (keygen + 1 sign)", "certs/issue.ts (DER writer)"];
  const ops = [ceiling(key), () => issueClientCertificate(ca, identity)];
  if (x509) {
    names.push("@peculiar/x509 2.x");
    ops.push(await peculiarIssuer(x509, ca, key));
  }
  const tallies = await measure(ops);
  const rates = tallies.map((t) => t.count / t.seconds);
  console.log(`\n${type} CA → P-256 leaf`);
  for (const [i, tally] of tallies.entries()) {
    const ratio = i === 0 ? "" : `  ${((100 * rates[i]!) / rates[0]!).toFixed(0)}% of ceiling`;
    const perCPU = tally.count / tally.cpuSeconds;
    console.log(`  ${names[i]!.padEnd(34)} ${fmt(rates[i]!)}/s (${fmt(perCPU)}/CPU-s)${ratio}`);
  }
}
