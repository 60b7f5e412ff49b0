// WhoAmIRequest create (upstream's internal/registry/whoamirequest/rest.go): echoes the user
// kube-apiserver authenticated, as it reached us through the front proxy.
import { whoAmIRequest as who } from "../apis/index.ts";
import type { RequestUser } from "./frontproxy.ts";
import { type APIResponse, badRequest, dryRunError } from "./status.ts";
import { type StrictDecoding, strictDecodingError } from "./strictdecode.ts";
import { type Kind, objectOfKind } from "./typemeta.ts";

export interface WhoAmIContext {
  namespace?: string;
  dryRun: readonly string[];
  user: RequestUser;
  /** The body's unknown and duplicate fields, under the request's `fieldValidation`. */
  strict?: StrictDecoding;
}

/** `served` is the kind under the install's group (server/discovery.ts servedKinds). */
export function createWhoAmIRequest(body: unknown, ctx: WhoAmIContext, served: Kind = who): APIResponse {
  const typed = objectOfKind(body, served);
  if ("error" in typed) return badRequest(typed.error);
  const strictError = strictDecodingError(ctx.strict);
  if (strictError) {
    return badRequest(
      `${who.kind} in version "${who.version}" cannot be handled as a ${who.kind}: ${strictError}`,
    );
  }
  const dryRun = dryRunError(served.group, ctx.dryRun);
  if (dryRun) return dryRun;
  if (ctx.namespace) return badRequest(`namespace is not allowed on ${who.kind}: ${ctx.namespace}`);

  const { username, uid, groups, extra } = ctx.user;
  return {
    code: 201,
    body: {
      kind: who.kind,
      apiVersion: `${served.group}/${served.version}`,
      metadata: { creationTimestamp: null },
      spec: {},
      status: {
        kubernetesUserInfo: {
          user: {
            username,
            ...(uid ? { uid } : {}),
            ...(groups.length > 0 ? { groups: [...groups] } : {}),
            ...(Object.keys(extra).length > 0 ? { extra: structuredClone(extra) } : {}),
          },
        },
      },
    },
  };
}
