import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { freePorts } from "../hack/controlplane.ts";
import { memoryLogger } from "../observability/logger.ts";
import { configFromObject } from "./config.ts";
import { startConcierge } from "./main.ts";

// A cluster nobody listens for: the process must still serve its health endpoints, say it is not
// ready, and stop promptly.
function unreachableCluster(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "gone", server: "https://127.0.0.1:1", skipTLSVerify: true }],
    users: [{ name: "u", token: "unused" }],
    contexts: [{ name: "c", cluster: "gone", user: "u" }],
    currentContext: "c",
  });
  return kc;
}

describe("startConcierge without a reachable cluster", () => {
  it("is alive but not ready, serves no metrics on the plain-HTTP port, and stops promptly", async () => {
    const [apiPort, healthPort] = await freePorts(2);
    const config = configFromObject(
      { namespace: "ns", aggregatedAPIServerPort: apiPort, healthPort },
      { env: {} },
    );
    const { log, lines } = memoryLogger("info");
    const concierge = await startConcierge({
      config,
      kubeConfig: unreachableCluster(),
      host: "127.0.0.1",
      identity: "unit-test",
      log,
    });
    try {
      assert.deepEqual(concierge.ports, { aggregatedAPI: apiPort, health: healthPort });
      const get = (path: string) => fetch(`http://127.0.0.1:${healthPort}${path}`);
      assert.equal((await get("/healthz")).status, 200);
      assert.equal((await get("/livez")).status, 200);
      assert.equal((await get("/readyz")).status, 503);
      assert.equal(concierge.ready(), false);
      assert.equal((await get("/nope")).status, 404);
      // Only on the HTTPS port, behind TokenReview and SubjectAccessReview.
      assert.equal((await get("/metrics")).status, 404);
    } finally {
      const began = Date.now();
      await concierge.stop();
      assert.ok(Date.now() - began < 10_000, "stop() took too long");
    }
    await concierge.stop();
    assert.ok(lines.some((l) => l.message === "stopped"));
    await assert.rejects(fetch(`http://127.0.0.1:${healthPort}/healthz`));
  });

  it("fails to start, and cleans up, when its port is taken", async () => {
    const [apiPort, healthPort] = await freePorts(2);
    const config = configFromObject(
      { namespace: "ns", aggregatedAPIServerPort: apiPort, healthPort },
      { env: {} },
    );
    const first = await startConcierge({
      config,
      kubeConfig: unreachableCluster(),
      host: "127.0.0.1",
      log: memoryLogger().log,
    });
    try {
      await assert.rejects(
        startConcierge({
          config,
          kubeConfig: unreachableCluster(),
          host: "127.0.0.1",
          log: memoryLogger().log,
        }),
        /EADDRINUSE/,
      );
    } finally {
      await first.stop();
    }
  });
});
