import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "../kube/rest.ts";
import { memoryLogger } from "../observability/logger.ts";
import { imageOfPod, ownImage } from "./ownimage.ts";

const pod = {
  spec: {
    containers: [
      { name: "sidecar", image: "example.com/sidecar:1" },
      { name: "pinniped-concierge", image: "registry.example.com/pinniped-concierge@sha256:abc" },
    ],
    imagePullSecrets: [{ name: "registry-credentials" }],
  },
};

describe("the Concierge's own image", () => {
  it("is the named container's, with the Pod's pull secrets", () => {
    assert.deepEqual(imageOfPod(pod, "pinniped-concierge"), {
      image: "registry.example.com/pinniped-concierge@sha256:abc",
      imagePullSecrets: ["registry-credentials"],
    });
  });

  it("is the first container's when none has the name, and unknown without containers", () => {
    assert.equal(imageOfPod(pod, "renamed")?.image, "example.com/sidecar:1");
    assert.equal(imageOfPod({ spec: { containers: [] } }, "pinniped-concierge"), undefined);
  });

  it("is read from the Pod named by the process's POD_NAME, in its namespace", async () => {
    const paths: string[] = [];
    const found = await ownImage(
      {
        request: async <T>(options: { path: string }) => {
          paths.push(options.path);
          return pod as T;
        },
        stream: async () => {},
      },
      {
        namespace: "pinniped-concierge",
        name: "pinniped-concierge-abc",
        containerName: "pinniped-concierge",
      },
      memoryLogger().log,
    );
    assert.deepEqual(paths, ["/api/v1/namespaces/pinniped-concierge/pods/pinniped-concierge-abc"]);
    assert.equal(found?.image, "registry.example.com/pinniped-concierge@sha256:abc");
  });

  it("is unknown, with a warning naming the Pod, when the Pod cannot be read", async () => {
    const { log, lines } = memoryLogger();
    const found = await ownImage(
      {
        request: async () => {
          throw new ApiError(403, "forbidden");
        },
        stream: async () => {},
      },
      { namespace: "ns", name: "p", containerName: "pinniped-concierge" },
      log,
    );
    assert.equal(found, undefined);
    assert.ok(lines.some((l) => String(l.message).includes("own Pod") && JSON.stringify(l).includes("ns/p")));
  });
});
