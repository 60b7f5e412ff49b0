// Golden tests: what certs/issue.ts writes must read, field by field, as upstream's certificates
// do when openssl prints them, and must verify with openssl, with Node's X509Certificate and in
// a real TLS handshake against a server that trusts the CA.
import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, createServer } from "node:tls";
import { CertificateAuthority } from "./ca.ts";
import type { CertEnv } from "./env.ts";
import { clientCertificateTTLMs, issueClientCertificate, issueServingCertificate } from "./issue.ts";
import { generateKey, keyPEM, openssl, opensslCA, selfSignedCertificate } from "./testing.ts";
import { ipBytes } from "./x509.ts";

// Tomorrow 03:04:05.678 UTC: fixed digits for the goldens, yet inside the validity of the
// openssl-made CAs, which openssl dates from the real clock.
const day = 86_400_000;
const now = (Math.floor(Date.now() / day) + 1) * day + Date.UTC(1970, 0, 1, 3, 4, 5, 678);
const at = String(Math.floor(now / 1000));
/** openssl's way of printing a time, e.g. "Jan  2 02:59:05 2026 GMT", for whole seconds after `now`. */
function printed(secondsAfterNow: number): string {
  const d = new Date(Math.floor(now / 1000) * 1000 + secondsAfterNow * 1000);
  const month = d.toUTCString().slice(8, 11);
  return `${month} ${String(d.getUTCDate()).padStart(2)} ${d.toISOString().slice(11, 19)} ${d.getUTCFullYear()} GMT`;
}
// High bit set, so DER needs a leading zero to keep the serial positive.
const serial = Buffer.from("ff00112233445566778899aabbccddee", "hex");
const env: CertEnv = { now: () => now, randomBytes: (n) => Buffer.from(serial.subarray(0, n)) };
const nameopt = "utf8,sep_comma_plus_space,space_eq,esc_2253";

interface TestCA {
  name: string;
  ca: CertificateAuthority;
  signature: string;
}

let dir: string;
let cas: TestCA[];
let count = 0;

/** Writes PEM to a fresh file in the temp dir; returns its name. */
function file(pem: string): string {
  const name = `f${count++}.pem`;
  writeFileSync(join(dir, name), pem);
  return name;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "certs-issue-"));
  const rsa = opensslCA(dir, "rsa", "/O=Acme, Inc./CN=kubernetes");
  const ec = opensslCA(dir, "ec", "/CN=k3s-client-ca@1700000000");
  const p384 = generateKey("ec-p384");
  cas = [
    {
      name: "openssl RSA-2048 CA, PKCS#1 key",
      ca: CertificateAuthority.load(rsa.certPEM, rsa.keyPEM),
      signature: "sha256WithRSAEncryption",
    },
    {
      name: "openssl P-256 CA, SEC1 key",
      ca: CertificateAuthority.load(ec.certPEM, ec.keyPEM),
      signature: "ecdsa-with-SHA256",
    },
    {
      name: "created P-256 CA",
      ca: await CertificateAuthority.create("Pinniped Aggregation CA", 86_400_000, env),
      signature: "ecdsa-with-SHA256",
    },
    {
      name: "P-384 CA, PKCS#8 key",
      ca: CertificateAuthority.load(await selfSignedCertificate(p384), keyPEM(p384, "pkcs8")),
      signature: "ecdsa-with-SHA384",
    },
  ];
});
after(() => rmSync(dir, { recursive: true, force: true }));

const identity = {
  username: "jane@example.com",
  groups: ["system:authenticated", "devs", "a,b", 'q"u', "ünï", ""],
};

/** openssl's colon-separated upper-case hex, as it prints key identifiers. */
const colonHex = (b: Buffer) => b.toString("hex").toUpperCase().match(/../g)!.join(":");

describe("issueClientCertificate", () => {
  it("writes upstream's client certificate fields, for RSA and EC CAs (openssl x509 -text)", async () => {
    for (const { name, ca, signature } of cas) {
      const issued = await issueClientCertificate(ca, identity, undefined, env);
      const leaf = file(issued.certPEM);
      const caFile = file(ca.certPEM);
      const text = openssl(dir, "x509", "-in", leaf, "-noout", "-text", "-nameopt", nameopt);
      const expected = [
        "Version: 3 (0x2)",
        "Serial Number:\n            ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee\n",
        `Signature Algorithm: ${signature}`,
        `Not Before: ${printed(-300)}`,
        `Not After : ${printed(300)}`,
        // Go writes all O values as one multi-valued RDN in DER set order (shorter encodings and
        // UTF8String before PrintableString), then the CN.
        'Subject: O =  + O = q\\"u + O = a\\,b + O = devs + O = ünï + O = system:authenticated, CN = jane@example.com\n',
        "Public Key Algorithm: id-ecPublicKey",
        "NIST CURVE: P-256",
        "X509v3 Extended Key Usage: \n                TLS Web Client Authentication\n",
        "X509v3 Basic Constraints: critical\n                CA:FALSE\n",
        `X509v3 Authority Key Identifier: \n                ${colonHex(ca.subjectKeyId!)}\n`,
      ];
      for (const line of expected)
        assert.ok(text.includes(line), `${name}: missing ${JSON.stringify(line)} in\n${text}`);
      for (const absent of [
        "X509v3 Key Usage",
        "Subject Alternative Name",
        "Subject Key Identifier",
        "Negative",
      ]) {
        assert.ok(!text.includes(absent), `${name}: unexpected ${absent}`);
      }
      // The issuer is the CA's subject exactly, however openssl prints it.
      const issuer = openssl(dir, "x509", "-in", leaf, "-noout", "-issuer", "-nameopt", nameopt);
      const subject = openssl(dir, "x509", "-in", caFile, "-noout", "-subject", "-nameopt", nameopt);
      assert.equal(issuer.replace("issuer=", ""), subject.replace("subject=", ""), name);
      assert.equal(issued.notBefore.toISOString().slice(11), "02:59:05.000Z");
      assert.equal(issued.notAfter.toISOString().slice(11), "03:09:05.000Z");
      assert.equal(printed(300).slice(7, 15), "03:09:05");
    }
  });

  it("chooses PrintableString or UTF8String per value as Go does (openssl asn1parse)", async () => {
    const issued = await issueClientCertificate(cas[0]!.ca, identity, undefined, env);
    const parsed = openssl(dir, "asn1parse", "-in", file(issued.certPEM));
    assert.match(parsed, /PRINTABLESTRING\s+:devs$/m);
    assert.match(parsed, /PRINTABLESTRING\s+:system:authenticated$/m);
    assert.match(parsed, /PRINTABLESTRING\s+:a,b$/m);
    assert.match(parsed, /PRINTABLESTRING\s+:$/m);
    assert.match(parsed, /UTF8STRING\s+:q"u$/m);
    assert.match(parsed, /UTF8STRING\s+:jane@example.com$/m);
    assert.match(parsed, /UTF8STRING\s+:\S*n\S*$/m); // ünï, printed by asn1parse as bytes
    assert.match(parsed, /INTEGER\s+:FF00112233445566778899AABBCCDDEE$/m);
  });

  it("verifies with openssl (sslclient purpose) and with Node's X509Certificate", async () => {
    for (const { name, ca } of cas) {
      const issued = await issueClientCertificate(ca, identity, undefined, env);
      const leaf = file(issued.certPEM);
      const out = openssl(
        dir,
        "verify",
        "-attime",
        at,
        "-purpose",
        "sslclient",
        "-CAfile",
        file(ca.certPEM),
        leaf,
      );
      assert.equal(out, `${leaf}: OK\n`, name);
      const cert = new X509Certificate(issued.certPEM);
      assert.ok(cert.checkIssued(ca.certificate), name);
      assert.ok(cert.verify(ca.certificate.publicKey), name);
      assert.equal(cert.ca, false);
      assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.2"]);
      assert.equal(cert.serialNumber, "FF00112233445566778899AABBCCDDEE");
      assert.equal(cert.subjectAltName, undefined);
      assert.equal(cert.issuer, ca.certificate.subject);
      assert.match(
        issued.certPEM,
        /^-----BEGIN CERTIFICATE-----\n(?:.{64}\n)*.{1,64}\n-----END CERTIFICATE-----\n$/,
      );
    }
  });

  it("returns a fresh PKCS#8 P-256 key that matches the certificate (openssl pkey)", async () => {
    const first = await issueClientCertificate(cas[1]!.ca, identity, undefined, env);
    const second = await issueClientCertificate(cas[1]!.ca, identity, undefined, env);
    assert.notEqual(first.keyPEM, second.keyPEM);
    assert.match(first.keyPEM, /^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(first.keyPEM);
    assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.ok(new X509Certificate(first.certPEM).checkPrivateKey(key));
    const keyFile = file(first.keyPEM);
    assert.match(openssl(dir, "pkey", "-in", keyFile, "-check", "-noout"), /Key is valid/);
    assert.equal(
      openssl(dir, "pkey", "-in", keyFile, "-pubout"),
      openssl(dir, "x509", "-in", file(first.certPEM), "-noout", "-pubkey"),
    );
  });

  it("escapes odd usernames, writes no O for no groups, and defaults to a 5 minute TTL", async () => {
    const issued = await issueClientCertificate(
      cas[2]!.ca,
      { username: 'Zoë, "the dev"+1', groups: [] },
      undefined,
      env,
    );
    const subject = openssl(
      dir,
      "x509",
      "-in",
      file(issued.certPEM),
      "-noout",
      "-subject",
      "-nameopt",
      nameopt,
    );
    assert.equal(subject, 'subject=CN = Zoë\\, \\"the dev\\"\\+1\n');
    assert.equal(issued.notAfter.getTime() - Math.floor(now / 1000) * 1000, clientCertificateTTLMs);
    const cert = new X509Certificate(issued.certPEM);
    assert.equal(cert.subject, 'CN=Zoë\\, \\"the dev\\"\\+1');
  });

  it("keeps duplicate groups and honours a TTL and OU values (recent upstream's extras)", async () => {
    const issued = await issueClientCertificate(
      cas[2]!.ca,
      { username: "u", groups: ["g", "g"], organizationalUnits: ["example.org/k=v"] },
      60 * 60_000,
      env,
    );
    const text = openssl(dir, "x509", "-in", file(issued.certPEM), "-noout", "-text", "-nameopt", nameopt);
    assert.ok(text.includes("Subject: O = g + O = g, OU = example.org/k=v, CN = u\n"), text);
    assert.ok(text.includes(`Not After : ${printed(3600)}`), text);
  });

  it("writes no AuthorityKeyId when the CA has no SubjectKeyId, or the leaf looks self-issued (as Go)", async () => {
    const key = generateKey("ec-p256");
    const bare = CertificateAuthority.load(
      await selfSignedCertificate(key, { withSubjectKeyId: false }),
      keyPEM(key, "sec1"),
    );
    assert.equal(bare.subjectKeyId, undefined);
    const noAKI = await issueClientCertificate(bare, identity, undefined, env);
    assert.ok(!openssl(dir, "x509", "-in", file(noAKI.certPEM), "-noout", "-text").includes("Authority Key"));
    const ca = await CertificateAuthority.create("jane", 86_400_000, env);
    const selfIssued = await issueClientCertificate(ca, { username: "jane", groups: [] }, undefined, env);
    assert.ok(
      !openssl(dir, "x509", "-in", file(selfIssued.certPEM), "-noout", "-text").includes("Authority Key"),
    );
  });
});

describe("issueServingCertificate", () => {
  it("writes an empty subject, critical SANs and serverAuth (openssl x509 -text, verify, Node host checks)", async () => {
    for (const { name, ca } of cas) {
      const issued = await issueServingCertificate(
        ca,
        {
          dnsNames: [
            "pinniped-concierge-api.pinniped.svc",
            "pinniped-concierge-api.pinniped.svc.cluster.local",
          ],
          ips: ["127.0.0.1", "::1"],
        },
        3_600_000,
        env,
      );
      const leaf = file(issued.certPEM);
      const text = openssl(dir, "x509", "-in", leaf, "-noout", "-text");
      const expected = [
        "Subject: \n",
        "X509v3 Extended Key Usage: \n                TLS Web Server Authentication\n",
        "X509v3 Basic Constraints: critical\n                CA:FALSE\n",
        "X509v3 Subject Alternative Name: critical\n                DNS:pinniped-concierge-api.pinniped.svc, " +
          "DNS:pinniped-concierge-api.pinniped.svc.cluster.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1\n",
        `Not After : ${printed(3600)}`,
      ];
      for (const line of expected)
        assert.ok(text.includes(line), `${name}: missing ${JSON.stringify(line)} in\n${text}`);
      const out = openssl(
        dir,
        "verify",
        "-attime",
        at,
        "-purpose",
        "sslserver",
        "-CAfile",
        file(ca.certPEM),
        leaf,
      );
      assert.equal(out, `${leaf}: OK\n`, name);
      const cert = new X509Certificate(issued.certPEM);
      assert.equal(
        cert.checkHost("pinniped-concierge-api.pinniped.svc"),
        "pinniped-concierge-api.pinniped.svc",
      );
      assert.equal(cert.checkIP("127.0.0.1"), "127.0.0.1");
      assert.equal(cert.checkIP("::1"), "::1");
      assert.equal(cert.checkHost("other.example.com"), undefined);
    }
  });

  it("encodes IP addresses as Go does and refuses non-ASCII DNS names", async () => {
    assert.equal(ipBytes("10.1.2.3").toString("hex"), "0a010203");
    assert.equal(ipBytes("::ffff:10.1.2.3").toString("hex"), "0a010203");
    assert.equal(ipBytes("2001:db8::1").toString("hex"), "20010db8000000000000000000000001");
    assert.equal(ipBytes("::").toString("hex"), "0".repeat(32));
    assert.equal(ipBytes("fe80::1:2%eth0").toString("hex"), "fe800000000000000000000000010002");
    assert.equal(ipBytes("1:2:3:4:5:6:7:8").toString("hex"), "00010002000300040005000600070008");
    assert.throws(() => ipBytes("example.com"), /not an IP address/);
    await assert.rejects(
      issueServingCertificate(cas[0]!.ca, { dnsNames: ["bücher.example"] }, 1000, env),
      /not ASCII/,
    );
  });
});

describe("a certificate we issue, in a real mutual-TLS handshake", () => {
  /** Connects with `client` to a server that trusts `trusted`; resolves to what the server saw, or the client's error. */
  async function handshake(
    trusted: CertificateAuthority,
    client: { certPEM: string; keyPEM: string },
  ): Promise<{ subject?: string; error?: string }> {
    const serving = await issueServingCertificate(
      trusted,
      { dnsNames: ["localhost"], ips: ["127.0.0.1"] },
      3_600_000,
    );
    let seen: string | undefined;
    const server = createServer(
      {
        cert: serving.certPEM,
        key: serving.keyPEM,
        ca: trusted.certPEM,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket) => {
        const peer = socket.getPeerCertificate();
        seen = `${peer.subject.CN} ${JSON.stringify(peer.subject.O)}`;
        socket.end("hello");
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      return await new Promise((resolve) => {
        const socket = connect({
          host: "127.0.0.1",
          port,
          ca: trusted.certPEM,
          cert: client.certPEM,
          key: client.keyPEM,
        });
        let data = "";
        socket.on("data", (chunk: Buffer) => {
          data += chunk.toString();
        });
        socket.on("error", (error) => resolve({ error: error.message }));
        socket.on("end", () => resolve(data === "hello" && seen ? { subject: seen } : { error: "closed" }));
      });
    } finally {
      server.close();
    }
  }

  it("authenticates to a node:tls server that requires client certificates from the CA", async () => {
    // On the real clock this time: the handshake checks validity against it.
    const created = { name: "created P-256 CA", ca: await CertificateAuthority.create("test", 3_600_000) };
    for (const { name, ca } of [cas[0]!, cas[1]!, created]) {
      const issued = await issueClientCertificate(ca, { username: "jane", groups: ["devs", "ops"] });
      assert.deepEqual(await handshake(ca, issued), { subject: 'jane ["ops","devs"]' }, name);
    }
  });

  it("is refused by a server that trusts a different CA", async () => {
    const issued = await issueClientCertificate(cas[0]!.ca, { username: "jane", groups: [] });
    const result = await handshake(cas[1]!.ca, issued);
    assert.equal(result.subject, undefined);
    assert.ok(result.error);
  });
});
