// The modules the built CLI loads only when a command needs them (hack/build-cli.ts): every
// kubectl call runs `pinniped login`, and a cached credential must not pay to compile the
// Kubernetes client, the OIDC client or the YAML library. The build bundles this file apart
// from the rest and turns each dynamic import of one of these modules into a lookup here.

export * as yaml from "yaml";
export * as completion from "../completion.ts";
export * as kubeconfig from "../kubeconfig.ts";
export * as oidcBrowser from "../oidc/browser.ts";
export * as oidcClient from "../oidc/client.ts";
export * as oidcSessionCache from "../oidc/sessioncache.ts";
export * as whoami from "../whoami.ts";
