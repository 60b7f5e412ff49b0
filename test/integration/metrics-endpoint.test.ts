// /metrics on the Concierge's HTTPS port, run locally as its ServiceAccount against a control plane
// of its own: a Prometheus-style scrape with a ServiceAccount token bound to
// pinniped-concierge-metrics-reader succeeds, other tokens are forbidden, anonymous ones refused;
// the standard client-go names are there, and every query of the Grafana dashboard in the repo
// names a metric the process exports.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { request } from "node:https";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { ControlPlane } from "../../hack/controlplane.ts";
import { type LocalConcierge, runLocal } from "../../hack/run-local.ts";
import { discardLogger } from "../../observability/logger.ts";
import { apiServiceNames } from "../../server/main.ts";
import { runKubectl, startTestControlPlane } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dashboardPath = join(repoRoot, "deploy", "grafana", "pinniped-concierge-dashboard.json");

describe("/metrics on the HTTPS port, behind TokenReview and SubjectAccessReview", () => {
  let cp: ControlPlane;
  let concierge: LocalConcierge;
  let caPEM: string;
  let readerToken: string;
  let otherToken: string;

  const kubectl = async (args: string[], input?: string) => {
    const res = await runKubectl(cp.binDir, cp.kubeconfigPath, args, input === undefined ? {} : { input });
    assert.equal(res.code, 0, `kubectl ${args.join(" ")}: ${res.stderr}`);
    return res.stdout;
  };

  /** GET /metrics as Prometheus does: HTTPS, the serving CA, a bearer token if any. */
  const scrape = (token?: string) =>
    new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: concierge.ports.aggregatedAPI,
          path: "/metrics",
          ca: caPEM,
          headers: token ? { authorization: `Bearer ${token}` } : {},
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            body += chunk;
          });
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }),
          );
        },
      );
      req.on("error", reject);
      req.end();
    });

  before(async () => {
    cp = await startTestControlPlane("metrics");
    concierge = await runLocal({
      kubeconfigPath: cp.kubeconfigPath,
      binDir: cp.binDir,
      log: discardLogger(),
      identity: "metrics-endpoint-test",
    });
    await kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          { apiVersion: "v1", kind: "Namespace", metadata: { name: "monitoring" } },
          {
            apiVersion: "v1",
            kind: "ServiceAccount",
            metadata: { name: "prometheus", namespace: "monitoring" },
          },
          { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "nosy", namespace: "monitoring" } },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRoleBinding",
            metadata: { name: "prometheus-concierge-metrics" },
            roleRef: {
              apiGroup: "rbac.authorization.k8s.io",
              kind: "ClusterRole",
              name: "pinniped-concierge-metrics-reader",
            },
            subjects: [{ kind: "ServiceAccount", name: "prometheus", namespace: "monitoring" }],
          },
        ],
      }),
    );
    readerToken = (await kubectl(["create", "token", "prometheus", "-n", "monitoring"])).trim();
    otherToken = (await kubectl(["create", "token", "nosy", "-n", "monitoring"])).trim();
    await eventually(
      "a serving certificate in the APIService",
      async () => {
        const bundle = await kubectl([
          "get",
          "apiservice",
          apiServiceNames[0],
          "-o",
          "jsonpath={.spec.caBundle}",
        ]);
        caPEM = Buffer.from(bundle, "base64").toString("utf8");
        return caPEM.includes("BEGIN CERTIFICATE") && concierge.ready();
      },
      { timeoutMs: 90_000 },
    );
  });

  after(async () => {
    await concierge?.stop();
    await cp?.stop();
  });

  it("refuses an anonymous scrape with 401 and a token without the ClusterRole with 403", async () => {
    const anonymous = await scrape();
    assert.equal(anonymous.status, 401);
    assert.equal((JSON.parse(anonymous.body) as { reason: string }).reason, "Unauthorized");
    const garbage = await scrape("not-a-token");
    assert.equal(garbage.status, 401);
    const nosy = await scrape(otherToken);
    assert.equal(nosy.status, 403);
    assert.equal(
      (JSON.parse(nosy.body) as { message: string }).message,
      'forbidden: User "system:serviceaccount:monitoring:nosy" cannot get path "/metrics"',
    );
  });

  it("serves a ServiceAccount bound to pinniped-concierge-metrics-reader, with client-go's names", async () => {
    const scraped = await scrape(readerToken);
    assert.equal(scraped.status, 200, scraped.body);
    assert.match(scraped.type, /^text\/plain; version=0\.0\.4/);
    for (const sample of [
      /^workqueue_depth\{name="jwtcachefiller-controller"\} \d+$/m,
      /^workqueue_adds_total\{name="[^"]+"\} [1-9]/m,
      /^workqueue_queue_duration_seconds_count\{name="[^"]+"\} [1-9]/m,
      /^workqueue_work_duration_seconds_count\{name="[^"]+"\} [1-9]/m,
      /^# TYPE workqueue_retries_total counter$/m,
      /^rest_client_requests_total\{code="201",method="POST",host="[^"]+"\} [1-9]/m,
      /^rest_client_request_duration_seconds_count\{verb="GET",host="[^"]+"\} [1-9]/m,
      /^leader_election_master_status\{name="pinniped-concierge"\} [01]$/m,
      /^concierge_informer_synced\{/m,
    ]) {
      assert.match(scraped.body, sample);
    }
    // The allowed token is remembered briefly: a second scrape answers from the same review.
    assert.equal((await scrape(readerToken)).status, 200);
    assert.match((await scrape(readerToken)).body, /^concierge_metrics_scrapes_total\{code="200"\} [3-9]/m);
  });

  it("has a Grafana dashboard whose every query names a metric the process exports", async () => {
    const dashboard = JSON.parse(await readFile(dashboardPath, "utf8")) as {
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
    };
    const exported = new Set(
      [...(await scrape(readerToken)).body.matchAll(/^# TYPE (\S+) (\w+)$/gm)].map((m) => m[1]),
    );
    const queries = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
    );
    assert.ok(queries.length >= 10, `${queries.length} queries`);
    for (const { panel, expr } of queries) {
      const names = [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)].map((m) => m[1] ?? "");
      assert.ok(names.length > 0, `${panel}: no metric selector in ${expr}`);
      for (const name of names) {
        const base = name.replace(/_(bucket|count|sum)$/, "");
        assert.ok(exported.has(name) || exported.has(base), `${panel}: ${name} is not exported`);
      }
    }
  });
});
