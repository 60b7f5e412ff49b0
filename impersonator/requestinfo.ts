// Kubernetes' RequestInfoFactory (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go) for the
// /api and /apis prefixes: the proxy authorizes each request with the same attributes
// kube-apiserver would derive, so a SubjectAccessReview here agrees with the one it runs itself.

export interface RequestInfo {
  isResourceRequest: boolean;
  /** The URL path without the query, percent-decoded as Go's url.URL.Path is. */
  path: string;
  /** Empty when the method means nothing for a resource (then the request is refused). */
  verb: string;
  apiPrefix: string;
  apiGroup: string;
  apiVersion: string;
  namespace: string;
  resource: string;
  subresource: string;
  name: string;
}

export class RequestInfoError extends Error {
  override readonly name = "RequestInfoError";
}

const apiPrefixes = new Set(["api", "apis"]);
const grouplessPrefixes = new Set(["api"]);
const specialVerbs = new Set(["proxy", "watch"]);
const specialVerbsNoSubresources = new Set(["proxy"]);
// Subresources of a namespace itself (/api/v1/namespaces/x/status), not resources inside it.
const namespaceSubresources = new Set(["status", "finalize"]);

const verbByMethod: Record<string, string> = {
  POST: "create",
  GET: "get",
  HEAD: "get",
  PUT: "update",
  PATCH: "patch",
  DELETE: "delete",
};

/** `target` is the request's path and query as received, e.g. `/api/v1/pods?watch=1`. */
export function parseRequestInfo(method: string, target: string): RequestInfo {
  const url = new URL(target, "http://impersonator.invalid");
  const path = decodePath(url.pathname);
  const info: RequestInfo = {
    isResourceRequest: false,
    path,
    verb: method.toLowerCase(),
    apiPrefix: "",
    apiGroup: "",
    apiVersion: "",
    namespace: "",
    resource: "",
    subresource: "",
    name: "",
  };
  const trimmed = path.replace(/^\/+|\/+$/g, "");
  let parts = trimmed === "" ? [] : trimmed.split("/");
  if (parts.length < 3 || !apiPrefixes.has(parts[0]!)) return info;
  const apiPrefix = parts[0]!;
  parts = parts.slice(1);
  let apiGroup = "";
  if (!grouplessPrefixes.has(apiPrefix)) {
    if (parts.length < 3) return info;
    apiGroup = parts[0]!;
    parts = parts.slice(1);
  }
  info.isResourceRequest = true;
  info.apiPrefix = apiPrefix;
  info.apiGroup = apiGroup;
  info.apiVersion = parts[0]!;
  parts = parts.slice(1);

  if (specialVerbs.has(parts[0]!)) {
    if (parts.length < 2)
      throw new RequestInfoError(`unable to determine kind and namespace from url, ${target}`);
    info.verb = parts[0]!;
    parts = parts.slice(1);
  } else {
    info.verb = verbByMethod[method.toUpperCase()] ?? "";
  }

  if (parts[0] === "namespaces") {
    if (parts.length > 1) {
      info.namespace = parts[1]!;
      if (parts.length > 2 && !namespaceSubresources.has(parts[2]!)) parts = parts.slice(2);
    }
  }

  if (parts.length >= 3 && !specialVerbsNoSubresources.has(info.verb)) info.subresource = parts[2]!;
  if (parts.length >= 2) info.name = parts[1]!;
  if (parts.length >= 1) info.resource = parts[0]!;

  if (info.name === "" && info.verb === "get") {
    const { watch, nameFromFieldSelector } = listOptions(url.searchParams);
    info.verb = watch ? "watch" : "list";
    if (nameFromFieldSelector !== undefined) info.name = nameFromFieldSelector;
  }
  if (info.name === "" && info.verb === "delete") info.verb = "deletecollection";
  return info;
}

// Go decodes the path once; a malformed escape makes the whole URL invalid there, which never
// reaches an authorizer. Keeping the raw text instead still yields a path that matches nothing.
function decodePath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

// metav1's bool conversion: only "0" and "false" (any case) are false, even an empty value is true.
function queryBool(value: string): boolean {
  return value !== "0" && value.toLowerCase() !== "false";
}

function listOptions(query: URLSearchParams): { watch: boolean; nameFromFieldSelector?: string } {
  const watchValue = query.get("watch");
  const watch = watchValue !== null && queryBool(watchValue);
  const selector = query.get("fieldSelector");
  if (selector === null) return { watch };
  const terms = parseFieldSelector(selector);
  // A selector that does not parse makes ListOptions fail to decode: only `watch` survives.
  if (terms === undefined) return { watch };
  const name = terms.find((t) => t.field === "metadata.name" && t.op !== "!=")?.value;
  if (name === undefined || !isValidPathSegmentName(name)) return { watch };
  return { watch, nameFromFieldSelector: name };
}

interface FieldTerm {
  field: string;
  op: "=" | "==" | "!=";
  value: string;
}

// fields.ParseSelector: comma-separated `field(=|==|!=)value` terms with `\` escaping `,`, `=`,
// `!` and `\` in values.
function parseFieldSelector(selector: string): FieldTerm[] | undefined {
  const terms: FieldTerm[] = [];
  if (selector.trim() === "") return terms;
  for (const raw of splitUnescaped(selector)) {
    const match = /^([^=!]*)(==|=|!=)(.*)$/s.exec(raw);
    if (!match) return undefined;
    const value = unescapeFieldValue(match[3]!);
    if (value === undefined) return undefined;
    terms.push({ field: match[1]!.trim(), op: match[2] as FieldTerm["op"], value });
  }
  return terms;
}

function splitUnescaped(s: string): string[] {
  const out: string[] = [];
  let current = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "\\" && i + 1 < s.length) {
      current += c + s[i + 1];
      i++;
    } else if (c === ",") {
      out.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  out.push(current);
  return out;
}

function unescapeFieldValue(s: string): string | undefined {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "\\") {
      const next = s[i + 1];
      if (next === undefined || !"\\,=!".includes(next)) return undefined;
      out += next;
      i++;
    } else if (c === "," || c === "=") {
      return undefined;
    } else {
      out += c;
    }
  }
  return out;
}

// path.IsValidPathSegmentName: a name that can stand as one path segment.
function isValidPathSegmentName(name: string): boolean {
  return name !== "." && name !== ".." && !name.includes("/") && !name.includes("%");
}
