import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { CredentialIssuerStatus, CredentialIssuerStrategy } from "../../apis/index.ts";
import { FakeClock, rfc3339, settle } from "../../kube/clock.ts";
import { ApiError } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Controller } from "../runtime/controller.ts";
import { NotLeaderError } from "../runtime/leaderelection.ts";
import { StatusWriter } from "../runtime/status.ts";
import { eventually, FakeInformer, FakeRestClient } from "../runtime/testing.ts";
import { StrategyHolder } from "./holder.ts";
import type { StrategyUpdate } from "./merge.ts";
import { type CredentialIssuerObject, credentialIssuerController } from "./reconciler.ts";

const name = "pinniped-concierge-config";
const path = `/apis/config.concierge.pinniped.dev/v1alpha1/credentialissuers/${name}/status`;

const kcaError: Omit<StrategyUpdate, "type"> = {
  status: "Error",
  reason: "CouldNotFetchKey",
  message: "could not find a healthy kube-controller-manager pod (0 candidates)",
};
const kcaSuccess: Omit<StrategyUpdate, "type"> = {
  status: "Success",
  reason: "FetchedKey",
  message: "key was fetched successfully",
  frontend: {
    type: "TokenCredentialRequestAPI",
    tokenCredentialRequestInfo: { server: "https://k8s.example.com", certificateAuthorityData: "Y2E=" },
  },
};
const proxyDisabled: Omit<StrategyUpdate, "type"> = {
  status: "Error",
  reason: "Disabled",
  message: "impersonation proxy was explicitly disabled by configuration",
};

const defaultSpec = {
  impersonationProxy: { mode: "auto" as const, service: { type: "LoadBalancer" as const } },
};

function issuer(status?: CredentialIssuerStatus, issuerName = name): CredentialIssuerObject {
  return {
    apiVersion: "config.concierge.pinniped.dev/v1alpha1",
    kind: "CredentialIssuer",
    metadata: { name: issuerName, resourceVersion: "1", generation: 1 },
    spec: { impersonationProxy: { mode: "auto", service: { type: "LoadBalancer" } } },
    ...(status ? { status } : {}),
  };
}

function applyMergePatch(target: unknown, patch: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

const stops: AbortController[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop.abort();
  await settle();
});

function fixture(
  objects: CredentialIssuerObject[] = [],
  create?: { defaultSpec: typeof defaultSpec },
  order?: readonly string[],
) {
  const rest = new FakeRestClient();
  const clock = new FakeClock();
  const { log, lines } = memoryLogger();
  const issuers = new FakeInformer<CredentialIssuerObject>({ objects });
  const holder = new StrategyHolder(order);
  const state = { leading: true };
  let rv = 100;
  // The API server and the informer: a status patch lands in the cached object.
  rest.react((r) => {
    const patched = /\/credentialissuers\/([^/]+)\/status$/.exec(r.path)?.[1];
    const current = patched ? issuers.get(patched) : undefined;
    if (r.method !== "PATCH" || !current) return undefined;
    const next = {
      ...structuredClone(current),
      metadata: { ...current.metadata, resourceVersion: String(++rv) },
      status: applyMergePatch(current.status ?? {}, (r.json as { status: unknown }).status),
    } as CredentialIssuerObject;
    issuers.upsert(next);
    return next;
  });
  const status = new StatusWriter({
    client: rest,
    guard: {
      assertLeader() {
        if (!state.leading) throw new NotLeaderError();
      },
    },
  });
  const controller = credentialIssuerController(
    {
      credentialIssuers: issuers,
      status,
      client: {
        request: (options) => {
          if (!state.leading) return Promise.reject(new NotLeaderError());
          return rest.request(options);
        },
      },
      clock,
      controller: (o) => new Controller({ ...o, clock, log }),
    },
    { holder, credentialIssuerName: name, ...create, labels: { app: "pinniped-concierge" } },
  );
  const stop = new AbortController();
  stops.push(stop);
  const running = controller.run(stop.signal);
  const patches = () => rest.writes().filter((r) => r.method === "PATCH");
  return {
    rest,
    clock,
    lines,
    issuers,
    holder,
    state,
    running,
    patches,
    strategies: () => issuers.get(name)?.status?.strategies,
    conditions: () => issuers.get(name)?.status?.conditions,
    /** Lets the controller work through everything queued. */
    idle: () => settle(20),
  };
}

const at = (s: Omit<StrategyUpdate, "type">, type: StrategyUpdate["type"], ms: number) =>
  ({ ...s, type, lastUpdateTime: rfc3339(ms) }) as CredentialIssuerStrategy;

describe("credentialissuer reconciler", () => {
  it("writes nothing until a strategy is published", async () => {
    const f = fixture([issuer()]);
    await f.idle();
    assert.deepEqual(f.rest.writes(), []);
  });

  it("writes a published strategy into the status, with the clock's time and a resourceVersion precondition", async () => {
    const f = fixture([issuer()]);
    const t0 = f.clock.now();
    f.holder.set("KubeClusterSigningCertificate", kcaError);
    await eventually(() => f.patches().length === 1);
    const [patch] = f.patches();
    assert.equal(patch?.path, path);
    const json = patch?.json as { metadata: unknown; status: CredentialIssuerStatus };
    assert.deepEqual(json.metadata, { resourceVersion: "1" });
    assert.deepEqual(json.status.strategies, [at(kcaError, "KubeClusterSigningCertificate", t0)]);
  });

  it("advances lastUpdateTime only on a real change, and writes only then", async () => {
    const f = fixture([issuer()]);
    const t0 = f.clock.now();
    f.holder.set("KubeClusterSigningCertificate", kcaError);
    await eventually(() => f.patches().length === 1);
    f.clock.step(60_000);
    f.holder.set("KubeClusterSigningCertificate", { ...kcaError });
    f.issuers.upsert(structuredClone(f.issuers.get(name)!)); // a resync
    await f.idle();
    assert.equal(f.patches().length, 1);
    assert.deepEqual(f.strategies(), [at(kcaError, "KubeClusterSigningCertificate", t0)]);

    f.holder.set("KubeClusterSigningCertificate", kcaSuccess);
    await eventually(() => f.patches().length === 2);
    assert.deepEqual(f.strategies(), [at(kcaSuccess, "KubeClusterSigningCertificate", t0 + 60_000)]);
  });

  it("merges both strategies, KubeClusterSigningCertificate first, whatever the publishing order", async () => {
    const f = fixture([issuer()]);
    const t0 = f.clock.now();
    f.holder.set("ImpersonationProxy", proxyDisabled);
    f.holder.set("KubeClusterSigningCertificate", kcaSuccess);
    await eventually(() => f.strategies()?.length === 2);
    assert.deepEqual(f.strategies(), [
      at(kcaSuccess, "KubeClusterSigningCertificate", t0),
      at(proxyDisabled, "ImpersonationProxy", t0),
    ]);
  });

  it("keeps entries of types this process does not publish, and sorts them into place", async () => {
    const t = Date.UTC(2025, 0, 1);
    const f = fixture([issuer({ strategies: [at(proxyDisabled, "ImpersonationProxy", t)] })]);
    f.holder.set("KubeClusterSigningCertificate", kcaError);
    await eventually(() => f.patches().length === 1);
    assert.deepEqual(f.strategies(), [
      at(kcaError, "KubeClusterSigningCertificate", f.clock.now()),
      at(proxyDisabled, "ImpersonationProxy", t),
    ]);
  });

  it("reverts a manual edit of status.strategies", async () => {
    const f = fixture([issuer()]);
    f.holder.set("KubeClusterSigningCertificate", kcaSuccess);
    await eventually(() => f.patches().length === 1);
    f.clock.step(5_000);
    const edited = structuredClone(f.issuers.get(name)!);
    edited.status = {
      strategies: [{ ...at(kcaError, "KubeClusterSigningCertificate", 0), message: "edited by hand" }],
    };
    f.issuers.upsert(edited);
    await eventually(() => f.patches().length === 2);
    assert.deepEqual(f.strategies(), [at(kcaSuccess, "KubeClusterSigningCertificate", f.clock.now())]);
  });

  it("creates the CredentialIssuer with the default spec when it is missing, then writes to it", async () => {
    const f = fixture([], { defaultSpec });
    f.state.leading = false;
    f.holder.set("KubeClusterSigningCertificate", kcaError);
    // A follower leaves it to the leader.
    await f.idle();
    assert.deepEqual(f.rest.requests, []);
    f.state.leading = true;
    await f.clock.advance(1_000); // the backed-off retry (a Manager retries at once on election)
    await eventually(() => f.rest.writes().length === 1);
    const [create] = f.rest.writes();
    assert.equal(create!.method, "POST");
    assert.equal(create!.path, "/apis/config.concierge.pinniped.dev/v1alpha1/credentialissuers");
    assert.deepEqual(create!.json, {
      apiVersion: "config.concierge.pinniped.dev/v1alpha1",
      kind: "CredentialIssuer",
      metadata: { name, labels: { app: "pinniped-concierge" } },
      spec: defaultSpec,
    });
    // Its add event: the strategies follow, and the spec is never written again.
    f.issuers.upsert(issuer());
    await eventually(() => f.patches().length === 1);
    assert.deepEqual(f.strategies(), [at(kcaError, "KubeClusterSigningCertificate", f.clock.now())]);
    assert.equal(f.rest.writes().filter((r) => r.method === "POST").length, 1);
  });

  it("takes AlreadyExists as created by someone else and waits for the add event", async () => {
    const f = fixture([], { defaultSpec });
    f.rest.react((r) => {
      if (r.method !== "POST") return undefined;
      throw new ApiError(409, "already exists", { reason: "AlreadyExists", code: 409 });
    });
    await eventually(() => f.rest.writes().length === 1);
    await f.idle();
    assert.equal(
      f.lines.some((l) => l.message === "sync failed; will retry"),
      false,
    );
  });

  it("fails with upstream's message while the CredentialIssuer is missing, without a default spec never creates it, and writes once it appears", async () => {
    const f = fixture();
    f.holder.set("KubeClusterSigningCertificate", kcaError);
    await eventually(() => f.lines.some((l) => l.message === "sync failed; will retry"));
    const failed = f.lines.find((l) => l.message === "sync failed; will retry");
    assert.match(
      JSON.stringify(failed),
      /could not get CredentialIssuer to update: credentialissuer.config.concierge.pinniped.dev \\"pinniped-concierge-config\\" not found/,
    );
    assert.deepEqual(f.rest.requests, []);
    f.issuers.upsert(issuer());
    await eventually(() => f.patches().length === 1);
    assert.deepEqual(f.strategies(), [at(kcaError, "KubeClusterSigningCertificate", f.clock.now())]);
  });

  it("writes a Ready condition naming the active frontend; a disabled proxy is Disabled, not a failure", async () => {
    const f = fixture([issuer()]);
    const t0 = f.clock.now();
    f.holder.set("ImpersonationProxy", proxyDisabled);
    f.holder.set("KubeClusterSigningCertificate", kcaSuccess);
    await eventually(() => f.conditions()?.length === 3);
    assert.deepEqual(f.conditions(), [
      {
        type: "ImpersonationProxy",
        status: "False",
        reason: "Disabled",
        message: proxyDisabled.message,
        lastTransitionTime: rfc3339(t0),
        observedGeneration: 1,
      },
      {
        type: "KubeClusterSigningCertificate",
        status: "True",
        reason: "FetchedKey",
        message: kcaSuccess.message,
        lastTransitionTime: rfc3339(t0),
        observedGeneration: 1,
      },
      {
        type: "Ready",
        status: "True",
        reason: "StrategySucceeded",
        message:
          "clients use the TokenCredentialRequestAPI frontend of the KubeClusterSigningCertificate strategy",
        lastTransitionTime: rfc3339(t0),
        observedGeneration: 1,
      },
    ]);
    assert.equal(f.issuers.get(name)?.status?.observedGeneration, 1);
  });

  it("lists the strategies in the configured order, and Ready names the first that succeeds there", async () => {
    const f = fixture([issuer()], undefined, ["SecretSigningCertificate", "KubeClusterSigningCertificate"]);
    f.holder.set("KubeClusterSigningCertificate", kcaSuccess);
    f.holder.set("SecretSigningCertificate", { ...kcaSuccess, message: "the Secret's CA signs" });
    f.holder.set("ImpersonationProxy", proxyDisabled);
    await eventually(() => f.strategies()?.length === 3);
    await f.idle();
    assert.deepEqual(
      f.strategies()?.map((s) => s.type),
      ["SecretSigningCertificate", "KubeClusterSigningCertificate", "ImpersonationProxy"],
    );
    const ready = f.conditions()?.find((c) => c.type === "Ready");
    assert.equal(
      ready?.message,
      "clients use the TokenCredentialRequestAPI frontend of the SecretSigningCertificate strategy",
    );
  });

  it("never names a strategy left out of the configured order as the one that serves", async () => {
    const f = fixture([issuer()], undefined, ["ImpersonationProxy"]);
    f.holder.set("KubeClusterSigningCertificate", kcaSuccess);
    f.holder.set("ImpersonationProxy", proxyDisabled);
    await eventually(() => f.conditions()?.find((c) => c.type === "Ready") !== undefined);
    await f.idle();
    assert.deepEqual(
      f.strategies()?.map((s) => s.type),
      ["ImpersonationProxy", "KubeClusterSigningCertificate"],
    );
    const ready = f.conditions()?.find((c) => c.type === "Ready");
    assert.equal(ready?.status, "False");
    assert.equal(ready?.reason, "AllStrategiesDisabled");
  });

  it("is not Ready when no strategy succeeds, and says why", async () => {
    const f = fixture([issuer()]);
    f.holder.set("ImpersonationProxy", proxyDisabled);
    f.holder.set("KubeClusterSigningCertificate", kcaError);
    await eventually(() => f.conditions()?.find((c) => c.type === "Ready") !== undefined);
    await f.idle();
    const ready = f.conditions()?.find((c) => c.type === "Ready");
    assert.equal(ready?.status, "False");
    assert.equal(ready?.reason, "NoStrategySucceeded");
    assert.equal(
      ready?.message,
      `no strategy can issue credentials: KubeClusterSigningCertificate: ${kcaError.message}`,
    );
  });

  it("follows a spec change with observedGeneration, and writes nothing more on a resync", async () => {
    const f = fixture([issuer()]);
    f.holder.set("KubeClusterSigningCertificate", kcaSuccess);
    await eventually(() => f.patches().length === 1);
    const current = f.issuers.get(name)!;
    f.issuers.upsert({ ...structuredClone(current), metadata: { ...current.metadata, generation: 2 } });
    await eventually(() => f.issuers.get(name)?.status?.observedGeneration === 2);
    assert.ok(f.conditions()?.every((c) => c.observedGeneration === 2));
    f.issuers.upsert(structuredClone(f.issuers.get(name)!));
    await f.idle();
    assert.equal(f.patches().length, 2);
  });

  it("ignores other CredentialIssuers", async () => {
    const f = fixture([issuer(undefined, "someone-else")]);
    f.holder.set("KubeClusterSigningCertificate", kcaError);
    f.issuers.upsert(issuer(undefined, "another-one"));
    await f.idle();
    assert.deepEqual(f.rest.requests, []);
    assert.equal(f.issuers.get("someone-else")?.status, undefined);
  });

  it("does not write while following, and writes once leading", async () => {
    const f = fixture([issuer()]);
    f.state.leading = false;
    f.holder.set("KubeClusterSigningCertificate", kcaError);
    await f.idle();
    assert.deepEqual(f.rest.requests, []);
    f.state.leading = true;
    await f.clock.advance(1_000); // the backed-off retry (a Manager retries at once on election)
    await eventually(() => f.patches().length === 1);
  });
});
