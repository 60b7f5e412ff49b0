import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock, settle } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { ownKey } from "./filters.ts";
import { NOT_LEADER_MESSAGE } from "./leaderelection.ts";
import type { InformerTransport } from "./listwatch.ts";
import { Manager } from "./manager.ts";
import { eventually, FakeLeaseStore, FakeRestClient } from "./testing.ts";

/** Lists one fixed object; watches stay open until aborted. */
function staticTransport(log: string[]): InformerTransport {
  return {
    list: async () => ({
      apiVersion: "v1",
      kind: "SecretList",
      metadata: { resourceVersion: "1" },
      items: [{ metadata: { name: "s", namespace: "ns", resourceVersion: "1" } }],
    }),
    watch: (_path, _query, signal, sink) =>
      new Promise((_resolve, reject) => {
        sink.open();
        signal.addEventListener(
          "abort",
          () => {
            log.push("watch stopped");
            reject(signal.reason);
          },
          { once: true },
        );
      }),
  };
}

function setup(leases: FakeLeaseStore, identity: string, order: string[], clock = new FakeClock()) {
  const rest = new FakeRestClient();
  const { log, lines } = memoryLogger();
  const manager = new Manager({
    rest,
    transport: staticTransport(order),
    lease: leases.client(),
    identity,
    clock,
    log,
    random: () => 0,
    leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
    informers: { inactivityTimeoutMs: 1_000_000 },
  });
  return { clock, rest, manager, lines };
}

describe("Manager", () => {
  it("syncs on every replica, lets only the leader write, and stops controllers before releasing the lease", async () => {
    const leases = new FakeLeaseStore();
    const order: string[] = [];
    const clock = new FakeClock();
    const leader = setup(leases, "pod-a", order, clock);
    const follower = setup(leases, "pod-b", order, clock);
    const results: Record<string, string[]> = { "pod-a": [], "pod-b": [] };

    for (const [id, replica] of [
      ["pod-a", leader],
      ["pod-b", follower],
    ] as const) {
      const secrets = replica.manager.informers.informer({
        group: "",
        version: "v1",
        resource: "secrets",
        namespace: "ns",
      });
      replica.manager
        .controller({
          name: "writer",
          sync: async ({ key, signal }) => {
            try {
              await replica.manager.client.request({ method: "PUT", path: `/x/${key}`, body: {}, signal });
              results[id]?.push(`wrote ${key}`);
            } catch (err) {
              results[id]?.push((err as Error).message);
              throw err;
            }
            return undefined;
          },
        })
        .withInformer(secrets, ownKey);
    }

    const stopLeader = new AbortController();
    const stopFollower = new AbortController();
    const runs = [leader.manager.run(stopLeader.signal)];
    await settle();
    runs.push(follower.manager.run(stopFollower.signal));
    await eventually(() => results["pod-a"]?.length === 1 && results["pod-b"]?.length === 1);
    assert.equal(leader.manager.leader.isLeader(), true);
    assert.deepEqual(results, { "pod-a": ["wrote ns/s"], "pod-b": [NOT_LEADER_MESSAGE] });
    assert.equal(
      follower.lines.filter((l) => l.level === "error").length,
      0,
      "refused writes are not errors",
    );
    assert.equal(follower.rest.writes().length, 0);

    // Let the follower's refused sync back off far beyond the takeover time.
    await clock.advance(60_000);
    assert.equal(leader.manager.leader.isLeader(), true);
    const refused = results["pod-b"]?.length ?? 0;
    leader.manager.leader.onChange((leading) => order.push(leading ? "leading" : "stepped down"));
    stopLeader.abort();
    await runs[0];
    assert.equal(leases.lease?.spec?.holderIdentity, "", "released");
    const stoppedController = leader.lines.findIndex((l) => l.message === "controller stopped");
    const released = leader.lines.findIndex((l) => l.message === "released the lease");
    assert.ok(
      stoppedController >= 0 && released > stoppedController,
      "controllers stop before the lease is released",
    );
    assert.deepEqual(order, ["stepped down", "watch stopped"]);

    await clock.advance(2_000);
    assert.equal(follower.manager.leader.isLeader(), true, "the other replica takes over at its next retry");
    await eventually(() => results["pod-b"]?.at(-1) === "wrote ns/s");
    assert.equal(results["pod-b"]?.length, refused + 1, "retried at once on takeover, not after its backoff");
    stopFollower.abort();
    await runs[1];
  });

  it("runs with no controllers until stopped", async () => {
    const { manager } = setup(new FakeLeaseStore(), "pod-a", []);
    const stop = new AbortController();
    let done = false;
    const run = manager.run(stop.signal).then(() => {
      done = true;
    });
    await settle();
    assert.equal(done, false);
    assert.equal(manager.leader.isLeader(), true);
    stop.abort();
    await run;
    await assert.rejects(manager.run(new AbortController().signal), /already started/);
  });
});
