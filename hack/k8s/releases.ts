// The Kubernetes releases hack/build-k8s.sh builds, read the way it reads them, so that tests and
// tools name the same release as the binaries they run: hack/k8s/versions lists them, and
// CONCIERGE_K8S_VERSION (a minor such as 1.30, or a full version) or else hack/k8s/default picks one.
import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** Every release hack/k8s/versions lists, oldest first, e.g. `1.30.14`. */
export async function listedVersions(): Promise<string[]> {
  const text = await readFile(join(import.meta.dirname, "versions"), "utf8");
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/** `1.30` or `1.30.14` (with or without a `v`) to the listed release; throws on one not listed. */
export function pickVersion(listed: string[], asked: string): string {
  const want = asked.trim().replace(/^v/, "");
  const found = listed.find((v) => v === want || v.split(".").slice(0, 2).join(".") === want);
  if (!found) throw new Error(`Kubernetes ${asked} is not in hack/k8s/versions (${listed.join(", ")})`);
  return found;
}

/** The named releases, or every listed one when none is named. */
export function pickVersions(listed: string[], asked: string[]): string[] {
  return asked.length === 0 ? listed : asked.map((a) => pickVersion(listed, a));
}

/** The release hack/build-k8s.sh builds in this environment, e.g. `1.37.2`. */
export async function selectedVersion(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const asked = env.CONCIERGE_K8S_VERSION || (await readFile(join(import.meta.dirname, "default"), "utf8"));
  return pickVersion(await listedVersions(), asked);
}
