// A throwaway PKI for the local control plane, made with the openssl CLI so the
// test harness never depends on the certificate code it is there to test.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type KeyType = "rsa" | "ec";

export interface CertSpec {
  /** File stem: writes `<name>.crt` and `<name>.key`. */
  name: string;
  cn: string;
  organizations?: string[];
  dnsNames?: string[];
  ips?: string[];
  usage: "server" | "client" | "server+client";
  keyType?: KeyType;
  days?: number;
}

export interface CertFiles {
  cert: string;
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`);
  }
}

async function newKey(dir: string, name: string, keyType: KeyType): Promise<string> {
  const key = join(dir, `${name}.key`);
  const algorithm =
    keyType === "rsa"
      ? ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
      : ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
  await openssl(["genpkey", ...algorithm, "-out", key], dir);
  return key;
}

function subject(cn: string, organizations: string[] = []): string {
  const quote = (s: string) => s.replace(/[/\\=+]/g, (c) => `\\${c}`);
  return `${organizations.map((o) => `/O=${quote(o)}`).join("")}/CN=${quote(cn)}`;
}

export async function newCA(
  dir: string,
  name: string,
  cn: string,
  keyType: KeyType = "rsa",
): Promise<CertFiles> {
  const key = await newKey(dir, name, keyType);
  const cert = join(dir, `${name}.crt`);
  await openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      key,
      "-subj",
      subject(cn),
      "-days",
      "3650",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
      "-out",
      cert,
    ],
    dir,
  );
  return { cert, key };
}

export async function newCert(dir: string, ca: CertFiles, spec: CertSpec): Promise<CertFiles> {
  const key = await newKey(dir, spec.name, spec.keyType ?? "ec");
  const csr = join(dir, `${spec.name}.csr`);
  const cert = join(dir, `${spec.name}.crt`);
  const ext = join(dir, `${spec.name}.ext`);
  const extKeyUsage = {
    server: "serverAuth",
    client: "clientAuth",
    "server+client": "serverAuth,clientAuth",
  }[spec.usage];
  const sans = [...(spec.dnsNames ?? []).map((d) => `DNS:${d}`), ...(spec.ips ?? []).map((i) => `IP:${i}`)];
  const lines = [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${extKeyUsage}`,
  ];
  if (sans.length > 0) lines.push(`subjectAltName=${sans.join(",")}`);
  await writeFile(ext, `${lines.join("\n")}\n`);
  await openssl(
    ["req", "-new", "-key", key, "-subj", subject(spec.cn, spec.organizations), "-out", csr],
    dir,
  );
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.cert,
      "-CAkey",
      ca.key,
      // A random serial per certificate: -CAcreateserial shares one serial file, which
      // races when certificates are made concurrently.
      "-set_serial",
      `0x${randomBytes(16).toString("hex")}`,
      "-days",
      String(spec.days ?? 365),
      "-extfile",
      ext,
      "-out",
      cert,
    ],
    dir,
  );
  return { cert, key };
}

/** The service-account token signing key pair (RSA, as kubeadm makes it). */
export async function newServiceAccountKeyPair(
  dir: string,
): Promise<{ publicKey: string; privateKey: string }> {
  const privateKey = await newKey(dir, "sa", "rsa");
  const publicKey = join(dir, "sa.pub");
  await openssl(["pkey", "-in", privateKey, "-pubout", "-out", publicKey], dir);
  return { publicKey, privateKey };
}
