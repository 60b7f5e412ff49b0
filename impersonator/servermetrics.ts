// The impersonation proxy's transport metrics, shared by the request and upgrade paths.
import type { Counter, Gauge, Histogram } from "prom-client";
import type { Metrics } from "../observability/metrics.ts";

export interface ProxyMetrics {
  requests: Counter<"method" | "code">;
  upgrades: Counter<"protocol" | "outcome">;
  upstreamLatency: Histogram<"kind">;
  errors: Counter<"stage">;
  openUpgrades: Gauge;
  inFlight: Gauge;
  websocketPings: Counter;
}

export function proxyMetrics(metrics: Metrics): ProxyMetrics {
  return {
    requests: metrics.counter({
      name: "impersonation_proxy_requests_total",
      help: "Requests (not upgrades) the impersonation proxy answered, by method and HTTP code.",
      labelNames: ["method", "code"],
    }),
    upgrades: metrics.counter({
      name: "impersonation_proxy_upgrades_total",
      help: "Upgrade requests (exec, attach, port-forward), by protocol and outcome.",
      labelNames: ["protocol", "outcome"],
    }),
    upstreamLatency: metrics.histogram({
      name: "impersonation_proxy_upstream_latency_seconds",
      help: "Time from sending a request to kube-apiserver to its response headers.",
      labelNames: ["kind"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    errors: metrics.counter({
      name: "impersonation_proxy_errors_total",
      help: "Failures in the impersonation proxy, by stage.",
      labelNames: ["stage"],
    }),
    websocketPings: metrics.counter({
      name: "impersonation_proxy_websocket_pings_total",
      help: "WebSocket pings the proxy sent to clients on quiet upgraded connections (keepalive).",
    }),
    openUpgrades: metrics.gauge({
      name: "impersonation_proxy_open_upgraded_connections",
      help: "Upgraded connections (exec, attach, port-forward) currently piped to kube-apiserver.",
    }),
    inFlight: metrics.gauge({
      name: "impersonation_proxy_in_flight_requests",
      help: "Requests (not upgrades) currently being served, watches included.",
    }),
  };
}

/** `spdy`, `websocket` or `other`, from the `Upgrade` header. */
export function upgradeProtocol(upgrade: string | undefined): "spdy" | "websocket" | "other" {
  const u = (upgrade ?? "").toLowerCase();
  if (u.startsWith("spdy/")) return "spdy";
  if (u === "websocket") return "websocket";
  return "other";
}
