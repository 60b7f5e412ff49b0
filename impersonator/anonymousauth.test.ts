import assert from "node:assert/strict";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { CertificateAuthority } from "../certs/ca.ts";
import { issueServingCertificate } from "../certs/issue.ts";
import { FakeClock } from "../kube/clock.ts";
import { clusterAnonymousPolicy, probeAnonymousAuthentication } from "./anonymousauth.ts";
import { parseRequestInfo } from "./requestinfo.ts";

describe("probing whether the cluster allows anonymous authentication", () => {
  let server: Server;
  let caPEM: string;
  let url: string;
  let answer = 200;
  const seen: { path: string | undefined; authorization: string | undefined }[] = [];

  before(async () => {
    const ca = await CertificateAuthority.create("probe test CA", 3_600_000);
    const serving = await issueServingCertificate(ca, { ips: ["127.0.0.1"] }, 3_600_000);
    caPEM = ca.certPEM;
    server = createServer({ cert: serving.certPEM, key: serving.keyPEM }, (req, res) => {
      seen.push({ path: req.url, authorization: req.headers.authorization });
      res.writeHead(answer, { "content-type": "text/plain" });
      res.end(answer === 200 ? "ok" : "no");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  for (const [code, enabled] of [
    [200, true],
    [403, true],
    [401, false],
  ] as const) {
    it(`reads HTTP ${code} from GET /healthz without credentials as ${enabled ? "on" : "off"}`, async () => {
      answer = code;
      seen.length = 0;
      assert.equal(await probeAnonymousAuthentication({ url, caPEM })(AbortSignal.timeout(5000)), enabled);
      assert.deepEqual(seen, [{ path: "/healthz", authorization: undefined }]);
    });
  }

  it("keeps the URL's path and rejects any other answer", async () => {
    answer = 500;
    seen.length = 0;
    await assert.rejects(
      probeAnonymousAuthentication({ url: `${url}/prefix/`, caPEM })(AbortSignal.timeout(5000)),
      /unexpected HTTP 500/,
    );
    assert.equal(seen[0]?.path, "/prefix/healthz");
  });

  it("verifies kube-apiserver's certificate", async () => {
    const other = await CertificateAuthority.create("another CA", 3_600_000);
    await assert.rejects(
      probeAnonymousAuthentication({ url, caPEM: other.certPEM })(AbortSignal.timeout(5000)),
    );
  });
});

describe("the cluster's anonymous policy", () => {
  const info = (method: string, path: string) => parseRequestInfo(method, path);
  const tcr = info("POST", "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests");
  const whoami = info("POST", "/apis/identity.concierge.pinniped.dev/v1alpha1/whoamirequests");
  const pods = info("GET", "/api/v1/namespaces/kube-system/pods/x");
  const healthz = info("GET", "/healthz");
  const signal = () => new AbortController().signal;

  function setUp(answers: (boolean | Error)[]) {
    const clock = new FakeClock();
    let probes = 0;
    const policy = clusterAnonymousPolicy({
      clock,
      probe: async () => {
        const a = answers[Math.min(probes++, answers.length - 1)]!;
        if (a instanceof Error) throw a;
        return a;
      },
      ttlMs: 60_000,
      retryMs: 5_000,
    });
    return { clock, policy, probes: () => probes };
  }

  it("always lets the credential requests in, without asking the cluster", async () => {
    const { policy, probes } = setUp([false]);
    assert.equal(await policy(tcr, signal()), true);
    assert.equal(await policy(whoami, signal()), true);
    assert.equal(probes(), 0);
  });

  it("lets every request in when the cluster allows anonymous authentication", async () => {
    const { policy } = setUp([true]);
    assert.equal(await policy(healthz, signal()), true);
    assert.equal(await policy(pods, signal()), true);
  });

  it("refuses other requests when it does not", async () => {
    const { policy } = setUp([false]);
    assert.equal(await policy(healthz, signal()), false);
    assert.equal(await policy(pods, signal()), false);
  });

  it("asks once for concurrent requests and again only after the TTL", async () => {
    const { clock, policy, probes } = setUp([true, false]);
    assert.deepEqual(await Promise.all([policy(pods, signal()), policy(healthz, signal())]), [true, true]);
    assert.equal(probes(), 1);
    await clock.advance(59_999);
    assert.equal(await policy(pods, signal()), true);
    assert.equal(probes(), 1);
    await clock.advance(1);
    assert.equal(await policy(pods, signal()), false);
    assert.equal(probes(), 2);
  });

  it("holds the narrow policy while the cluster cannot be asked, and asks again soon", async () => {
    const { clock, policy, probes } = setUp([new Error("connection refused"), true]);
    assert.equal(await policy(pods, signal()), false);
    assert.equal(await policy(tcr, signal()), true);
    await clock.advance(4_999);
    assert.equal(await policy(pods, signal()), false);
    assert.equal(probes(), 1);
    await clock.advance(1);
    assert.equal(await policy(pods, signal()), true);
    assert.equal(probes(), 2);
  });
});
