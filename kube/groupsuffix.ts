// The API group suffix (upstream's internal/groupsuffix): every Concierge group is written
// `<prefix>.pinniped.dev` in the code, and an install may serve it as `<prefix>.<suffix>`
// instead (`authentication.concierge.acme.example`), so that two Concierges, or a vendor's
// build, can share one cluster. The code keeps the `pinniped.dev` names; the edges (the API
// client, the aggregated API, the admission webhook, the TokenCredentialRequest's authenticator
// reference) map them with one `GroupSuffix`.

import { isObject } from "./isobject.ts";

export const defaultAPIGroupSuffix = "pinniped.dev";

const pinnipedTail = `.${defaultAPIGroupSuffix}`;

// k8s.io/apimachinery's IsDNS1123Subdomain.
const dns1123Label = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const dns1123Subdomain = new RegExp(`^${dns1123Label}(\\.${dns1123Label})*$`);

/**
 * Upstream's groupsuffix.Validate: the reasons a suffix is refused (none when it is valid), in
 * upstream's words.
 */
export function apiGroupSuffixErrors(suffix: string): string[] {
  const errors: string[] = [];
  if (suffix.length > 253) errors.push("must be no more than 253 characters");
  if (!dns1123Subdomain.test(suffix)) {
    errors.push(
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', " +
        "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation " +
        "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
  }
  if (!suffix.includes(".")) errors.push("must contain '.'");
  return errors;
}

/** Maps the groups of one install between the code's names and the names it serves. */
export class GroupSuffix {
  readonly suffix: string;

  constructor(suffix: string = defaultAPIGroupSuffix) {
    const errors = apiGroupSuffixErrors(suffix);
    if (errors.length > 0)
      throw new Error(`invalid API group suffix ${JSON.stringify(suffix)}: ${errors.join("; ")}`);
    this.suffix = suffix;
  }

  /** True when groups are served under their own names (nothing to map). */
  get isDefault(): boolean {
    return this.suffix === defaultAPIGroupSuffix;
  }

  /** `login.concierge.pinniped.dev` → `login.concierge.<suffix>`; any other group is returned as is. */
  served(group: string): string {
    return isPinnipedGroup(group) ? `${group.slice(0, -pinnipedTail.length)}.${this.suffix}` : group;
  }

  /**
   * The inverse (upstream's Unreplace): `login.concierge.<suffix>` → `login.concierge.pinniped.dev`;
   * undefined for a group that does not end in the suffix.
   */
  internal(group: string): string | undefined {
    const tail = `.${this.suffix}`;
    if (!group.endsWith(tail) || group.length === tail.length) return undefined;
    return group.slice(0, -tail.length) + pinnipedTail;
  }

  /** An apiVersion (`group/version`, or `version` for the core group) with its group served. */
  servedAPIVersion(apiVersion: string): string {
    return mapGroupOf(apiVersion, (g) => this.served(g));
  }

  /** An apiVersion with a served group mapped back; others are returned as is. */
  internalAPIVersion(apiVersion: string): string {
    return mapGroupOf(apiVersion, (g) => this.internal(g) ?? g);
  }

  /**
   * A request path with its group served: `/apis/config.concierge.pinniped.dev/v1alpha1/...` →
   * `/apis/config.concierge.<suffix>/v1alpha1/...`; `mapped` says whether it named one of ours.
   */
  servedPath(path: string): { path: string; mapped: boolean } {
    const match = /^\/apis\/([^/?]+)(.*)$/s.exec(path);
    if (!match || !isPinnipedGroup(match[1]!) || this.isDefault) return { path, mapped: false };
    return { path: `/apis/${this.served(match[1]!)}${match[2]}`, mapped: true };
  }

  /**
   * An object as it is sent: its apiVersion and its owner references' served (upstream's client
   * middleware). A copy where anything changes; the input is never modified.
   */
  servedObject<T>(object: T): T {
    return this.#mapObject(object, (v) => this.servedAPIVersion(v));
  }

  /** An object (or a list and its items) as it was received, mapped back to the code's names. */
  internalObject<T>(object: T): T {
    const mapped = this.#mapObject(object, (v) => this.internalAPIVersion(v));
    if (!isObject(mapped) || !Array.isArray(mapped.items)) return mapped;
    const items = mapped.items.map((item) => this.#mapObject(item, (v) => this.internalAPIVersion(v)));
    return items.every((item, i) => item === (mapped.items as unknown[])[i]) ? mapped : { ...mapped, items };
  }

  #mapObject<T>(object: T, map: (apiVersion: string) => string): T {
    if (this.isDefault || !isObject(object)) return object;
    let out: Record<string, unknown> = object;
    if (typeof object.apiVersion === "string") {
      const apiVersion = map(object.apiVersion);
      if (apiVersion !== object.apiVersion) out = { ...out, apiVersion };
    }
    const metadata = object.metadata;
    if (isObject(metadata) && Array.isArray(metadata.ownerReferences)) {
      let changed = false;
      const ownerReferences = metadata.ownerReferences.map((ref: unknown) => {
        if (!isObject(ref) || typeof ref.apiVersion !== "string") return ref;
        const apiVersion = map(ref.apiVersion);
        if (apiVersion === ref.apiVersion) return ref;
        changed = true;
        return { ...ref, apiVersion };
      });
      if (changed) out = { ...out, metadata: { ...metadata, ownerReferences } };
    }
    return out as T;
  }
}

function isPinnipedGroup(group: string): boolean {
  return group.endsWith(pinnipedTail) && group.length > pinnipedTail.length;
}

function mapGroupOf(apiVersion: string, map: (group: string) => string): string {
  const slash = apiVersion.lastIndexOf("/");
  if (slash <= 0) return apiVersion;
  return `${map(apiVersion.slice(0, slash))}${apiVersion.slice(slash)}`;
}
