import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ClusterInfoResult, tokenCredentialRequestFrontend } from "./frontend.ts";

// Upstream's validClusterInfoConfigMap (kubecertagent_test.go).
const validKubeconfig = [
  "kind: Config",
  "apiVersion: v1",
  "clusters:",
  '- name: ""',
  "  cluster:",
  '    certificate-authority-data: dGVzdC1rdWJlcm5ldGVzLWNh # "test-kubernetes-ca"',
  "    server: https://test-kubernetes-endpoint.example.com",
  "",
].join("\n");

const extractPrefix =
  "could not extract Kubernetes API endpoint info from kube-public/cluster-info configmap: ";

function ok(server: string, certificateAuthorityData: string): ClusterInfoResult {
  return {
    ok: true,
    frontend: {
      type: "TokenCredentialRequestAPI",
      tokenCredentialRequestInfo: { server, certificateAuthorityData },
    },
  };
}

function failure(message: string): ClusterInfoResult {
  return { ok: false, reason: "CouldNotGetClusterInfo", message };
}

describe("tokenCredentialRequestFrontend (upstream's cluster-info cases)", () => {
  const cases: {
    name: string;
    data: Record<string, string> | undefined;
    override?: string;
    want: ClusterInfoResult;
  }[] = [
    {
      name: "configmap missing",
      data: undefined,
      want: failure(`failed to get kube-public/cluster-info configmap: configmap "cluster-info" not found`),
    },
    {
      name: "configmap missing key",
      data: {},
      want: failure(`${extractPrefix}missing "kubeconfig" key`),
    },
    {
      name: "configmap key has invalid data",
      data: { kubeconfig: "'" },
      want: failure(`${extractPrefix}key "kubeconfig" does not contain a valid kubeconfig`),
    },
    {
      name: "configmap kubeconfig has no clusters",
      data: { kubeconfig: "{}" },
      want: failure(`${extractPrefix}kubeconfig in key "kubeconfig" does not contain any clusters`),
    },
    {
      name: "configmap is valid",
      data: { kubeconfig: validKubeconfig },
      want: ok("https://test-kubernetes-endpoint.example.com", "dGVzdC1rdWJlcm5ldGVzLWNh"),
    },
    {
      name: "configmap is valid, overridden discovery URL",
      data: { kubeconfig: validKubeconfig },
      override: "https://overridden-server.example.com/some/path",
      want: ok("https://overridden-server.example.com/some/path", "dGVzdC1rdWJlcm5ldGVzLWNh"),
    },
    // What client-go's clientcmd.Load accepts and refuses, beyond upstream's own cases.
    {
      name: "an empty kubeconfig has no clusters",
      data: { kubeconfig: "" },
      want: failure(`${extractPrefix}kubeconfig in key "kubeconfig" does not contain any clusters`),
    },
    {
      name: "clusters: null has no clusters",
      data: { kubeconfig: "apiVersion: v1\nkind: Config\nclusters: null\n" },
      want: failure(`${extractPrefix}kubeconfig in key "kubeconfig" does not contain any clusters`),
    },
    {
      name: "JSON is YAML too",
      data: {
        kubeconfig: JSON.stringify({
          clusters: [{ name: "c", cluster: { server: "https://k", "certificate-authority-data": "Y2E=" } }],
        }),
      },
      want: ok("https://k", "Y2E="),
    },
    {
      name: "the first of several clusters",
      data: {
        kubeconfig: JSON.stringify({
          clusters: [
            { name: "a", cluster: { server: "https://a", "certificate-authority-data": "YQ==" } },
            { name: "b", cluster: { server: "https://b", "certificate-authority-data": "Yg==" } },
          ],
        }),
      },
      want: ok("https://a", "YQ=="),
    },
    {
      name: "a cluster without a CA advertises an empty one, as upstream does",
      data: { kubeconfig: "clusters:\n- name: x\n  cluster:\n    server: https://k\n" },
      want: ok("https://k", ""),
    },
    {
      name: "CA data with line breaks is re-encoded on one line",
      data: {
        kubeconfig: JSON.stringify({
          clusters: [
            {
              name: "c",
              cluster: { server: "https://k", "certificate-authority-data": "dGVz\ndC1j\r\nYQ==" },
            },
          ],
        }),
      },
      want: ok("https://k", "dGVzdC1jYQ=="),
    },
    {
      name: "CA data that is not base64",
      data: {
        kubeconfig: JSON.stringify({
          clusters: [
            { name: "c", cluster: { server: "https://k", "certificate-authority-data": "not base64!" } },
          ],
        }),
      },
      want: failure(`${extractPrefix}key "kubeconfig" does not contain a valid kubeconfig`),
    },
    {
      name: "unpadded CA data",
      data: {
        kubeconfig: JSON.stringify({
          clusters: [{ name: "c", cluster: { server: "https://k", "certificate-authority-data": "YQ" } }],
        }),
      },
      want: failure(`${extractPrefix}key "kubeconfig" does not contain a valid kubeconfig`),
    },
    {
      name: "a duplicate cluster name",
      data: {
        kubeconfig: JSON.stringify({
          clusters: [
            { name: "a", cluster: { server: "https://a" } },
            { name: "a", cluster: { server: "https://b" } },
          ],
        }),
      },
      want: failure(`${extractPrefix}key "kubeconfig" does not contain a valid kubeconfig`),
    },
    {
      name: "another kind",
      data: { kubeconfig: "apiVersion: v1\nkind: Pod\n" },
      want: failure(`${extractPrefix}key "kubeconfig" does not contain a valid kubeconfig`),
    },
    {
      name: "another apiVersion",
      data: { kubeconfig: "apiVersion: v2\nkind: Config\n" },
      want: failure(`${extractPrefix}key "kubeconfig" does not contain a valid kubeconfig`),
    },
    {
      name: "a server that is not a string",
      data: { kubeconfig: "clusters:\n- name: x\n  cluster:\n    server: [1]\n" },
      want: failure(`${extractPrefix}key "kubeconfig" does not contain a valid kubeconfig`),
    },
    {
      name: "clusters that are not a list",
      data: { kubeconfig: "clusters: {}\n" },
      want: failure(`${extractPrefix}key "kubeconfig" does not contain a valid kubeconfig`),
    },
    {
      name: "a document that is not an object",
      data: { kubeconfig: "- a\n- b\n" },
      want: failure(`${extractPrefix}key "kubeconfig" does not contain a valid kubeconfig`),
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const configMap = c.data && { data: c.data };
      assert.deepEqual(tokenCredentialRequestFrontend(configMap, c.override), c.want);
    });
  }
});
