import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import tls from "node:tls";
import {
  type CAPolicy,
  loadCAState,
  planCA,
  planServing,
  previousUntilAnnotation,
  rotateAnnotation,
  type Secret,
  servingCAPolicy,
  servingPolicy,
  signerCAPolicy,
  trustBundle,
} from "./rotation.ts";

const day = 24 * 3600_000;
const t0 = Date.parse("2030-01-01T00:00:00Z");

function secretFrom(
  plan: { data: Record<string, string>; annotations: Record<string, string> },
  extra = {},
): Secret {
  return {
    metadata: { name: "ca", annotations: { ...plan.annotations, ...extra } },
    type: "Opaque",
    data: plan.data,
  };
}

describe("planCA", () => {
  const policy: CAPolicy = servingCAPolicy({ lifetimeMs: 100 * day, overlapMs: 10 * day });

  it("creates a CA when there is no Secret, and keeps it afterwards", async () => {
    const created = await planCA(undefined, t0, policy);
    assert.equal(created.event, "created");
    assert.deepEqual(Object.keys(created.data).sort(), ["ca.crt", "ca.key"]);
    const again = await planCA(secretFrom(created), t0 + day, policy);
    assert.equal(again.event, "none");
    assert.equal(again.state.current.certPEM, created.state.current.certPEM);
    assert.equal(again.nextChangeMs, Date.parse(created.state.current.certificate.validTo) - 20 * day);
  });

  it("rotates in the renewal window, keeps the old CA for the overlap, then drops it", async () => {
    const created = await planCA(undefined, t0, policy);
    const before = await planCA(secretFrom(created), t0 + 79 * day, policy);
    assert.equal(before.event, "none");
    const rotated = await planCA(secretFrom(created), t0 + 81 * day, policy);
    assert.equal(rotated.event, "rotated");
    assert.notEqual(rotated.state.current.certPEM, created.state.current.certPEM);
    assert.equal(rotated.state.previous?.certPEM, created.state.current.certPEM);
    assert.ok(rotated.data["previous-ca.crt"] && rotated.data["ca-cross-signed.crt"]);
    assert.equal(rotated.annotations[previousUntilAnnotation], "2030-04-02T00:00:00Z");
    assert.equal(trustBundle(rotated.state), rotated.state.current.certPEM + created.state.current.certPEM);

    const during = await planCA(secretFrom(rotated), t0 + 90 * day, policy);
    assert.equal(during.event, "none");
    assert.ok(during.state.previous && during.state.crossSignedPEM);
    const after = await planCA(secretFrom(rotated), t0 + 92 * day, policy);
    assert.equal(after.event, "dropped-previous");
    assert.equal(after.state.previous, undefined);
    assert.deepEqual(Object.keys(after.data).sort(), ["ca.crt", "ca.key"]);
    assert.equal(after.state.current.certPEM, rotated.state.current.certPEM);
  });

  it("never keeps the old CA past its own expiry", async () => {
    const created = await planCA(undefined, t0, { ...policy, overlapMs: 365 * day });
    const rotated = await planCA(secretFrom(created), t0 + 81 * day, { ...policy, overlapMs: 365 * day });
    assert.equal(rotated.state.previous?.untilMs, Date.parse(created.state.current.certificate.validTo));
  });

  it("rotates once per new value of the rotate annotation", async () => {
    const created = await planCA(undefined, t0, policy);
    const asked = await planCA(secretFrom(created, { [rotateAnnotation]: "1" }), t0 + day, policy);
    assert.equal(asked.event, "rotated");
    assert.match(asked.detail, /rotate set to 1/);
    const same = await planCA(secretFrom(asked, { [rotateAnnotation]: "1" }), t0 + 2 * day, policy);
    assert.equal(same.event, "none");
    const again = await planCA(secretFrom(asked, { [rotateAnnotation]: "2" }), t0 + 3 * day, policy);
    assert.equal(again.event, "rotated");
    assert.equal(again.state.previous?.certPEM, asked.state.current.certPEM);
  });

  it("replaces a Secret whose CA does not load", async () => {
    const plan = await planCA({ metadata: { name: "ca" }, data: { "ca.crt": "bm9wZQ==" } }, t0, policy);
    assert.equal(plan.event, "created");
  });

  it("keeps the old signer CA trusted for the client certificate TTL, with upstream's keys", async () => {
    const signer = signerCAPolicy({ overlapMs: day });
    const created = await planCA(undefined, t0, signer);
    assert.deepEqual(Object.keys(created.data).sort(), ["caCertificate", "caCertificatePrivateKey"]);
    assert.match(created.state.current.certificate.subject, /Pinniped Impersonation Proxy Signer CA/);
    const rotated = await planCA(secretFrom(created, { [rotateAnnotation]: "x" }), t0 + day, signer);
    assert.equal(rotated.state.crossSignedPEM, undefined);
    assert.ok(rotated.data.previousCACertificate);
    assert.equal(rotated.state.previous?.untilMs, t0 + 2 * day);
    const loaded = loadCAState(secretFrom(rotated), signer);
    assert.equal(loaded?.previous?.certPEM, created.state.current.certPEM);
  });
});

describe("planServing", () => {
  const policy = servingPolicy({ lifetimeMs: 50 * day });
  const caPolicy = servingCAPolicy({ lifetimeMs: 100 * day });

  it("issues for exactly the names, keeps a fitting leaf, reissues on a name or CA change", async () => {
    const ca = await planCA(undefined, t0, caPolicy);
    const first = await planServing(undefined, ca.state, { dnsNames: ["proxy.example.com"] }, t0, policy);
    assert.equal(first.action, "write");
    const leaf = new X509Certificate(first.certPEM);
    assert.equal(leaf.subjectAltName, "DNS:proxy.example.com");
    const secret: Secret = {
      type: "kubernetes.io/tls",
      data: { "tls.crt": btoa(first.certPEM), "tls.key": btoa(first.keyPEM) },
    };
    const same = await planServing(secret, ca.state, { dnsNames: ["proxy.example.com"] }, t0 + day, policy);
    assert.equal(same.action, "none");
    const ips = await planServing(secret, ca.state, { ips: ["10.0.0.1"] }, t0 + day, policy);
    assert.equal(ips.action, "write");
    assert.equal(ips.action === "write" && ips.reason, "the names changed");
    const other = await planCA(undefined, t0, caPolicy);
    const wrongCA = await planServing(secret, other.state, { dnsNames: ["proxy.example.com"] }, t0, policy);
    assert.equal(wrongCA.action === "write" && wrongCA.reason, "not signed by the current CA");
    const late = await planServing(
      secret,
      ca.state,
      { dnsNames: ["proxy.example.com"] },
      t0 + 41 * day,
      policy,
    );
    assert.equal(late.action === "write" && late.reason, "renewal window reached");
  });

  it("chains the leaf to the cross-signed CA during an overlap", async () => {
    const created = await planCA(undefined, t0, caPolicy);
    const rotated = await planCA(secretFrom(created, { [rotateAnnotation]: "1" }), t0, caPolicy);
    const plan = await planServing(undefined, rotated.state, { ips: ["127.0.0.1"] }, t0, policy);
    assert.equal(plan.certPEM.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.ok(plan.certPEM.endsWith(rotated.state.crossSignedPEM ?? "missing"));
  });
});

describe("a rotation does not break clients that trust only the old CA", async () => {
  const policy = servingCAPolicy();
  const old = await planCA(undefined, Date.now(), policy);
  const rotated = await planCA(secretFrom(old, { [rotateAnnotation]: "now" }), Date.now(), policy);
  const pair = await planServing(
    undefined,
    rotated.state,
    { ips: ["127.0.0.1"] },
    Date.now(),
    servingPolicy(),
  );

  async function handshake(ca: string): Promise<void> {
    const server = tls.createServer({ cert: pair.certPEM, key: pair.keyPEM }, (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve, reject) => {
        const socket = tls.connect({ host: "127.0.0.1", port, ca }, () => {
          socket.end();
          resolve();
        });
        socket.on("error", reject);
      });
    } finally {
      server.close();
    }
  }

  it("verifies with only the old CA through the cross-signed intermediate", async () => {
    await handshake(old.state.current.certPEM);
  });

  it("verifies with only the new CA", async () => {
    await handshake(rotated.state.current.certPEM);
  });

  it("verifies with the published bundle, and fails with an unrelated CA", async () => {
    await handshake(trustBundle(rotated.state));
    const unrelated = await planCA(undefined, Date.now(), policy);
    await assert.rejects(handshake(unrelated.state.current.certPEM));
  });

  it("openssl verify agrees", () => {
    const dir = mkdtempSync(join(tmpdir(), "rotation-"));
    try {
      const [leafPEM] = pair.certPEM.split(/(?<=-----END CERTIFICATE-----\n)/);
      writeFileSync(join(dir, "leaf.pem"), leafPEM ?? "");
      writeFileSync(join(dir, "cross.pem"), rotated.state.crossSignedPEM ?? "");
      writeFileSync(join(dir, "old.pem"), old.state.current.certPEM);
      writeFileSync(join(dir, "new.pem"), rotated.state.current.certPEM);
      const verify = (ca: string) =>
        execFileSync("openssl", [
          "verify",
          "-CAfile",
          join(dir, ca),
          "-untrusted",
          join(dir, "cross.pem"),
          join(dir, "leaf.pem"),
        ]).toString();
      assert.match(verify("old.pem"), /OK/);
      assert.match(verify("new.pem"), /OK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
