import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { CertificateAuthority } from "../../certs/ca.ts";
import { issueServingCertificate } from "../../certs/issue.ts";
import { SignerHolder } from "../../certs/signer.ts";
import { ProxyCredentials } from "../../impersonator/credentials.ts";
import type { ProxyRunner } from "../../impersonator/types.ts";
import { FakeClock } from "../../kube/clock.ts";
import type { KubeObject } from "../../kube/resource.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { StrategyHolder } from "../credentialissuer/holder.ts";
import { Controller, type ControllerOptions, type SyncContext } from "../runtime/controller.ts";
import { NotLeaderError } from "../runtime/leaderelection.ts";
import { FakeInformer, FakeRestClient } from "../runtime/testing.ts";
import type { Node, Service } from "./decide.ts";
import { type CredentialIssuerObject, impersonatorConfigController } from "./reconciler.ts";
import { rotateAnnotation, type Secret } from "./rotation.ts";

const namespace = "concierge";
const names = {
  loadBalancerService: "lb",
  clusterIPService: "cip",
  tlsSecret: "tls",
  caSecret: "ca",
  signerSecret: "signer",
};
const stops: AbortController[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s.abort();
});

class FakeRunner implements ProxyRunner {
  running = false;
  failWith: Error | undefined;
  async start() {
    if (this.failWith) throw this.failWith;
    this.running = true;
  }
  async stop() {
    this.running = false;
  }
}

function setup(spec: Record<string, unknown>, options: { follower?: boolean; secrets?: Secret[] } = {}) {
  const clock = new FakeClock(Date.parse("2030-01-01T00:00:00Z"));
  const { log, lines } = memoryLogger();
  const ci = new FakeInformer<CredentialIssuerObject>({
    objects: [
      {
        metadata: { name: "config" },
        spec: { impersonationProxy: spec },
      } as unknown as CredentialIssuerObject,
    ],
  });
  const nodes = new FakeInformer<Node>({ objects: [{ metadata: { name: "worker" } }] });
  const services = new FakeInformer<Service>();
  const secrets = new FakeInformer<Secret>({ objects: options.secrets ?? [] });
  const rest = new FakeRestClient();
  let uid = 0;
  // A tiny API server: writes land in the informers as the watch would deliver them.
  rest.react((req) => {
    if (options.follower) throw new NotLeaderError();
    const informer = (req.path.includes("/services") ? services : secrets) as FakeInformer<KubeObject>;
    const body = req.json as KubeObject;
    if (req.method === "POST" || req.method === "PUT") {
      const obj = { ...body, metadata: { ...body.metadata, namespace, uid: `uid-${++uid}` } };
      informer.upsert(obj);
      return obj;
    }
    if (req.method === "DELETE") {
      informer.remove(req.path.split("/").pop() ?? "", namespace);
      return {};
    }
    return undefined;
  });
  const runner = new FakeRunner();
  const strategies = new StrategyHolder();
  const signer = new SignerHolder("impersonation proxy signer");
  const credentials = new ProxyCredentials();
  let controllerOptions: Omit<ControllerOptions, "clock" | "log" | "metrics"> | undefined;
  impersonatorConfigController(
    {
      credentialIssuers: ci,
      nodes,
      services,
      secrets,
      client: rest,
      clock,
      controller: (o) => {
        controllerOptions = o;
        return new Controller({ ...o, clock, log });
      },
    },
    {
      namespace,
      credentialIssuerName: "config",
      names,
      labels: { app: "concierge" },
      appLabel: "concierge",
      proxyPort: 8444,
      runner,
      strategyHolder: strategies,
      signerHolder: signer,
      credentials,
    },
  );
  const stop = new AbortController();
  stops.push(stop);
  const queue = { add() {}, addAfter() {} } as unknown as SyncContext["queue"];
  return {
    clock,
    services,
    secrets,
    rest,
    runner,
    signer,
    credentials,
    sync: async () =>
      controllerOptions!.sync({ key: "impersonator-config", signal: stop.signal, log, queue }),
    strategy: () => strategies.get()[0],
    lines,
  };
}

describe("impersonator-config reconciler", () => {
  it("reports a proxy that fails to start as ErrorDuringSetup and retries", async () => {
    const t = setup({ mode: "enabled", service: { type: "LoadBalancer" } });
    t.runner.failWith = new Error("listen EADDRINUSE: address already in use :::8444");
    await assert.rejects(t.sync(), /EADDRINUSE/);
    assert.equal(t.strategy()?.reason, "ErrorDuringSetup");
    assert.equal(t.strategy()?.message, "listen EADDRINUSE: address already in use :::8444");
    t.runner.failWith = undefined;
    await t.sync();
    assert.equal(t.strategy()?.reason, "Pending");
  });

  it("uses an external TLS Secret and its ca.crt, and never writes a generated one", async () => {
    const ca = await CertificateAuthority.create("external", 3600_000);
    const leaf = await issueServingCertificate(ca, { dnsNames: ["proxy.example.com"] }, 3600_000);
    const external: Secret = {
      metadata: { name: "mine", namespace },
      type: "kubernetes.io/tls",
      data: { "tls.crt": btoa(leaf.certPEM), "tls.key": btoa(leaf.keyPEM), "ca.crt": btoa(ca.certPEM) },
    };
    const t = setup(
      {
        mode: "enabled",
        service: { type: "None" },
        externalEndpoint: "proxy.example.com",
        tls: { secretName: "mine" },
      },
      { secrets: [external] },
    );
    await t.sync();
    assert.deepEqual(t.strategy()?.frontend, {
      type: "ImpersonationProxy",
      impersonationProxyInfo: {
        endpoint: "https://proxy.example.com",
        certificateAuthorityData: btoa(ca.certPEM),
      },
    });
    assert.equal(t.credentials.get().serving?.certPEM, leaf.certPEM);
    assert.equal(t.secrets.get("tls", namespace), undefined);
    assert.equal(t.secrets.get("ca", namespace), undefined, "no generated CA with an external certificate");
    assert.equal(t.services.list().length, 0, "type None makes no Service");

    t.secrets.remove("mine", namespace);
    await assert.rejects(t.sync());
    assert.equal(
      t.strategy()?.message,
      'could not load the externally provided TLS secret for the impersonation proxy: secret "mine" not found',
    );
  });

  it("rotates the signer and trusts both signer CAs", async () => {
    const t = setup({ mode: "enabled", service: { type: "None" }, externalEndpoint: "10.0.0.1" });
    await t.sync();
    assert.equal(t.strategy()?.reason, "Listening");
    const first = t.signer.get();
    assert.ok(first);
    const signerSecret = t.secrets.get("signer", namespace)!;
    t.secrets.upsert({
      ...signerSecret,
      metadata: { ...signerSecret.metadata, annotations: { [rotateAnnotation]: "now" } },
    });
    await t.sync();
    assert.notEqual(t.signer.get()?.certPEM, first.certPEM);
    assert.deepEqual(t.credentials.get().signerCAPEMs, [t.signer.get()?.certPEM, first.certPEM]);
    await t.clock.advance(25 * 3600_000);
    await t.sync();
    assert.deepEqual(t.credentials.get().signerCAPEMs, [t.signer.get()?.certPEM]);
  });

  it("lets a follower serve what the leader wrote, and wait for the leader otherwise", async () => {
    const leader = setup({ mode: "enabled", service: { type: "None" }, externalEndpoint: "10.0.0.1" });
    await leader.sync();
    const written = leader.secrets.list();
    const follower = setup(
      { mode: "enabled", service: { type: "None" }, externalEndpoint: "10.0.0.1" },
      { follower: true, secrets: written },
    );
    await follower.sync();
    assert.equal(follower.strategy()?.reason, "Listening");
    assert.equal(follower.credentials.get().serving?.certPEM, leader.credentials.get().serving?.certPEM);

    const empty = setup(
      { mode: "enabled", service: { type: "None" }, externalEndpoint: "10.0.0.1" },
      { follower: true },
    );
    await assert.rejects(empty.sync(), NotLeaderError);
    assert.equal(empty.strategy(), undefined, "a follower without material leaves the verdict to the leader");
    assert.equal(empty.runner.running, true, "every replica serves");

    // Only writes that happened are reported, so a follower's log does not claim the leader's work.
    const writes = (t: { lines: Record<string, unknown>[] }) =>
      t.lines.filter(
        (l) =>
          l.level === "info" &&
          /^(wrote|writing|created|creating|updated|updating|deleted|deleting)\b/.test(String(l.message)),
      );
    assert.deepEqual(writes(empty), []);
    assert.deepEqual(writes(follower), []);
    assert.deepEqual(
      writes(leader).map((l) => l.message),
      ["wrote CA Secret", "wrote CA Secret", "wrote TLS serving Secret"],
    );
  });
});
