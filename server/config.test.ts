import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, configFromObject, defaults, parseConfig, readDownwardAPI } from "./config.ts";

const env = { env: {}, readNamespaceFile: () => "concierge-ns" };

function errorOf(text: string): string {
  try {
    parseConfig(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail("the config was accepted");
}

describe("config file", () => {
  it("fills every default from an empty file", () => {
    const c = parseConfig("", env);
    assert.deepEqual(c, {
      namespace: "concierge-ns",
      names: {
        servingCertificateSecret: "pinniped-concierge-api-tls-serving-certificate",
        credentialIssuer: "pinniped-concierge-config",
        apiService: "pinniped-concierge-api",
        agentServiceAccount: "pinniped-concierge-kube-cert-agent",
        deployment: "pinniped-concierge",
        validatingWebhookConfiguration: "pinniped-concierge-authenticators",
        impersonationLoadBalancerService: "pinniped-concierge-impersonation-proxy-load-balancer",
        impersonationClusterIPService: "pinniped-concierge-impersonation-proxy-cluster-ip",
        impersonationTLSCertificateSecret: "pinniped-concierge-impersonation-proxy-tls-serving-certificate",
        impersonationCACertificateSecret: "pinniped-concierge-impersonation-proxy-ca-certificate",
        impersonationSignerSecret: "pinniped-concierge-impersonation-proxy-signer-ca-certificate",
        impersonationProxyServiceAccount: "pinniped-concierge-impersonation-proxy",
        jwtSigningKeySecret: "pinniped-concierge-jwt-signing-keys",
      },
      labels: {},
      apiGroupSuffix: "pinniped.dev",
      api: { servingCertificate: { durationSeconds: 2592000, renewBeforeSeconds: 2160000 } },
      aggregatedAPIServerPort: 10250,
      healthPort: 8080,
      tokenCredentialRequest: { clientCertificateTTLSeconds: 300 },
      impersonationProxyServerPort: 8444,
      tls: { oneDotTwoAllowedCiphers: [] },
      impersonationProxy: { pingIntervalSeconds: 30, upgradeIdleTimeoutSeconds: 0 },
      kubeCertAgent: {
        namePrefix: "pinniped-concierge-kube-cert-agent-",
        imagePullSecrets: [],
        priorityClassName: "",
      },
      audit: { logUsernamesAndGroups: false },
      logLevel: "info",
      logFormat: "json",
      extraServingSANs: [],
      outbound: { allowLinkLocalAddresses: false },
      warnings: [],
      strategies: {
        order: [
          "KubeClusterSigningCertificate",
          "SecretSigningCertificate",
          "CertificateSigningRequestAPI",
          "JWTCredential",
          "ImpersonationProxy",
        ],
      },
    });
  });

  // Upstream's deploy/concierge/deployment.yaml rendered with its values.yaml defaults (ytt), the
  // ConfigMap that upstream's install writes.
  const upstreamRendered = `discovery:
  url: null
api:
  servingCertificate:
    durationSeconds: 2592000
    renewBeforeSeconds: 2160000
apiGroupSuffix: pinniped.dev
# aggregatedAPIServerPort may be set here, although other YAML references to the default port (10250) may also need to be updated
# impersonationProxyServerPort may be set here, although other YAML references to the default port (8444) may also need to be updated
aggregatedAPIServerDisableAdmissionPlugins: []
names:
  servingCertificateSecret: pinniped-concierge-api-tls-serving-certificate
  credentialIssuer: pinniped-concierge-config
  apiService: pinniped-concierge-api
  impersonationLoadBalancerService: pinniped-concierge-impersonation-proxy-load-balancer
  impersonationClusterIPService: pinniped-concierge-impersonation-proxy-cluster-ip
  impersonationTLSCertificateSecret: pinniped-concierge-impersonation-proxy-tls-serving-certificate
  impersonationCACertificateSecret: pinniped-concierge-impersonation-proxy-ca-certificate
  impersonationSignerSecret: pinniped-concierge-impersonation-proxy-signer-ca-certificate
  agentServiceAccount: pinniped-concierge-kube-cert-agent
  impersonationProxyServiceAccount: pinniped-concierge-impersonation-proxy
  impersonationProxyLegacySecret: pinniped-concierge-impersonation-proxy
labels: {"app":"pinniped-concierge"}
kubeCertAgent:
  namePrefix: pinniped-concierge-kube-cert-agent-
  
  image: ghcr.io/vmware-tanzu/pinniped/pinniped-server:latest
  
  
  
tls:
  onedottwo:
    allowedCiphers: []
audit:
  logUsernamesAndGroups: disabled
`;

  it("loads upstream's default rendered ConfigMap without a warning", () => {
    const c = parseConfig(upstreamRendered, env);
    assert.equal(c.names.credentialIssuer, "pinniped-concierge-config");
    assert.deepEqual(c.labels, { app: "pinniped-concierge" });
    assert.equal(c.kubeCertAgent.image, "ghcr.io/vmware-tanzu/pinniped/pinniped-server:latest");
    assert.equal(c.discovery, undefined);
    assert.equal(c.audit.logUsernamesAndGroups, false);
    assert.deepEqual(c.warnings, []);
  });

  it("accepts upstream's keys that have no effect here with one warning line each", () => {
    const c = parseConfig("aggregatedAPIServerDisableAdmissionPlugins: [ValidatingAdmissionPolicy]", env);
    assert.equal(c.warnings.length, 1);
    assert.match(
      c.warnings[0] ?? "",
      /^aggregatedAPIServerDisableAdmissionPlugins is accepted and has no effect/,
    );
  });

  it("takes tls.onedottwo.allowedCiphers by upstream's names, its legacy ones made current", () => {
    const c = parseConfig(
      "tls: {onedottwo: {allowedCiphers: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305]}}",
      env,
    );
    assert.deepEqual(c.tls.oneDotTwoAllowedCiphers, [
      "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
      "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ]);
    assert.deepEqual(c.warnings, []);
    assert.deepEqual(
      parseConfig("tls: {onedottwo: {allowedCiphers: null}}", env).tls.oneDotTwoAllowedCiphers,
      [],
    );
  });

  it("reads the pod's name and namespace from upstream's --downward-api-path folder", (t) => {
    const dir = mkdtempSync(join(tmpdir(), "downward-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    assert.deepEqual(readDownwardAPI(dir), {});
    writeFileSync(join(dir, "name"), "pinniped-concierge-abc");
    writeFileSync(join(dir, "namespace"), "upstream-ns\n");
    assert.deepEqual(readDownwardAPI(dir), { name: "pinniped-concierge-abc", namespace: "upstream-ns" });
  });

  it("takes every key it knows", () => {
    const c = parseConfig(
      [
        "namespace: elsewhere",
        "names:",
        "  servingCertificateSecret: s",
        "  credentialIssuer: ci",
        "  apiService: svc",
        "  agentServiceAccount: agent-sa",
        "  deployment: dep",
        "  validatingWebhookConfiguration: vwc",
        "  impersonationLoadBalancerService: lb",
        "  impersonationClusterIPService: cip",
        "  impersonationTLSCertificateSecret: tls",
        "  impersonationCACertificateSecret: ca",
        "  impersonationSignerSecret: signer",
        "  impersonationProxyServiceAccount: proxy-sa",
        "  jwtSigningKeySecret: jwt-keys",
        "  impersonationProxyLegacySecret: ignored",
        'labels: {"app": "x", "team": "y"}',
        "api: {servingCertificate: {durationSeconds: 3600, renewBeforeSeconds: 1800}}",
        "apiGroupSuffix: acme.example",
        "aggregatedAPIServerPort: 20250",
        "impersonationProxyServerPort: 20444",
        "impersonationProxy: {pingIntervalSeconds: 5, upgradeIdleTimeoutSeconds: 3600}",
        "metricsPort: 9090",
        "tokenCredentialRequest: {clientCertificateTTLSeconds: 600}",
        "kubeCertAgent: {namePrefix: a-, image: img, imagePullSecrets: [pull], priorityClassName: high.prio}",
        "audit: {logUsernamesAndGroups: enabled}",
        "log: {level: debug, format: json}",
        "extraServingSANs: [localhost, 127.0.0.1]",
        "outbound: {allowLinkLocalAddresses: true}",
      ].join("\n"),
      env,
    );
    assert.equal(c.namespace, "elsewhere");
    assert.deepEqual(c.names, {
      servingCertificateSecret: "s",
      credentialIssuer: "ci",
      apiService: "svc",
      agentServiceAccount: "agent-sa",
      deployment: "dep",
      validatingWebhookConfiguration: "vwc",
      impersonationLoadBalancerService: "lb",
      impersonationClusterIPService: "cip",
      impersonationTLSCertificateSecret: "tls",
      impersonationCACertificateSecret: "ca",
      impersonationSignerSecret: "signer",
      impersonationProxyServiceAccount: "proxy-sa",
      jwtSigningKeySecret: "jwt-keys",
    });
    assert.equal(c.impersonationProxyServerPort, 20444);
    assert.deepEqual(c.impersonationProxy, { pingIntervalSeconds: 5, upgradeIdleTimeoutSeconds: 3600 });
    assert.deepEqual(c.labels, { app: "x", team: "y" });
    assert.equal(c.apiGroupSuffix, "acme.example");
    assert.deepEqual(c.api.servingCertificate, { durationSeconds: 3600, renewBeforeSeconds: 1800 });
    assert.equal(c.aggregatedAPIServerPort, 20250);
    assert.equal(c.healthPort, 9090);
    assert.equal(c.tokenCredentialRequest.clientCertificateTTLSeconds, 600);
    assert.deepEqual(c.kubeCertAgent, {
      namePrefix: "a-",
      image: "img",
      imagePullSecrets: ["pull"],
      priorityClassName: "high.prio",
    });
    assert.equal(c.audit.logUsernamesAndGroups, true);
    assert.equal(c.logLevel, "debug");
    assert.deepEqual(c.extraServingSANs, ["localhost", "127.0.0.1"]);
    assert.deepEqual(c.outbound, { allowLinkLocalAddresses: true });
  });

  it("takes upstream's discovery.url and the agent's user and group", () => {
    const c = parseConfig(
      "discovery: {url: https://api.example.com:6443}\nkubeCertAgent: {runAsUser: 1001, runAsGroup: 1002}",
      env,
    );
    assert.deepEqual(c.discovery, { url: "https://api.example.com:6443" });
    assert.equal(c.kubeCertAgent.runAsUser, 1001);
    assert.equal(c.kubeCertAgent.runAsGroup, 1002);
    assert.equal(parseConfig("discovery: {url: null}", env).discovery, undefined);
  });

  it("maps upstream's log levels, including the deprecated top-level logLevel", () => {
    const level = (text: string) => parseConfig(text, env).logLevel;
    assert.equal(level('log: {level: ""}'), "warn");
    assert.equal(level("log: {level: info}"), "info");
    assert.equal(level("log: {level: trace}"), "trace");
    assert.equal(level("log: {level: all}"), "trace");
    assert.equal(level("logLevel: debug"), "debug");
    assert.equal(level("logLevel: debug\nlog: {level: debug}"), "debug");
    assert.equal(parseConfig("log: {format: text}", env).logFormat, "text");
  });

  it("takes the namespace from POD_NAMESPACE before the ServiceAccount file", () => {
    assert.equal(
      configFromObject({}, { env: { POD_NAMESPACE: "from-env" }, readNamespaceFile: () => "from-file" })
        .namespace,
      "from-env",
    );
    assert.equal(
      configFromObject({}, { env: {}, readNamespaceFile: () => "from-file" }).namespace,
      "from-file",
    );
  });

  describe("refuses", () => {
    const cases: [string, string, string][] = [
      ["an unknown top-level key", "discover: {url: x}", "unknown key discover"],
      [
        "a discovery URL that is not https",
        "discovery: {url: http://x}",
        "validate discovery: url must be an https URL",
      ],
      ["a negative agent user", "kubeCertAgent: {runAsUser: -1}", "kubeCertAgent.runAsUser: must be >= 0"],
      [
        "an unknown nested key",
        "api: {servingCertificate: {duration: 1}}",
        "unknown key api.servingCertificate.duration",
      ],
      ["an unknown name", "names: {bogus: x}", "unknown key names.bogus"],
      [
        "a port that is not a number",
        "aggregatedAPIServerPort: high",
        "aggregatedAPIServerPort: must be integer",
      ],
      ["a label that is not a string", "labels: {a: {b: c}}", "labels.a: must be string"],
      ["an empty name", 'names: {apiService: ""}', "names.apiService: must NOT have fewer than 1 characters"],
      [
        "a privileged proxy port",
        "impersonationProxyServerPort: 443",
        "validate impersonationProxyServerPort: must be within range 1024 to 65535",
      ],
      [
        "the proxy on the API's port",
        "impersonationProxyServerPort: 10250",
        "validate impersonationProxyServerPort: must differ from aggregatedAPIServerPort and healthPort",
      ],
      [
        "a negative idle timeout",
        "impersonationProxy: {upgradeIdleTimeoutSeconds: -1}",
        "validate impersonationProxy: intervals and timeouts must not be negative (0 disables)",
      ],
      [
        "a negative renewBefore",
        "api: {servingCertificate: {renewBeforeSeconds: -1}}",
        "validate api: renewBefore must be positive",
      ],
      [
        "a zero renewBefore",
        "api: {servingCertificate: {renewBeforeSeconds: 0}}",
        "validate api: renewBefore must be positive",
      ],
      [
        "a duration shorter than renewBefore",
        "api: {servingCertificate: {durationSeconds: 10, renewBeforeSeconds: 20}}",
        "validate api: durationSeconds cannot be smaller than renewBeforeSeconds",
      ],
      [
        "a privileged aggregated API port",
        "aggregatedAPIServerPort: 443",
        "validate aggregatedAPIServerPort: must be within range 1024 to 65535",
      ],
      [
        "a cipher suite upstream does not know",
        "tls: {onedottwo: {allowedCiphers: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_RC4_128_SHA]}}",
        "validate tls.onedottwo.allowedCiphers: unrecognized ciphers [TLS_RSA_WITH_RC4_128_SHA], ciphers must be from list [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
      ],
      [
        "a health port out of range",
        "healthPort: 70000",
        "validate healthPort: must be within range 1024 to 65535",
      ],
      [
        "disagreeing health and metrics ports",
        "healthPort: 8080\nmetricsPort: 9090",
        "healthPort and metricsPort name the same listener",
      ],
      [
        "a health port equal to the API port",
        "healthPort: 10250",
        "validate healthPort: must differ from aggregatedAPIServerPort",
      ],
      [
        "a client certificate TTL below the bound",
        "tokenCredentialRequest: {clientCertificateTTLSeconds: 59}",
        "clientCertificateTTLSeconds must be within range 60 to 86400",
      ],
      [
        "a client certificate TTL above the bound",
        "tokenCredentialRequest: {clientCertificateTTLSeconds: 86401}",
        "clientCertificateTTLSeconds must be within range 60 to 86400",
      ],
      [
        "an invalid priority class",
        "kubeCertAgent: {priorityClassName: Not_Valid}",
        "validate kubeCertAgent: invalid priorityClassName: a lowercase RFC 1123 subdomain",
      ],
      [
        "an unknown audit setting",
        "audit: {logUsernamesAndGroups: yes-please}",
        "validate audit: invalid logUsernamesAndGroups format, valid choices are 'enabled', 'disabled', or empty string (equivalent to 'disabled')",
      ],
      [
        "an unknown log level",
        "log: {level: loud}",
        "invalid log level, valid choices are the empty string, info, debug, trace and all",
      ],
      ["disagreeing log levels", "logLevel: info\nlog: {level: debug}", "logLevel and log.level disagree"],
      [
        "an unknown log format",
        "log: {format: xml}",
        "invalid log format, valid choices are the empty string, 'json' and 'text'",
      ],
      [
        "an API group suffix without a dot",
        "apiGroupSuffix: example",
        "validate apiGroupSuffix: must contain '.'",
      ],
      [
        "an API group suffix that is no DNS subdomain",
        "apiGroupSuffix: Example.com",
        "validate apiGroupSuffix: a lowercase RFC 1123 subdomain must consist of",
      ],
      [
        "an admission plugin upstream does not know",
        "aggregatedAPIServerDisableAdmissionPlugins: [NoSuchPlugin]",
        "validate aggregatedAPIServerDisableAdmissionPlugins: admission plugin names not recognized: [NoSuchPlugin] (each must be one of [NamespaceLifecycle",
      ],
      ["an unknown tls key", "tls: {onedotthree: {}}", "unknown key tls.onedotthree"],
      ["an empty extra SAN", 'extraServingSANs: [""]', "extraServingSANs.0: must NOT have fewer than 1"],
      ["a list at the top", "- a", "the top level must be a mapping"],
      ["text that is not YAML", "a: [", "not YAML"],
    ];
    for (const [what, text, message] of cases) {
      it(what, () => assert.ok(errorOf(text).includes(message), errorOf(text)));
    }

    it("a missing namespace, naming where it looked", () => {
      assert.throws(
        () => configFromObject({}, { env: {}, readNamespaceFile: () => undefined }),
        /validate namespace: not set, and neither POD_NAMESPACE nor \/var\/run\/secrets/,
      );
    });

    it("with every problem listed at once", () => {
      const message = errorOf("aggregatedAPIServerPort: 1\nlog: {level: loud}");
      assert.match(message, /aggregatedAPIServerPort/);
      assert.match(message, /invalid log level/);
    });
  });

  it("keeps upstream's install defaults for the serving certificate", () => {
    assert.equal(defaults.durationSeconds, 30 * 24 * 3600);
    assert.equal(defaults.renewBeforeSeconds, 25 * 24 * 3600);
  });
});
