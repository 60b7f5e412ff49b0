// Renders the install (crds/ then config/, in apply order) as one YAML stream for another API group
// suffix, namespace and name, so that Concierges can share a cluster (upstream's ytt values
// `api_group_suffix`, `namespace`, `app_name`):
//
//   node hack/render-install.ts --api-group-suffix acme.example --namespace acme-concierge \
//     --name acme-concierge > acme.yaml && kubectl apply -f acme.yaml
//
// - suffix: every Concierge group (CRD names and groups, APIServices, RBAC rules and resource
//   names, the admission webhook's rules) becomes `<prefix>.concierge.<suffix>`, and the config
//   file's `apiGroupSuffix` says so;
// - namespace: the Concierge's objects and every reference to them (RBAC subjects, the
//   APIServices' and the webhook's Service);
// - name: every object name that starts with `pinniped-concierge` (ClusterRoles and their
//   bindings, the webhook configuration, the Roles in kube-system and kube-public, the
//   ServiceAccounts, Services, Deployment and its Lease, and every name in the config file), and
//   the `app` label.
// Cluster-scoped names then differ from another install's as long as both the suffix and the name
// differ. The container's name and command stay: they name the image's program.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { isPair, isScalar, parseAllDocuments, parseDocument, type Scalar, visit } from "yaml";
import { kinds } from "../apis/index.ts";
import { apiGroupSuffixErrors, defaultAPIGroupSuffix, GroupSuffix } from "../kube/groupsuffix.ts";
import { defaults } from "../server/config.ts";
import { repoRoot } from "./gen-kustomize.ts";

/** The install's own values (config/). */
export const defaultName = "pinniped-concierge";
export const defaultNamespace = "pinniped-concierge";

export interface RenderOptions {
  apiGroupSuffix?: string;
  namespace?: string;
  /** Replaces the `pinniped-concierge` that every object name starts with. */
  name?: string;
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// The longest name made from `name` that must be a DNS label: the impersonation proxy's
// load-balancer Service (`<name>-impersonation-proxy-load-balancer`).
const longestServiceSuffix = "-impersonation-proxy-load-balancer";

/** Why these options cannot render an install (none when they can). */
export function renderErrors(options: RenderOptions): string[] {
  const errors: string[] = [];
  if (options.apiGroupSuffix !== undefined) {
    for (const e of apiGroupSuffixErrors(options.apiGroupSuffix)) errors.push(`--api-group-suffix: ${e}`);
  }
  if (
    options.namespace !== undefined &&
    (!dnsLabel.test(options.namespace) || options.namespace.length > 63)
  ) {
    errors.push(
      "--namespace: must be a DNS label (lower case letters, digits and '-', at most 63 characters)",
    );
  }
  if (options.name !== undefined) {
    const max = 63 - longestServiceSuffix.length;
    if (!dnsLabel.test(options.name) || options.name.length > max) {
      errors.push(
        `--name: must be a DNS label of at most ${max} characters (the Service ${JSON.stringify(`<name>${longestServiceSuffix}`)} must be a DNS label too)`,
      );
    }
  }
  return errors;
}

const yamlFiles = (dir: string) =>
  readdirSync(join(repoRoot, dir))
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => join(repoRoot, dir, f));

/** The names of the fields from the document's root to this node, e.g. `["metadata", "name"]`. */
function fieldsOf(path: readonly unknown[]): string[] {
  return path.filter(isPair).map((pair) => String(isScalar(pair.key) ? pair.key.value : pair.key));
}

/** The install rendered for these options: one YAML stream, CRDs first, in apply order. */
export function renderInstall(options: RenderOptions = {}): string {
  const errors = renderErrors(options);
  if (errors.length > 0) throw new Error(errors.join("\n"));
  const suffix = options.apiGroupSuffix ?? defaultAPIGroupSuffix;
  const namespace = options.namespace ?? defaultNamespace;
  const name = options.name ?? defaultName;
  const groups = new GroupSuffix(suffix);
  const ourGroups = [...new Set(kinds.map((k) => k.group))];
  const renamed = (value: string) => {
    let out = value;
    for (const g of ourGroups) out = out.replaceAll(g, groups.served(g));
    if (out === defaultName || out.startsWith(`${defaultName}-`)) out = name + out.slice(defaultName.length);
    return out;
  };
  // The config file in the ConfigMap: its names and labels follow, comments stay.
  const renderConfigFile = (text: string) => {
    const doc = parseDocument(text);
    visit(doc, {
      Scalar(key, node) {
        if (key !== "key" && typeof node.value === "string") node.value = renamed(node.value);
      },
    });
    if (!groups.isDefault) doc.set("apiGroupSuffix", suffix);
    // Names the file leaves to the process's defaults would keep `pinniped-concierge`: spelled out.
    if (name !== defaultName) {
      for (const [key, value] of Object.entries(defaults.names)) {
        if (!doc.hasIn(["names", key])) doc.setIn(["names", key], renamed(value));
      }
    }
    return doc.toString({ flowCollectionPadding: false });
  };

  const out: string[] = [
    "# Rendered by hack/render-install.ts" +
      ` --api-group-suffix ${suffix} --namespace ${namespace} --name ${name}` +
      " from crds/ and config/.\n",
  ];
  for (const file of [...yamlFiles("crds"), ...yamlFiles("config")]) {
    for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      if (doc.contents === null) continue;
      const kind = doc.get("kind");
      visit(doc, {
        Scalar(key, node: Scalar, path) {
          if (key === "key" || typeof node.value !== "string") return;
          const fields = fieldsOf(path);
          const field = fields.at(-1);
          const value = node.value;
          if (field === "namespace" || (kind === "Namespace" && fields.join(".") === "metadata.name")) {
            if (value === defaultNamespace) node.value = namespace;
            return;
          }
          // The program in the image, not an object: main.ts finds its own image by this container name.
          if (fields.includes("command") || fields.join(".").endsWith("containers.name")) return;
          if (kind === "ConfigMap" && fields.join(".") === "data.pinniped.yaml") {
            node.value = renderConfigFile(value);
            return;
          }
          node.value = renamed(value);
        },
      });
      out.push(doc.toString({ flowCollectionPadding: false }));
    }
  }
  return out.join("---\n");
}

function main(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      "api-group-suffix": { type: "string" },
      namespace: { type: "string" },
      name: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(
      "Usage: node hack/render-install.ts [--api-group-suffix acme.example] [--namespace ns] [--name prefix]\n" +
        `Prints the install for that suffix (default ${defaultAPIGroupSuffix}), namespace and name ` +
        `(default ${defaultName}) as one YAML stream for kubectl apply -f.\n`,
    );
    return;
  }
  process.stdout.write(
    renderInstall({
      ...(values["api-group-suffix"] !== undefined ? { apiGroupSuffix: values["api-group-suffix"] } : {}),
      ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
      ...(values.name !== undefined ? { name: values.name } : {}),
    }),
  );
}

if (import.meta.main) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}
