// The local control plane is a real one: these are the properties later tests rely on.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import { selectedVersion } from "../../hack/k8s/releases.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";

const openssl = promisify(execFile);

describe("local control plane", () => {
  let c: TestCluster;
  before(async () => {
    c = await testCluster();
  });

  it("serves kubectl with the pinned server version", async () => {
    const res = await c.kubectl(["version", "-o", "json"]);
    assert.equal(res.code, 0, res.stderr);
    const version = JSON.parse(res.stdout) as { serverVersion: { gitVersion: string } };
    assert.equal(version.serverVersion.gitVersion, `v${await selectedVersion()}`);
    const ns = await c.kubectl(["get", "ns", "-o", "name"]);
    assert.match(ns.stdout, /namespace\/kube-system/);
  });

  it("publishes aggregation (front-proxy) settings for extension API servers", async () => {
    const res = await c.kubectl([
      "get",
      "configmap",
      "-n",
      "kube-system",
      "extension-apiserver-authentication",
      "-o",
      "json",
    ]);
    assert.equal(res.code, 0, res.stderr);
    const data = (JSON.parse(res.stdout) as { data: Record<string, string> }).data;
    assert.match(data["requestheader-client-ca-file"] ?? "", /BEGIN CERTIFICATE/);
    assert.equal(data["requestheader-allowed-names"], '["front-proxy-client"]');
    assert.equal(data["requestheader-username-headers"], '["X-Remote-User"]');
    assert.match(data["client-ca-file"] ?? "", /BEGIN CERTIFICATE/);
  });

  it("publishes kube-public/cluster-info like kubeadm", async () => {
    const res = await c.kubectl(["get", "configmap", "-n", "kube-public", "cluster-info", "-o", "json"]);
    assert.equal(res.code, 0, res.stderr);
    const kubeconfig = (JSON.parse(res.stdout) as { data: { kubeconfig: string } }).data.kubeconfig;
    assert.ok(kubeconfig.includes(`server: ${c.server}`));
  });

  it("runs kube-controller-manager: a Deployment gets a ReplicaSet and Pods", async () => {
    const ns = await c.newNamespace("kcm");
    const create = await c.kubectl(["create", "deployment", "web", "--image=registry.invalid/web", "-n", ns]);
    assert.equal(create.code, 0, create.stderr);
    await eventually("a pod of the deployment", async () => {
      const pods = await c.kubectl(["get", "pods", "-n", ns, "-l", "app=web", "-o", "name"]);
      return pods.stdout.trim() ? pods.stdout : undefined;
    });
  });

  it("signs CSRs with the cluster CA, whose certificates then authenticate", async () => {
    const dir = await mkdtemp(join(tmpdir(), "concierge-csr-"));
    try {
      const user = c.uniqueName("csr-user");
      await openssl("openssl", [
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-subj",
        `/O=csr-testers/CN=${user}`,
        "-out",
        join(dir, "req.pem"),
      ]);
      const request = (await readFile(join(dir, "req.pem"))).toString("base64");
      const csr = {
        apiVersion: "certificates.k8s.io/v1",
        kind: "CertificateSigningRequest",
        metadata: { name: user },
        spec: { request, signerName: "kubernetes.io/kube-apiserver-client", usages: ["client auth"] },
      };
      assert.equal((await c.kubectl(["create", "-f", "-"], { input: JSON.stringify(csr) })).code, 0);
      const approve = await c.kubectl(["certificate", "approve", user]);
      assert.equal(approve.code, 0, approve.stderr);
      const certificate = await eventually("the signed certificate", async () => {
        const res = await c.kubectl(["get", "csr", user, "-o", "jsonpath={.status.certificate}"]);
        return res.stdout.trim() || undefined;
      });
      await writeFile(join(dir, "cert.pem"), Buffer.from(certificate, "base64"));
      const kubeconfig = join(dir, "kubeconfig");
      const admin = await readFile(c.kubeconfigPath, "utf8");
      const ca = /certificate-authority-data: (\S+)/.exec(admin)?.[1];
      await writeFile(
        kubeconfig,
        [
          "apiVersion: v1",
          "kind: Config",
          `clusters: [{name: c, cluster: {server: "${c.server}", certificate-authority-data: ${ca}}}]`,
          `users: [{name: u, user: {client-certificate: ${join(dir, "cert.pem")}, client-key: ${join(dir, "key.pem")}}}]`,
          "contexts: [{name: x, context: {cluster: c, user: u}}]",
          "current-context: x",
        ].join("\n"),
      );
      const whoami = await c.kubectl(["auth", "whoami", "-o", "json"], { kubeconfig });
      assert.equal(whoami.code, 0, whoami.stderr);
      const status = (
        JSON.parse(whoami.stdout) as { status: { userInfo: { username: string; groups: string[] } } }
      ).status.userInfo;
      assert.equal(status.username, user);
      assert.ok(status.groups.includes("csr-testers"));
      const forbidden = await c.kubectl(["get", "secrets", "-n", "kube-system"], { kubeconfig });
      assert.notEqual(forbidden.code, 0);
      assert.match(forbidden.stderr, /forbidden/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
