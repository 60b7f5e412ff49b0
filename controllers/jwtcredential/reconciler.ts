// The JWTCredential strategy's reconcilers. `jwt-signing-keys`: the Secret of signing keys
// (informer) → decideKeys with the manager's clock → on the leader, the Secret created or
// rotated (a key added or an expired one dropped); on every replica, the keys loaded into the
// issuer's holder, which the token handler and the JWKS read. `jwt-credential-probe`: a token
// the issuer mints for a probe user, checked by a TokenReview against kube-apiserver, at start,
// on every key change and on an interval; its answer is the strategy's CredentialIssuer entry.
import {
  type CredentialIssuerFrontend,
  StrategyReason,
  StrategyStatus,
  StrategyType,
} from "../../apis/index.ts";
import type { ConfigMapLike, SecretLike } from "../../authenticators/tls/cabundle.ts";
import { resourceClient } from "../../kube/client.ts";
import type { Clock } from "../../kube/clock.ts";
import type { KubeObject, ResourceRef } from "../../kube/resource.ts";
import { isAlreadyExists, isApiError, type RestClient } from "../../kube/rest.ts";
import type { StrategyHolder } from "../credentialissuer/holder.ts";
import {
  clusterInfoName,
  clusterInfoNamespace,
  tokenCredentialRequestFrontend,
} from "../kubecertagent/frontend.ts";
import type { Controller, ControllerOptions, Syncer } from "../runtime/controller.ts";
import { named, singletonKey, when } from "../runtime/filters.ts";
import type { InformerSource } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import {
  decideKeys,
  keysFromSecretData,
  type RotationPolicy,
  type StoredKey,
  secretDataFor,
} from "./decide.ts";
import type { JWTCredentialIssuer } from "./issuer.ts";
import { generateStoredKey, loadKeys } from "./keys.ts";

export const keysControllerName = "jwt-signing-keys";
export const probeControllerName = "jwt-credential-probe";
/** After a failed probe, the next one comes this soon (the interval applies while healthy). */
export const retryAfterFailureMs = 10_000;
/** Whom the probe token names; it is never handed to anyone. */
export const probeUser = { username: "pinniped-concierge-jwt-credential-probe", groups: [] };
const probeTTLSeconds = 60;

type Secret = KubeObject & SecretLike;
type ConfigMap = KubeObject & ConfigMapLike;

const secretsResource = (namespace: string): ResourceRef => ({
  group: "",
  version: "v1",
  resource: "secrets",
  namespace,
});

export interface KeysDeps {
  namespace: string;
  secretName: string;
  labels?: Record<string, string>;
  policy: RotationPolicy;
  issuer: JWTCredentialIssuer;
}

export interface KeysEnv {
  secrets: InformerSource<Secret>;
  /** Writes: the manager's leader-only client. */
  client: RestClient;
  clock: Clock;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

export function keysController(env: KeysEnv, deps: KeysDeps): Controller {
  const { namespace, secretName, issuer } = deps;
  const key = keysControllerName;
  const secrets = resourceClient<Secret>(env.client, secretsResource(namespace));

  const sync: Syncer = async ({ signal, log }) => {
    const secret = env.secrets.get(secretName, namespace);
    const stored = keysFromSecretData(secret?.data);
    if (stored.problems.length > 0)
      log.info("ignoring malformed signing keys", { problems: stored.problems });
    const now = env.clock.now();
    const decision = decideKeys(stored.keys, now, deps.policy);
    // Load what is there first: a follower never writes, and the leader signs with it meanwhile.
    if (decision.signing !== undefined) {
      const kept = stored.keys.filter((k) => decision.published.includes(k.kid));
      try {
        const loaded = loadKeys(kept, decision.signing);
        const current = issuer.keys.get();
        const changed =
          current?.signing.kid !== loaded.signing.kid ||
          current.jwks.map((j) => j.kid).join() !== loaded.jwks.map((j) => j.kid).join();
        if (changed) {
          issuer.keys.set(loaded);
          log.info("loaded JWT signing keys", { signing: loaded.signing.kid, published: decision.published });
        }
      } catch (error) {
        log.info("could not load the JWT signing keys; replacing them", { err: (error as Error).message });
        issuer.keys.set(undefined);
        return write(secret, [generateStoredKey(now)], signal, log);
      }
    }
    if (!decision.add && decision.remove.length === 0 && stored.problems.length === 0) {
      return { requeueAfterMs: Math.max(1000, decision.nextChangeAtMs - now) };
    }
    const next: StoredKey[] = stored.keys.filter((k) => !decision.remove.includes(k.kid));
    if (decision.add) next.push(generateStoredKey(now));
    return write(secret, next, signal, log);
  };

  const write = async (
    secret: Secret | undefined,
    keys: StoredKey[],
    signal: AbortSignal,
    log: Parameters<Syncer>[0]["log"],
  ) => {
    const data = secretDataFor(keys);
    try {
      if (!secret) {
        await secrets.create(
          {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: secretName, namespace, labels: { ...deps.labels } },
            type: "Opaque",
            data,
          },
          { signal },
        );
        log.info("created the JWT signing key Secret", { secretName, namespace });
      } else {
        // The resourceVersion makes this a compare-and-swap: a stale cache gets a conflict and a retry.
        await secrets.update(secretName, { ...secret, data }, { signal });
        log.info("rotated the JWT signing keys", { secretName, namespace, kids: keys.map((k) => k.kid) });
      }
    } catch (error) {
      // The cache was behind: the informer brings the Secret, and its event syncs again.
      if (isAlreadyExists(error)) return undefined;
      throw isApiError(error)
        ? new Error("could not write the JWT signing key Secret", { cause: error })
        : error;
    }
    return undefined;
  };

  return env
    .controller({ name: keysControllerName, sync })
    .withInformer(env.secrets, when(named(secretName, namespace), singletonKey(key)))
    .withInitialEvent(key);
}

export interface ProbeDeps {
  issuer: JWTCredentialIssuer;
  probeIntervalMs: number;
  discoveryURLOverride?: string;
  strategyHolder: StrategyHolder;
}

export interface ProbeEnv {
  clusterInfo: InformerSource<ConfigMap>;
  /** Creates TokenReviews: an unguarded client, since every replica's issuer serves requests. */
  client: RestClient;
  controller(options: Omit<ControllerOptions, "clock" | "log" | "metrics">): Controller;
}

interface TokenReview {
  status?: { authenticated?: boolean; user?: { username?: string }; error?: string };
}

/** The probe's verdict on a TokenReview's answer: undefined when kube-apiserver trusts the issuer. */
export function reviewProblem(review: TokenReview, issuer: string, audience: string): string | undefined {
  const status = review.status ?? {};
  const username = status.user?.username;
  if (status.authenticated === true && username === probeUser.username) return undefined;
  const said = status.authenticated
    ? `it authenticated the probe token as ${JSON.stringify(username ?? "")}, not as ${JSON.stringify(probeUser.username)}`
    : `it did not authenticate the probe token${status.error ? `: ${status.error}` : ""}`;
  return (
    `kube-apiserver does not trust tokens from issuer ${issuer} with audience ${audience}: ${said} ` +
    "(kube-apiserver needs a JWT authenticator for this issuer and audience in --authentication-config, " +
    "mapping the username claim to the username and groups to groups)"
  );
}

export function probeController(env: ProbeEnv, deps: ProbeDeps): Controller {
  const key = probeControllerName;
  const { issuer } = deps;
  const publish = (
    status: StrategyStatus,
    reason: StrategyReason,
    message: string,
    frontend?: CredentialIssuerFrontend,
  ) =>
    deps.strategyHolder.set(StrategyType.JWTCredential, {
      status,
      reason,
      message,
      ...(frontend ? { frontend } : {}),
    });
  const fail = (reason: StrategyReason, message: string) => {
    issuer.state.set({ ok: false, reason: `${issuer.name}: ${message}` });
    publish(StrategyStatus.Error, reason, message);
    return { requeueAfterMs: retryAfterFailureMs };
  };

  const sync: Syncer = async ({ signal, log }) => {
    const frontend = tokenCredentialRequestFrontend(
      env.clusterInfo.get(clusterInfoName, clusterInfoNamespace),
      deps.discoveryURLOverride,
    );
    if (!frontend.ok) return fail(frontend.reason, frontend.message);
    const minted = issuer.mint(probeUser, probeTTLSeconds);
    if (!minted.ok) return fail(StrategyReason.CouldNotFetchKey, "no signing key is loaded yet");
    if (minted.credential.type !== "token") throw new Error("the JWT issuer minted no token");
    let review: TokenReview;
    try {
      review = await env.client.request<TokenReview>({
        method: "POST",
        path: "/apis/authentication.k8s.io/v1/tokenreviews",
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token: minted.credential.token },
        },
        signal,
      });
    } catch (error) {
      if (signal.aborted) return undefined;
      return fail(StrategyReason.ProbeFailed, `could not create a TokenReview: ${(error as Error).message}`);
    }
    const problem = reviewProblem(review, issuer.issuer, issuer.audience);
    if (problem) {
      log.info("JWT credential probe failed", { reason: problem });
      return fail(StrategyReason.ProbeFailed, problem);
    }
    issuer.state.set({ ok: true });
    publish(
      StrategyStatus.Success,
      StrategyReason.ProbeSucceeded,
      `kube-apiserver accepted a probe token from issuer ${issuer.issuer} with audience ${issuer.audience}`,
      frontend.frontend,
    );
    return { requeueAfterMs: deps.probeIntervalMs };
  };

  const controller = env
    .controller({ name: probeControllerName, sync })
    .withInformer(env.clusterInfo, when(named(clusterInfoName, clusterInfoNamespace), singletonKey(key)))
    .withInitialEvent(key);
  // A new signing key must be trusted too: probe with it at once.
  issuer.keys.onChange(() => controller.enqueue(key));
  return controller;
}

/** Registers both reconcilers with `manager`. */
export function register(
  manager: Manager,
  deps: KeysDeps & Omit<ProbeDeps, "issuer"> & { probeClient: RestClient },
): void {
  keysController(
    {
      secrets: manager.informers.informer<Secret>(secretsResource(deps.namespace)),
      client: manager.client,
      clock: manager.clock,
      controller: (options) => manager.controller(options),
    },
    deps,
  );
  probeController(
    {
      clusterInfo: manager.informers.informer<ConfigMap>({
        group: "",
        version: "v1",
        resource: "configmaps",
        namespace: clusterInfoNamespace,
        fieldSelector: `metadata.name=${clusterInfoName}`,
      }),
      client: deps.probeClient,
      controller: (options) => manager.controller(options),
    },
    deps,
  );
}
