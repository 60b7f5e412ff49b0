// Leader election on a real coordination.k8s.io/v1 Lease, with short timings
// (lease 3 s, renew deadline 2 s, retry 0.5 s).
import assert from "node:assert/strict";
import { afterEach, before, describe, it } from "node:test";
import {
  LeaderElector,
  leaderOnlyClient,
  NOT_LEADER_MESSAGE,
} from "../../controllers/runtime/leaderelection.ts";
import type { Lease } from "../../controllers/runtime/lease.ts";
import { restLeaseClient } from "../../controllers/runtime/lease.ts";
import { KubeRestClient } from "../../kube/rest.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";

const TIMING = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };

interface Replica {
  identity: string;
  elector: LeaderElector;
  /** Stops the replica; with `release: false` it vanishes like a crashed pod. */
  stop(): Promise<void>;
}

const replicas: Replica[] = [];
afterEach(async () => {
  for (const r of replicas.splice(0)) await r.stop();
});

async function waitFor<T>(what: string, get: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = get();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("leader election against the real API server", () => {
  let c: TestCluster;
  let admin: KubeRestClient;
  before(async () => {
    c = await testCluster();
    admin = new KubeRestClient(c.kubeConfig());
  });

  function replica(namespace: string, leaseName: string, identity: string, releaseOnStop = true): Replica {
    const client = new KubeRestClient(c.kubeConfig());
    const elector = new LeaderElector({
      lease: restLeaseClient(client, namespace, leaseName),
      identity,
      releaseOnStop,
      log: memoryLogger().log,
      ...TIMING,
    });
    const abort = new AbortController();
    const done = elector.run(abort.signal);
    let stopped = false;
    const r: Replica = {
      identity,
      elector,
      async stop() {
        if (stopped) return;
        stopped = true;
        abort.abort();
        await done;
      },
    };
    replicas.push(r);
    return r;
  }

  const readLease = (ns: string, name: string) =>
    admin.request<Lease>({
      method: "GET",
      path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`,
    });

  async function electOne(ns: string, lease: string, releaseOnStop = true) {
    const a = replica(ns, lease, "pod-a", releaseOnStop);
    const b = replica(ns, lease, "pod-b", releaseOnStop);
    const leader = await waitFor("a leader", () => [a, b].find((r) => r.elector.isLeader()), 10_000);
    const follower = leader === a ? b : a;
    return { leader, follower };
  }

  it("elects exactly one of two replicas, recorded in the Lease", async () => {
    const ns = await c.newNamespace("le");
    const { leader, follower } = await electOne(ns, "concierge");
    const until = Date.now() + 2_000;
    while (Date.now() < until) {
      assert.equal([leader, follower].filter((r) => r.elector.isLeader()).length, 1);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const lease = await readLease(ns, "concierge");
    assert.equal(lease.spec?.holderIdentity, leader.identity);
    assert.equal(lease.spec?.leaseDurationSeconds, 3);
    assert.match(lease.spec?.renewTime ?? "", /\.\d{6}Z$/);
    assert.equal(follower.elector.observedHolder(), leader.identity);
  });

  it("hands over at once when the leader stops gracefully", async () => {
    const ns = await c.newNamespace("le-graceful");
    const { leader, follower } = await electOne(ns, "concierge");
    const stoppedAt = Date.now();
    await leader.stop();
    assert.equal((await readLease(ns, "concierge")).spec?.holderIdentity, "");
    await waitFor("the follower to take over", () => follower.elector.isLeader() || undefined, 5_000);
    const tookMs = Date.now() - stoppedAt;
    assert.ok(tookMs < TIMING.leaseDurationMs, `takeover took ${tookMs} ms, no faster than expiry`);
    assert.equal((await readLease(ns, "concierge")).spec?.holderIdentity, follower.identity);
  });

  it("takes over within the lease duration when the leader vanishes without releasing", async () => {
    const ns = await c.newNamespace("le-crash");
    const { leader, follower } = await electOne(ns, "concierge", false);
    const stoppedAt = Date.now();
    await leader.stop();
    assert.equal((await readLease(ns, "concierge")).spec?.holderIdentity, leader.identity, "not released");
    await waitFor("the follower to take over", () => follower.elector.isLeader() || undefined, 10_000);
    const tookMs = Date.now() - stoppedAt;
    // Expiry counts from the follower's last sight of a renewal, which can trail the stop by up
    // to one jittered retry (≤ 2.2 × retry period), and the follower notices at its next one.
    const slack = 2 * TIMING.retryPeriodMs * 2.2 + 1_000;
    assert.ok(tookMs >= TIMING.leaseDurationMs - TIMING.retryPeriodMs - 100, `took only ${tookMs} ms`);
    assert.ok(tookMs <= TIMING.leaseDurationMs + slack, `took ${tookMs} ms`);
    const lease = await readLease(ns, "concierge");
    assert.equal(lease.spec?.holderIdentity, follower.identity);
    assert.equal(lease.spec?.leaseTransitions, 1);
  });

  it("rejects a non-leader's guarded write with upstream's message, and lets reads and the leader's writes through", async () => {
    const ns = await c.newNamespace("le-guard");
    const { leader, follower } = await electOne(ns, "concierge");
    const followerClient = leaderOnlyClient(new KubeRestClient(c.kubeConfig()), follower.elector);
    const leaderClient = leaderOnlyClient(new KubeRestClient(c.kubeConfig()), leader.elector);
    const cm = (name: string) => ({
      method: "POST" as const,
      path: `/api/v1/namespaces/${ns}/configmaps`,
      body: { metadata: { name } },
    });

    await assert.rejects(followerClient.request(cm("from-follower")), { message: NOT_LEADER_MESSAGE });
    await assert.rejects(follower.elector.guard(() => admin.request(cm("guarded-fn")))(), {
      message: NOT_LEADER_MESSAGE,
    });
    const list = await followerClient.request<{ items: unknown[] }>({
      method: "GET",
      path: `/api/v1/namespaces/${ns}/configmaps`,
    });
    assert.ok(Array.isArray(list.items));
    await leaderClient.request(cm("from-leader"));

    const names = (
      await admin.request<{ items: { metadata: { name: string } }[] }>({
        method: "GET",
        path: `/api/v1/namespaces/${ns}/configmaps`,
      })
    ).items.map((i) => i.metadata.name);
    assert.ok(names.includes("from-leader"));
    assert.ok(!names.includes("from-follower"));
    assert.ok(!names.includes("guarded-fn"));
  });
});
