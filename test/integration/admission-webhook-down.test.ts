// The installed webhook registration while the Concierge is down (its URL refuses connections,
// failurePolicy Fail): creates and spec changes are refused with kube-apiserver's `failed calling
// webhook`, but labels, annotations, a re-apply of the same spec and deletes go through, since
// matchConditions keep requests that cannot change validity away from the webhook. That is what
// lets a GitOps sync that brings up the Deployment and the authenticators together make progress.
//
// The control plane is shared, so the registration carries an objectSelector on a label only
// this file's objects have (kube-apiserver matches it against the old object as well as the new).
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { newCA } from "../../hack/pki.ts";
import { renderValidatingWebhookConfiguration } from "../../webhooks/registration.ts";
import { type TestCluster, testCluster } from "../harness/cluster.ts";
import { eventually } from "../harness/eventually.ts";

const group = "authentication.concierge.pinniped.dev";
const label = "concierge.test/admission-down";
const polling = { timeoutMs: 30_000, intervalMs: 100 };

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("admission webhook while the Concierge is down", () => {
  let c: TestCluster;
  let dir: string;
  let selectorValue: string;
  let configName: string;

  const jwt = (name: string, audience = "concierge") => ({
    apiVersion: `${group}/v1alpha1`,
    kind: "JWTAuthenticator",
    metadata: { name },
    spec: { issuer: "https://issuer.example.com", audience },
  });
  const create = (object: unknown) => c.kubectl(["create", "-f", "-"], { input: JSON.stringify(object) });

  before(async () => {
    c = await testCluster();
    selectorValue = c.uniqueName("down");
    configName = c.uniqueName("concierge-test-down");
    dir = await mkdtemp(join(tmpdir(), "admission-webhook-down-"));
    const ca = await newCA(dir, "ca", "unreachable webhook test CA");
    const config = await renderValidatingWebhookConfiguration({
      baseURL: `https://127.0.0.1:${await closedPort()}`,
      caBundlePEM: await readFile(ca.cert, "utf8"),
      name: configName,
      objectSelector: { matchLabels: { [label]: selectorValue } },
    });
    const res = await c.kubectl(["create", "-f", "-"], { input: JSON.stringify(config) });
    assert.equal(res.code, 0, res.stderr);
    // kube-apiserver picks up webhook configurations from a watch: wait until ours refuses.
    const probe = jwt(c.uniqueName("probe"));
    await eventually(
      "the webhook to be called",
      async () =>
        (
          await c.kubectl(["create", "--dry-run=server", "-f", "-"], {
            input: JSON.stringify({
              ...probe,
              metadata: { ...probe.metadata, labels: { [label]: selectorValue } },
            }),
          })
        ).stderr.includes("failed calling webhook"),
      polling,
    );
  });

  after(async () => {
    await c?.kubectl(["delete", "validatingwebhookconfiguration", configName, "--ignore-not-found"]);
    await c?.kubectl(["delete", "jwtauthenticators", "-l", `${label}=${selectorValue}`, "--wait=false"]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("refuses a create, lets labels, annotations, a same-spec apply and a delete through, and refuses a spec change", async () => {
    const name = c.uniqueName("jwt");
    const labelled = jwt(name);
    const refused = await create({ ...labelled, metadata: { name, labels: { [label]: selectorValue } } });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /failed calling webhook/);

    // Stored without the label (the selector skips it), then brought under the webhook.
    const created = await create(labelled);
    assert.equal(created.code, 0, created.stderr);
    const labelledNow = await c.kubectl(["label", "jwtauthenticator", name, `${label}=${selectorValue}`]);
    assert.equal(labelledNow.code, 0, labelledNow.stderr);
    const annotated = await c.kubectl(["annotate", "jwtauthenticator", name, "example.com/owner=team-a"]);
    assert.equal(annotated.code, 0, annotated.stderr);
    const sameSpec = await c.kubectl(
      ["apply", "--server-side", "--force-conflicts", "--field-manager=gitops-test", "-f", "-"],
      {
        input: JSON.stringify({
          ...labelled,
          metadata: { name, labels: { [label]: selectorValue, tier: "x" } },
        }),
      },
    );
    assert.equal(sameSpec.code, 0, sameSpec.stderr);

    const changed = await c.kubectl([
      "patch",
      "jwtauthenticator",
      name,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { audience: "another" } }),
    ]);
    assert.notEqual(changed.code, 0);
    assert.match(changed.stderr, /failed calling webhook/);

    const deleted = await c.kubectl(["delete", "jwtauthenticator", name]);
    assert.equal(deleted.code, 0, deleted.stderr);
  });
});
