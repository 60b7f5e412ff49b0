import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../../kube/clock.ts";
import { memoryLogger } from "../../observability/logger.ts";
import { Metrics } from "../../observability/metrics.ts";
import { Controller } from "../runtime/controller.ts";
import { apiStatusError, eventually, FakeInformer, FakeRestClient } from "../runtime/testing.ts";
import type { Pod } from "./agent.ts";
import { isLegacyAgentPod, legacyPodCleanerController } from "./legacypodcleaner.ts";

const deps = { namespace: "concierge", labels: { extralabel: "labelvalue" } };

const pod = (name: string, labels: Record<string, string>, uid: string, namespace = "concierge"): Pod => ({
  metadata: { name, namespace, labels, uid, resourceVersion: `rv-${uid}` },
  status: { phase: "Running" },
});

// Upstream's legacypodcleaner_test.go fixtures.
const withoutExtraLabel = pod("agent-without-extra-label", { "kube-cert-agent.pinniped.dev": "true" }, "1");
const withExtraLabel = pod(
  "agent-with-extra-label",
  { "kube-cert-agent.pinniped.dev": "true", extralabel: "labelvalue", anotherextralabel: "labelvalue" },
  "3",
);
const notLegacy = pod(
  "agent-not-legacy",
  { "kube-cert-agent.pinniped.dev": "v3", extralabel: "labelvalue" },
  "5",
);
const otherNamespace = pod(
  "agent-elsewhere",
  { "kube-cert-agent.pinniped.dev": "true", extralabel: "labelvalue" },
  "7",
  "somewhere-else",
);

function fixture(pods: Pod[]) {
  const informer = new FakeInformer<Pod>({ objects: pods });
  const client = new FakeRestClient();
  // A deleted pod leaves the cache, as the watch would tell.
  client.react((r) => {
    if (r.method !== "DELETE") return undefined;
    const name = r.path.split("/").at(-1)!;
    informer.remove(name, "concierge");
    return {};
  });
  const { log, lines } = memoryLogger();
  const clock = new FakeClock();
  const controller = legacyPodCleanerController(
    {
      legacyPods: informer,
      client,
      controller: (o) => new Controller({ ...o, log, metrics: new Metrics(), clock }),
    },
    deps,
  );
  return { informer, client, lines, controller, clock };
}

async function running<T>(controller: Controller, body: () => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const run = controller.run(ac.signal);
  try {
    return await body();
  } finally {
    ac.abort();
    await run;
  }
}

describe("legacy kube-cert-agent pod cleaner", () => {
  it("selects the old agent label with every configured label, in the Concierge namespace only", () => {
    assert.equal(isLegacyAgentPod(withExtraLabel, deps), true);
    assert.equal(isLegacyAgentPod(withoutExtraLabel, deps), false);
    assert.equal(isLegacyAgentPod(notLegacy, deps), false);
    assert.equal(isLegacyAgentPod(otherNamespace, deps), false);
  });

  it("deletes only the legacy pod, with its UID and resourceVersion as preconditions", async () => {
    const f = fixture([withoutExtraLabel, withExtraLabel, notLegacy, otherNamespace]);
    await running(f.controller, async () => {
      await eventually(
        () => f.client.writes().length === 1 && !f.informer.get(withExtraLabel.metadata!.name!, "concierge"),
      );
    });
    assert.deepEqual(
      f.client.writes().map((r) => [r.method, r.path, r.json]),
      [
        [
          "DELETE",
          "/api/v1/namespaces/concierge/pods/agent-with-extra-label",
          {
            apiVersion: "v1",
            kind: "DeleteOptions",
            preconditions: { uid: "3", resourceVersion: "rv-3" },
          },
        ],
      ],
    );
    assert.deepEqual(
      f.lines.filter((l) => l.message === "deleted legacy kube-cert-agent pod").map((l) => l.pod),
      [{ name: "agent-with-extra-label", namespace: "concierge" }],
    );
  });

  it("retries a failed delete and is content when the pod is already gone", async () => {
    const f = fixture([withExtraLabel]);
    let failures = 1;
    f.client.react((r) => {
      if (r.method !== "DELETE") return undefined;
      if (failures-- > 0) throw apiStatusError(500, "InternalError", "some delete error");
      throw apiStatusError(404, "NotFound");
    });
    await running(f.controller, async () => {
      await eventually(() => f.client.writes().length === 1);
      await f.clock.advance(60_000);
      await eventually(() => f.client.writes().length === 2);
    });
    assert.deepEqual(
      f.lines.filter((l) => l.message === "sync failed; will retry").map((l) => (l.error as Error).message),
      ["could not delete legacy agent pod: some delete error"],
    );
    assert.equal(f.lines.filter((l) => l.message === "deleted legacy kube-cert-agent pod").length, 0);
  });

  it("looks again when the pod changed since the cache saw it", async () => {
    const f = fixture([withExtraLabel]);
    let conflicts = 1;
    f.client.react((r) => {
      if (r.method === "DELETE" && conflicts-- > 0) throw apiStatusError(409, "Conflict");
      return undefined;
    });
    await running(f.controller, async () => {
      await eventually(() => f.client.writes().length === 1);
      await f.clock.advance(60_000);
      await eventually(() => f.client.writes().length === 2);
    });
    assert.equal(f.informer.get(withExtraLabel.metadata!.name!, "concierge"), undefined);
  });
});
