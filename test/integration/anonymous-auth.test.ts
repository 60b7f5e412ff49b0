// Whether the cluster lets callers without credentials in, asked as upstream's impersonation proxy
// asks it (an anonymous GET of /healthz), against two real kube-apiservers: the shared one, with
// kube-apiserver's default --anonymous-auth=true, and a dedicated one started with
// --anonymous-auth=false; and what the proxy's decider makes of each answer.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import { type ControlPlane, startControlPlane } from "../../hack/controlplane.ts";
import { clusterAnonymousPolicy, probeAnonymousAuthentication } from "../../impersonator/anonymousauth.ts";
import { createRequestDecider } from "../../impersonator/decider.ts";
import { refusalResponse } from "../../impersonator/headers.ts";
import type { Decision, IncomingRequest, RequestDecider } from "../../impersonator/types.ts";
import { realClock } from "../../kube/clock.ts";
import { KubeRestClient } from "../../kube/rest.ts";
import { testCluster } from "../harness/cluster.ts";

function target(kc: KubeConfig) {
  const cluster = kc.getCurrentCluster();
  assert.ok(cluster);
  const caPEM = cluster.caData
    ? Buffer.from(cluster.caData, "base64").toString("utf8")
    : readFileSync(cluster.caFile!, "utf8");
  return { url: cluster.server, caPEM };
}

function decider(kc: KubeConfig): RequestDecider {
  return createRequestDecider({
    client: new KubeRestClient(kc),
    proxyToken: () => "proxy-token",
    anonymousAllowed: clusterAnonymousPolicy({
      probe: probeAnonymousAuthentication(target(kc)),
      clock: realClock,
    }),
  });
}

const anonymous = (method: string, path: string): IncomingRequest => ({
  method,
  path,
  headers: {},
  verifiedClientCertificate: undefined,
  remoteAddress: "127.0.0.1",
  upgrade: false,
});

const forwardedAs = (d: Decision) => (d.action === "forward" ? d.headers["Impersonate-User"] : undefined);

describe("anonymous authentication, as the impersonation proxy detects it", { timeout: 120_000 }, () => {
  let open: KubeConfig;
  let closed: ControlPlane;

  before(async () => {
    open = (await testCluster()).kubeConfig();
    closed = await startControlPlane({ name: "no-anonymous", apiServerArgs: ["--anonymous-auth=false"] });
  });
  after(async () => {
    await closed?.stop();
  });

  it("reads kube-apiserver's default as allowing it and --anonymous-auth=false as not", async () => {
    assert.equal(await probeAnonymousAuthentication(target(open))(AbortSignal.timeout(10_000)), true);
    assert.equal(
      await probeAnonymousAuthentication(target(closed.kubeConfig()))(AbortSignal.timeout(10_000)),
      false,
    );
  });

  it("where it is allowed, forwards any anonymous request as system:anonymous once RBAC allows it", async () => {
    const decide = decider(open);
    const healthz = await decide(anonymous("GET", "/healthz"), AbortSignal.timeout(10_000));
    assert.equal(forwardedAs(healthz), "system:anonymous", JSON.stringify(healthz));
    const pod = await decide(
      anonymous("GET", "/api/v1/namespaces/kube-system/pods/does-not-matter"),
      AbortSignal.timeout(10_000),
    );
    assert.equal(pod.action, "refuse");
    assert.equal(
      (pod as { message: string }).message,
      'pods "does-not-matter" is forbidden: User "system:anonymous" cannot get resource "pods" in API group "" ' +
        'in the namespace "kube-system": decision made by impersonation-proxy.concierge.pinniped.dev',
    );
  });

  it("where it is not, answers upstream's 401 but still lets callers log in and ask who they are", async () => {
    const decide = decider(closed.kubeConfig());
    const healthz = await decide(anonymous("GET", "/healthz"), AbortSignal.timeout(10_000));
    assert.equal(healthz.action, "refuse");
    assert.deepEqual(refusalResponse(healthz as Extract<Decision, { action: "refuse" }>), {
      code: 401,
      contentType: "application/json",
      body: '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}\n',
    });
    for (const path of [
      "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests",
      "/apis/identity.concierge.pinniped.dev/v1alpha1/whoamirequests",
    ]) {
      const d = await decide(anonymous("POST", path), AbortSignal.timeout(10_000));
      assert.equal(forwardedAs(d), "system:anonymous", path);
    }
  });
});
