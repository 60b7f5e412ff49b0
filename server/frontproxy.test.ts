import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import { FakeInformer } from "../controllers/runtime/testing.ts";
import { memoryLogger } from "../observability/logger.ts";
import { type TestPKI, testPKI } from "../test/harness/frontproxy-pki.ts";
import {
  type FrontProxyConfig,
  FrontProxyConfigHolder,
  frontProxyConfigFromConfigMap,
  pairHeaders,
  userFromHeaders,
  watchFrontProxyConfig,
} from "./frontproxy.ts";

const headers = (...pairs: [string, string][]) => pairs;
const adminHeaders = headers(["X-Remote-User", "kubernetes-admin"], ["X-Remote-Group", "system:masters"]);

const configMapData = (caPEM: string): Record<string, string> => ({
  "client-ca-file": "ignored",
  "requestheader-client-ca-file": caPEM,
  "requestheader-allowed-names": '["front-proxy-client"]',
  "requestheader-username-headers": '["X-Remote-User"]',
  "requestheader-group-headers": '["X-Remote-Group"]',
  "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
});

describe("front-proxy configuration", () => {
  it("reads kube-system/extension-apiserver-authentication", () => {
    assert.deepEqual(frontProxyConfigFromConfigMap(configMapData("PEM")), {
      caPEM: "PEM",
      allowedNames: ["front-proxy-client"],
      usernameHeaders: ["X-Remote-User"],
      uidHeaders: [],
      groupHeaders: ["X-Remote-Group"],
      extraHeaderPrefixes: ["X-Remote-Extra-"],
    });
    const withUID = { ...configMapData("PEM"), "requestheader-uid-headers": '["X-Remote-Uid"]' };
    assert.deepEqual(frontProxyConfigFromConfigMap(withUID).uidHeaders, ["X-Remote-Uid"]);
  });

  it("refuses a ConfigMap without request-header authentication", () => {
    assert.throws(() => frontProxyConfigFromConfigMap(undefined), /requestheader-client-ca-file is missing/);
    const noUser = { ...configMapData("PEM"), "requestheader-username-headers": "[]" };
    assert.throws(() => frontProxyConfigFromConfigMap(noUser), /username-headers is empty/);
    const bad = { ...configMapData("PEM"), "requestheader-allowed-names": "front-proxy-client" };
    assert.throws(() => frontProxyConfigFromConfigMap(bad));
  });
});

describe("front-proxy headers", () => {
  const config: FrontProxyConfig = {
    caPEM: "",
    allowedNames: [],
    usernameHeaders: ["X-Remote-User", "X-Other-User"],
    uidHeaders: ["X-Remote-Uid"],
    groupHeaders: ["X-Remote-Group"],
    extraHeaderPrefixes: ["X-Remote-Extra-"],
  };

  it("takes the first non-empty username, every group in order, and percent-decoded extras", () => {
    const result = userFromHeaders(
      config,
      headers(
        ["x-remote-user", ""],
        ["x-other-user", "alice"],
        ["x-remote-uid", "42"],
        ["X-Remote-Group", "a, b"],
        ["x-remote-group", "c"],
        ["x-remote-group", ""],
        ["X-Remote-Extra-Example.com%2fTenant", "t1"],
        ["x-remote-extra-example.com%2ftenant", "t2"],
        ["x-remote-extra-bad%zzkey", "v"],
        ["x-unrelated", "z"],
      ),
    );
    assert.deepEqual(result, {
      ok: true,
      user: {
        username: "alice",
        uid: "42",
        groups: ["a, b", "c"],
        extra: { "example.com/tenant": ["t1", "t2"], "bad%zzkey": ["v"] },
      },
    });
  });

  it("refuses a request without a username", () => {
    assert.deepEqual(userFromHeaders(config, headers(["X-Remote-Group", "g"])), {
      ok: false,
      reason: "no username header",
    });
  });

  it("pairs Node's raw header list", () => {
    assert.deepEqual(pairHeaders(["a", "1", "a", "2", "b"]), [
      ["a", "1"],
      ["a", "2"],
    ]);
  });
});

describe("front-proxy client certificates", () => {
  let pki: TestPKI;
  let holder: FrontProxyConfigHolder;
  const chain = (pem: string) => [new X509Certificate(pem)];

  before(async () => {
    pki = await testPKI();
    holder = new FrontProxyConfigHolder();
    holder.set(pki.config);
  });

  it("believes the headers of the allowed proxy client", () => {
    assert.deepEqual(holder.authenticate(chain(pki.proxyClient.certPEM), adminHeaders), {
      ok: true,
      user: { username: "kubernetes-admin", groups: ["system:masters"], extra: {} },
    });
  });

  it("refuses a certificate from another CA", () => {
    const result = holder.authenticate(chain(pki.foreignClient.certPEM), adminHeaders);
    assert.deepEqual(result, {
      ok: false,
      reason: "client certificate is not signed by the request-header CA",
    });
  });

  it("checks a connection's certificate again when the CA changes, not once for good", () => {
    // One parsed chain, as every request on one connection presents it.
    const connection = chain(pki.proxyClient.certPEM);
    const h = new FrontProxyConfigHolder();
    h.set(pki.config);
    assert.equal(h.authenticate(connection, adminHeaders).ok, true);
    h.set({ ...pki.config, caPEM: pki.servingCAPEM });
    assert.deepEqual(h.authenticate(connection, adminHeaders), {
      ok: false,
      reason: "client certificate is not signed by the request-header CA",
    });
    h.set(pki.config);
    assert.equal(h.authenticate(connection, adminHeaders).ok, true);
  });

  it("refuses a CN that is not allowed, unless no names are configured", () => {
    const result = holder.authenticate(chain(pki.disallowedClient.certPEM), adminHeaders);
    assert.deepEqual(result, {
      ok: false,
      reason: 'client certificate CN "someone-else" is not an allowed name',
    });
    const open = new FrontProxyConfigHolder();
    open.set({ ...pki.config, allowedNames: [] });
    assert.equal(open.authenticate(chain(pki.disallowedClient.certPEM), adminHeaders).ok, true);
  });

  it("refuses a certificate not meant for client authentication", () => {
    assert.deepEqual(holder.authenticate(chain(pki.serverOnly.certPEM), adminHeaders), {
      ok: false,
      reason: "client certificate is not for client authentication",
    });
  });

  it("refuses no certificate, an expired one, and everything before a configuration is loaded", () => {
    assert.deepEqual(holder.authenticate([], adminHeaders), { ok: false, reason: "no client certificate" });
    const later = new Date(Date.now() + 400 * 24 * 3600 * 1000);
    assert.deepEqual(holder.authenticate(chain(pki.proxyClient.certPEM), adminHeaders, later), {
      ok: false,
      reason: "client certificate has expired or is not yet valid",
    });
    assert.deepEqual(
      new FrontProxyConfigHolder().authenticate(chain(pki.proxyClient.certPEM), adminHeaders),
      {
        ok: false,
        reason: "front-proxy configuration not loaded",
      },
    );
  });

  it("keeps its configuration when a new one has no usable CA", () => {
    const h = new FrontProxyConfigHolder();
    h.set(pki.config);
    assert.throws(() => h.set({ ...pki.config, caPEM: "not a certificate" }), /holds no certificate/);
    assert.equal(h.get()?.caPEM, pki.frontProxyCAPEM);
  });

  it("follows the ConfigMap through an informer", () => {
    const informer = new FakeInformer<{
      metadata: { name: string; namespace: string };
      data?: Record<string, string>;
    }>();
    const h = new FrontProxyConfigHolder();
    const logs = memoryLogger();
    const stop = watchFrontProxyConfig(informer, h, logs.log);
    const cm = (data: Record<string, string>) => ({
      metadata: { name: "extension-apiserver-authentication", namespace: "kube-system" },
      data,
    });
    informer.upsert({ metadata: { name: "other", namespace: "kube-system" }, data: configMapData("x") });
    assert.equal(h.get(), undefined);
    informer.upsert(cm(configMapData(pki.frontProxyCAPEM)));
    assert.equal(h.authenticate(chain(pki.proxyClient.certPEM), adminHeaders).ok, true);
    informer.upsert(cm({ ...configMapData(pki.frontProxyCAPEM), "requestheader-client-ca-file": "garbage" }));
    assert.equal(h.get(), undefined);
    informer.upsert(cm(configMapData(pki.frontProxyCAPEM)));
    assert.ok(h.get());
    informer.remove("extension-apiserver-authentication", "kube-system");
    assert.equal(h.get(), undefined);
    assert.ok(
      logs.lines.some((l) => l.message === "front-proxy configuration is unusable; refusing every request"),
    );
    stop();
  });
});
