import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ImpersonationProxySpec } from "../../apis/index.ts";
import {
  annotationKeysAnnotation,
  desiredService,
  endpointInfo,
  listening,
  type ProxyConfig,
  parseEndpoint,
  type Service,
  servicePatch,
  setupError,
  shouldRun,
  validateSpec,
  wantedServiceType,
} from "./decide.ts";

const spec = (s: Partial<ImpersonationProxySpec>) =>
  ({ mode: "auto", service: { type: "LoadBalancer" }, ...s }) as ImpersonationProxySpec;
const settings = {
  namespace: "ns",
  labels: { app: "concierge", team: "a" },
  appLabel: "concierge",
  proxyPort: 8444,
};
const worker = { metadata: { name: "w" } };
const cp = (labels: Record<string, string>) => ({ metadata: { name: "cp", labels } });

describe("validateSpec", () => {
  const prefix = "could not load CredentialIssuer spec.impersonationProxy: ";
  it("reports upstream's messages", () => {
    assert.throws(() => validateSpec(undefined), {
      message: "could not load CredentialIssuer: spec.impersonationProxy is nil",
    });
    assert.throws(() => validateSpec(spec({ mode: "x" as "auto" })), {
      message: `${prefix}invalid proxy mode "x" (expected auto, disabled, or enabled)`,
    });
    assert.throws(() => validateSpec(spec({ service: { type: "Foo" as "None" } })), {
      message: `${prefix}invalid service type "Foo" (expected None, LoadBalancer, or ClusterIP)`,
    });
    assert.throws(() => validateSpec(spec({ service: { loadBalancerIP: "nope" } })), {
      message: `${prefix}invalid LoadBalancerIP "nope"`,
    });
    assert.throws(() => validateSpec(spec({ service: { type: "None" } })), {
      message: `${prefix}externalEndpoint must be set when service.type is None`,
    });
    assert.throws(
      () => validateSpec(spec({ externalEndpoint: "a b:1" })),
      /invalid ExternalEndpoint "a b:1"/,
    );
  });
  it("skips checks when disabled and defaults the type", () => {
    assert.equal(
      validateSpec(spec({ mode: "disabled", service: { type: "Foo" as "None" } })).mode,
      "disabled",
    );
    assert.equal(validateSpec(spec({ service: {} })).serviceType, "LoadBalancer");
  });
  it("parses endpoints as upstream", () => {
    assert.deepEqual(parseEndpoint("example.com:443"), { host: "example.com" });
    assert.deepEqual(parseEndpoint("example.com:8443"), { host: "example.com", port: 8443 });
    assert.deepEqual(parseEndpoint("[::1]:8443"), { host: "::1", port: 8443 });
    assert.deepEqual(parseEndpoint("::1"), { host: "::1" });
  });
});

describe("shouldRun", () => {
  const config = (mode: ProxyConfig["mode"]) => validateSpec(spec({ mode }));
  it("follows modes and control-plane nodes", () => {
    assert.equal(shouldRun(config("enabled"), [cp({ "node-role.kubernetes.io/master": "" })]), true);
    assert.equal(shouldRun(config("disabled"), [worker]), false);
    assert.equal(shouldRun(config("auto"), [worker]), true);
    const roles: Record<string, string>[] = [
      { "node-role.kubernetes.io/control-plane": "" },
      { "node-role.kubernetes.io/master": "x" },
      { "kubernetes.io/node-role": "master" },
      { "kubernetes.io/node-role": "control-plane" },
    ];
    for (const labels of roles)
      assert.equal(shouldRun(config("auto"), [worker, cp(labels)]), false, JSON.stringify(labels));
    assert.equal(shouldRun(config("auto"), [cp({ "kubernetes.io/node-role": "worker" })]), true);
    assert.throws(() => shouldRun(config("auto"), []), { message: "no nodes found" });
    assert.equal(shouldRun(config("enabled"), []), true);
  });
  it("wants a Service only when running and the type is not None", () => {
    assert.equal(wantedServiceType(validateSpec(spec({})), true), "LoadBalancer");
    assert.equal(wantedServiceType(validateSpec(spec({})), false), undefined);
    const none = validateSpec(spec({ service: { type: "None" }, externalEndpoint: "x.example" }));
    assert.equal(wantedServiceType(none, true), undefined);
  });
});

describe("Services", () => {
  const config = validateSpec(
    spec({ service: { type: "LoadBalancer", loadBalancerIP: "1.2.3.4", annotations: { b: "2", a: "1" } } }),
  );
  const desired = desiredService("lb", "LoadBalancer", config, settings);
  it("has upstream's shape", () => {
    assert.deepEqual(desired.spec, {
      type: "LoadBalancer",
      ports: [{ protocol: "TCP", port: 443, targetPort: 8444 }],
      selector: { app: "concierge" },
      loadBalancerIP: "1.2.3.4",
    });
    assert.equal(desired.metadata?.annotations?.[annotationKeysAnnotation], '["a","b"]');
  });
  it("patches only our fields, keeps foreign labels and annotations, drops removed spec keys", () => {
    const existing: Service = structuredClone(desired);
    existing.metadata = {
      ...existing.metadata,
      labels: { ...existing.metadata?.labels, foreign: "yes" },
      annotations: { ...existing.metadata?.annotations, "cloud.example/x": "kept" },
    };
    assert.equal(servicePatch(existing, desired), undefined);
    const fewer = desiredService("lb", "LoadBalancer", { ...config, annotations: { a: "9" } }, settings);
    assert.deepEqual(servicePatch(existing, fewer), {
      metadata: { annotations: { a: "9", b: null, [annotationKeysAnnotation]: '["a"]' } },
    });
    const none = desiredService(
      "lb",
      "LoadBalancer",
      { ...config, annotations: {}, loadBalancerIP: undefined },
      settings,
    );
    assert.deepEqual(servicePatch(existing, none), {
      metadata: { annotations: { a: null, b: null, [annotationKeysAnnotation]: null } },
      spec: { loadBalancerIP: null },
    });
  });
  it("ignores server defaults on ports", () => {
    const existing: Service = structuredClone(desired);
    existing.spec = {
      ...existing.spec,
      ports: [{ protocol: "TCP", port: 443, targetPort: 8444, nodePort: 31000 }],
    };
    assert.equal(servicePatch(existing, desired), undefined);
  });
});

describe("endpointInfo", () => {
  const lb = (ingress: { ip?: string; hostname?: string }[]): Service => ({
    status: { loadBalancer: { ingress } },
  });
  it("prefers externalEndpoint, then ClusterIP, then LB hostname, then IP", () => {
    const ext = validateSpec(spec({ externalEndpoint: "proxy.example.com:443" }));
    assert.deepEqual(endpointInfo(ext, undefined, undefined), {
      endpoint: "proxy.example.com",
      names: { dnsNames: ["proxy.example.com"] },
    });
    const extIP = validateSpec(spec({ externalEndpoint: "10.0.0.1:8443" }));
    assert.deepEqual(endpointInfo(extIP, undefined, undefined), {
      endpoint: "10.0.0.1:8443",
      names: { ips: ["10.0.0.1"] },
    });
    const cip = validateSpec(spec({ service: { type: "ClusterIP" } }));
    assert.deepEqual(
      endpointInfo(
        cip,
        { spec: { clusterIP: "10.96.0.5", clusterIPs: ["10.96.0.5", "fd00::5"] } },
        undefined,
      ),
      {
        endpoint: "10.96.0.5",
        names: { ips: ["10.96.0.5", "fd00::5"] },
      },
    );
    const auto = validateSpec(spec({}));
    assert.equal(endpointInfo(auto, undefined, undefined), undefined);
    assert.equal(endpointInfo(auto, undefined, lb([])), undefined);
    assert.deepEqual(endpointInfo(auto, undefined, lb([{ ip: "1.2.3.4" }, { hostname: "lb.example" }])), {
      endpoint: "lb.example",
      names: { dnsNames: ["lb.example"] },
    });
    assert.deepEqual(endpointInfo(auto, undefined, lb([{ ip: "bad" }, { ip: "::1" }])), {
      endpoint: "[::1]",
      names: { ips: ["::1"] },
    });
  });
});

describe("strategies", () => {
  it("have upstream's reasons and frontend", () => {
    assert.deepEqual(listening("1.2.3.4", "PEM"), {
      status: "Success",
      reason: "Listening",
      message: "impersonation proxy is ready to accept client connections",
      frontend: {
        type: "ImpersonationProxy",
        impersonationProxyInfo: { endpoint: "https://1.2.3.4", certificateAuthorityData: "UEVN" },
      },
    });
    assert.equal(setupError("x", false).reason, "ErrorDuringSetup");
    assert.equal(setupError("x", true).reason, "Pending");
  });
});
