import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { AuthenticatorCache, authenticationGroup } from "../authenticators/cache.ts";
import type { AuthenticationResult, TokenAuthenticator, UserInfo } from "../authenticators/types.ts";
import { createSigningRequest } from "../certs/csr.ts";
import { memoryLogger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import {
  type CreateContext,
  createTokenCredentialRequestHandler,
  metaTime,
  type TokenCredentialRequestOptions,
  validateClientCertificateTTL,
} from "./tokencredentialrequest.ts";

const group = "login.concierge.pinniped.dev";
const token = "super-secret-token-value";
const notAfter = new Date("2026-11-28T12:05:00.123Z");
const notBefore = new Date("2026-11-28T11:55:00Z");

function authenticator(answer: (token: string, signal?: AbortSignal) => Promise<AuthenticationResult>) {
  const calls: string[] = [];
  const a: TokenAuthenticator = {
    authenticateToken: (t, signal) => {
      calls.push(t);
      return answer(t, signal);
    },
    close: () => {},
  };
  return { a, calls };
}

const ok = (user: Partial<UserInfo> = {}) =>
  authenticator(async () => ({
    authenticated: true,
    user: { username: "alice", groups: ["devs", "ops"], ...user },
  }));

function setup(
  auth: TokenAuthenticator,
  overrides: Partial<TokenCredentialRequestOptions> & { kind?: string } = {},
) {
  const cache = new AuthenticatorCache();
  cache.store(
    { apiGroup: authenticationGroup, kind: overrides.kind ?? "JWTAuthenticator", name: "corp" },
    {
      authenticator: auth,
      fingerprint: "f",
    },
  );
  const issued: { user: { username: string; groups: string[] }; ttl: number }[] = [];
  const issuer: TokenCredentialRequestOptions["issuer"] = {
    issue: async ({ user, ttlSeconds }) => {
      issued.push({ user, ttl: ttlSeconds });
      return {
        ok: true,
        credential: {
          type: "certificate",
          certificatePEM: "CERT PEM",
          keyPEM: "KEY PEM",
          notAfter,
          notBefore,
        },
      };
    },
  };
  const logs = memoryLogger("debug");
  const metrics = new Metrics();
  const handler = createTokenCredentialRequestHandler({
    authenticators: cache,
    issuer,
    log: logs.log,
    metrics,
    ...overrides,
  });
  const outcome = async (name: string) =>
    Number(
      new RegExp(`token_credential_requests_total\\{outcome="${name}"\\} (\\d+)`).exec(
        await metrics.text(),
      )?.[1] ?? 0,
    );
  return { handler, issued, logs, outcome, metrics, cache };
}

const ctx = (extra: Partial<CreateContext> = {}): CreateContext => ({
  dryRun: [],
  auditID: "audit-1",
  ...extra,
});

const request = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  apiVersion: `${group}/v1alpha1`,
  kind: "TokenCredentialRequest",
  metadata: { name: "req" },
  spec: {
    token,
    authenticator: { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" },
    ...spec,
  },
  ...extra,
});

const failedBody = {
  kind: "TokenCredentialRequest",
  apiVersion: `${group}/v1alpha1`,
  metadata: { creationTimestamp: null },
  spec: { authenticator: { apiGroup: null, kind: "", name: "" } },
  status: { message: "authentication failed" },
};

describe("TokenCredentialRequest create", () => {
  it("issues a certificate for the authenticated user, with upstream's response shape", async () => {
    const { a, calls } = ok();
    const { handler, issued, outcome } = setup(a);
    const res = await handler(request({}), ctx());
    assert.equal(res.code, 201);
    assert.deepEqual(res.body, {
      kind: "TokenCredentialRequest",
      apiVersion: `${group}/v1alpha1`,
      metadata: { creationTimestamp: null },
      spec: { authenticator: { apiGroup: null, kind: "", name: "" } },
      status: {
        credential: {
          expirationTimestamp: "2026-11-28T12:05:00Z",
          clientCertificateData: "CERT PEM",
          clientKeyData: "KEY PEM",
        },
      },
    });
    assert.deepEqual(calls, [token]);
    assert.deepEqual(issued, [{ user: { username: "alice", groups: ["devs", "ops"] }, ttl: 300 }]);
    assert.equal(await outcome("issued"), 1);
  });

  it("works with WebhookAuthenticators too", async () => {
    const { a } = ok();
    const { handler } = setup(a, { kind: "WebhookAuthenticator" });
    const res = await handler(
      request({
        authenticator: { apiGroup: authenticationGroup, kind: "WebhookAuthenticator", name: "corp" },
      }),
      ctx(),
    );
    assert.equal(res.code, 201);
    assert.ok((res.body as { status: { credential?: unknown } }).status.credential);
  });

  it("passes a configured TTL to the issuer", async () => {
    const { a } = ok();
    const { handler, issued } = setup(a, { clientCertificateTTLSeconds: 3600 });
    await handler(request({}), ctx());
    assert.equal(issued[0]?.ttl, 3600);
  });

  it("bounds the TTL", () => {
    assert.equal(validateClientCertificateTTL(60), 60);
    assert.equal(validateClientCertificateTTL(86400), 86400);
    for (const bad of [59, 86401, 1.5, Number.NaN]) {
      assert.throws(() => validateClientCertificateTTL(bad), /client certificate TTL must be/);
    }
    const { a } = ok();
    assert.throws(() => setup(a, { clientCertificateTTLSeconds: 10 }), /TTL/);
  });

  it("answers an empty token with upstream's 422", async () => {
    const { a, calls } = ok();
    const { handler } = setup(a);
    for (const spec of [{ token: "" }, { token: undefined }]) {
      const res = await handler({ ...request(spec), metadata: {} }, ctx());
      assert.equal(res.code, 422);
      assert.deepEqual(res.body, {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: `.${group} "" is invalid: spec.token.value: Required value: token must be supplied`,
        reason: "Invalid",
        details: {
          group,
          causes: [
            {
              reason: "FieldValueRequired",
              message: "Required value: token must be supplied",
              field: "spec.token.value",
            },
          ],
        },
        code: 422,
      });
    }
    const named = await handler(request({ token: "" }), ctx());
    assert.match(
      (named.body as { message: string }).message,
      /^\.login\.concierge\.pinniped\.dev "req" is invalid/,
    );
    assert.deepEqual(calls, []);
  });

  it("refuses dryRun with a NotSupported error (other values are the query check's: createoptions.ts)", async () => {
    const { a, calls } = ok();
    const { handler } = setup(a);
    const res = await handler(request({}), ctx({ dryRun: ["All"] }));
    assert.equal(res.code, 422);
    assert.deepEqual((res.body as { details: unknown }).details, {
      group,
      causes: [
        { reason: "FieldValueNotSupported", message: 'Unsupported value: []string{"All"}', field: "dryRun" },
      ],
    });
    assert.equal(
      (res.body as { message: string }).message,
      `.${group} "" is invalid: dryRun: Unsupported value: []string{"All"}`,
    );
    assert.deepEqual(calls, []);
  });

  it("refuses a namespace", async () => {
    const { a } = ok();
    const { handler } = setup(a);
    const res = await handler(request({}), ctx({ namespace: "kube-system" }));
    assert.equal(res.code, 400);
    assert.deepEqual(res.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "namespace is not allowed on TokenCredentialRequest: kube-system",
      reason: "BadRequest",
      code: 400,
    });
  });

  it("refuses what is not a TokenCredentialRequest", async () => {
    const { a } = ok();
    const { handler } = setup(a);
    const deep = JSON.parse(`${"[".repeat(5000)}${"]".repeat(5000)}`);
    const cases: [unknown, string][] = [
      [null, "the body is null, not a JSON object"],
      [[], "the body is an array, not a JSON object"],
      ["x", "the body is a string, not a JSON object"],
      [7, "the body is a number, not a JSON object"],
      [deep, "the body is an array, not a JSON object"],
      [request({}, { kind: "WhoAmIRequest" }), 'kind must be "TokenCredentialRequest"'],
      [request({}, { apiVersion: "v1" }), `apiVersion must be "${group}/v1alpha1"`],
      [{ apiVersion: deep }, `apiVersion must be "${group}/v1alpha1"`],
      [{ kind: "x".repeat(200_000) }, 'kind must be "TokenCredentialRequest"'],
    ];
    for (const [body, why] of cases) {
      const res = await handler(body, ctx());
      assert.equal(res.code, 400, why);
      assert.equal((res.body as { message: string }).message, `not a TokenCredentialRequest: ${why}`);
    }
    for (const spec of [{ token: 5 }, { authenticator: "corp" }, { authenticator: { name: 1 } }]) {
      const res = await handler(request(spec), ctx());
      assert.equal(res.code, 400, JSON.stringify(spec));
      assert.match(
        (res.body as { message: string }).message,
        /cannot be handled as a TokenCredentialRequest/,
      );
    }
  });

  it("answers authentication failed when no authenticator matches, whatever the reason", async () => {
    const { a, calls } = ok();
    const { handler, outcome, logs } = setup(a);
    const refs = [
      { kind: "JWTAuthenticator", name: "corp" },
      { apiGroup: null, kind: "JWTAuthenticator", name: "corp" },
      { apiGroup: "authentication.concierge.example.com", kind: "JWTAuthenticator", name: "corp" },
      { apiGroup: authenticationGroup, kind: "WebhookAuthenticator", name: "corp" },
      { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "other" },
    ];
    for (const authenticatorRef of refs) {
      const res = await handler(request({ authenticator: authenticatorRef }), ctx());
      assert.equal(res.code, 201);
      assert.deepEqual(res.body, failedBody);
    }
    assert.deepEqual(calls, []);
    assert.equal(await outcome("no_authenticator"), refs.length);
    const errors = logs.lines.filter((l) => l.message === "TokenCredentialRequest Unexpected Error");
    assert.equal(errors.length, refs.length);
    assert.equal(errors[0]?.reason, "authenticator returned an error");
    assert.equal(errors[0]?.err, "no such authenticator");
  });

  it("answers authentication failed when the authenticator rejects the token", async () => {
    const { a } = authenticator(async () => ({ authenticated: false, reason: "bad signature" }));
    const { handler, outcome, logs } = setup(a);
    assert.deepEqual((await handler(request({}), ctx())).body, failedBody);
    assert.equal(await outcome("rejected"), 1);
    const event = logs.lines.find((l) => l.message === "TokenCredentialRequest Authentication Failed");
    assert.equal(event?.reason, "auth rejected by authenticator");
    assert.deepEqual(event?.authenticator, {
      apiGroup: authenticationGroup,
      kind: "JWTAuthenticator",
      name: "corp",
    });
  });

  it("logs why a login was rejected at info, rate-limited, and counts it by authenticator and reason", async () => {
    const { a } = authenticator(async () => ({
      authenticated: false,
      reason: 'issuer mismatch: token iss is "https://evil.example.com"',
      code: "issuer",
      safeReason: "issuer mismatch",
    }));
    let now = 0;
    const { handler, logs, metrics } = setup(a, { now: () => now, rejectionLogIntervalMs: 10_000 });
    for (let i = 0; i < 3; i++) await handler(request({}), ctx());
    now = 10_000;
    await handler(request({}), ctx());
    const lines = logs.lines.filter((l) => l.message === "login rejected by authenticator");
    assert.deepEqual(
      lines.map(({ level, authenticator, reason, detail, suppressedSinceLast }) => ({
        level,
        authenticator,
        reason,
        detail,
        suppressedSinceLast,
      })),
      [
        {
          level: "info",
          authenticator: { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" },
          reason: "issuer",
          detail: "issuer mismatch",
          suppressedSinceLast: undefined,
        },
        {
          level: "info",
          authenticator: { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" },
          reason: "issuer",
          detail: "issuer mismatch",
          suppressedSinceLast: 2,
        },
      ],
    );
    for (const line of logs.lines.filter((l) => l.level !== "debug")) {
      assert.doesNotMatch(JSON.stringify(line), /evil\.example\.com|super-secret-token-value/);
    }
    const series =
      'concierge_token_credential_request_rejections_total{kind="JWTAuthenticator",authenticator="corp",reason="issuer"} 4';
    assert.ok((await metrics.text()).includes(series), await metrics.text());
  });

  it("drops a deleted authenticator's rejection series", async () => {
    const { a } = authenticator(async () => ({ authenticated: false, reason: "no", code: "expired" }));
    const { handler, metrics, cache } = setup(a);
    await handler(request({}), ctx());
    assert.match(await metrics.text(), /rejections_total\{kind="JWTAuthenticator",authenticator="corp"/);
    cache.delete({ apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" });
    await new Promise((resolve) => setImmediate(resolve));
    assert.doesNotMatch(
      await metrics.text(),
      /rejections_total\{kind="JWTAuthenticator",authenticator="corp"/,
    );
  });

  it("answers authentication failed when the authenticator throws", async () => {
    const { a } = authenticator(async () => {
      throw new Error("boom");
    });
    const { handler, outcome } = setup(a);
    assert.deepEqual((await handler(request({}), ctx())).body, failedBody);
    assert.equal(await outcome("authenticator_error"), 1);
  });

  it("gives up on a slow authenticator at the deadline, and tells it through the signal", async () => {
    let seen: AbortSignal | undefined;
    const { a } = authenticator((_t, signal) => {
      seen = signal;
      return new Promise(() => {});
    });
    const { handler, outcome } = setup(a, { authenticationTimeoutMs: 20 });
    const started = Date.now();
    assert.deepEqual((await handler(request({}), ctx())).body, failedBody);
    assert.ok(Date.now() - started < 2000);
    assert.equal(seen?.aborted, true);
    assert.equal(await outcome("authenticator_error"), 1);
  });

  it("stops authenticating when the client goes away", async () => {
    const { a } = authenticator(() => new Promise(() => {}));
    const { handler } = setup(a);
    const gone = new AbortController();
    const pending = handler(request({}), ctx({ signal: gone.signal }));
    gone.abort();
    assert.deepEqual((await pending).body, failedBody);
  });

  for (const [what, user, err] of [
    ["an empty username", { username: "" }, "empty username is not allowed"],
    ["a UID", { uid: "1234" }, "UIDs are not supported"],
    [
      "an extra other than the credential ID",
      { extra: { "example.com/tenant": ["a"] } },
      "extra may have only one key 'authentication.kubernetes.io/credential-id'",
    ],
  ] as [string, Partial<UserInfo>, string][]) {
    it(`answers authentication failed for ${what}`, async () => {
      const { a } = ok(user);
      const { handler, issued, logs, outcome } = setup(a);
      assert.deepEqual((await handler(request({}), ctx())).body, failedBody);
      assert.deepEqual(issued, []);
      assert.equal(await outcome("unsupported_user_info"), 1);
      const event = logs.lines.find((l) => l.message === "TokenCredentialRequest Unsupported UserInfo");
      assert.equal(event?.err, err);
      assert.equal(event?.reason, "unsupported value in userInfo returned by authenticator");
    });
  }

  it("accepts the credential-id extra, and leaves it out of the certificate", async () => {
    const { a } = ok({ extra: { "authentication.kubernetes.io/credential-id": ["JTI=abc"] } });
    const { handler, issued } = setup(a);
    assert.equal((await handler(request({}), ctx())).code, 201);
    assert.deepEqual(issued[0]?.user, { username: "alice", groups: ["devs", "ops"] });
  });

  it("issues a uid and extras (without the credential ID) as a token while the serving issuer carries them", async () => {
    const { a } = ok({
      uid: "1234",
      extra: {
        "example.com/tenant": ["a"],
        "authentication.kubernetes.io/credential-id": ["JTI=abc"],
      },
    });
    const users: unknown[] = [];
    const { handler } = setup(a, {
      issuer: {
        carriesExtras: true,
        issue: async ({ user }) => {
          users.push(user);
          return { ok: true, credential: { type: "token", token: "a.jwt.token", expiresAt: notAfter } };
        },
      },
    });
    const answer = await handler(request({}), ctx());
    assert.equal(answer.code, 201);
    assert.deepEqual((answer.body as { status: unknown }).status, {
      credential: { expirationTimestamp: metaTime(notAfter), token: "a.jwt.token" },
    });
    assert.deepEqual(users, [
      { username: "alice", groups: ["devs", "ops"], uid: "1234", extra: { "example.com/tenant": ["a"] } },
    ]);
  });

  it("answers authentication failed when the issuer has no signer", async () => {
    const { a } = ok();
    const { handler, outcome, logs } = setup(a, {
      issuer: { issue: async () => ({ ok: false, reason: "no signer is loaded" }) },
    });
    assert.deepEqual((await handler(request({}), ctx())).body, failedBody);
    assert.equal(await outcome("issuer_error"), 1);
    const event = logs.lines.find((l) => l.message === "TokenCredentialRequest Unexpected Error");
    assert.equal(event?.reason, "cert issuer returned an error");
    assert.equal(event?.err, "no signer is loaded");
  });

  it("audits the token's hash and the user, redacted by default, and never logs the token", async () => {
    const { a } = ok();
    const { handler, logs } = setup(a);
    await handler(request({}), ctx());
    const received = logs.lines.find((l) => l.message === "TokenCredentialRequest Token Received");
    assert.deepEqual(received, {
      level: "info",
      timestamp: received?.timestamp,
      caller: received?.caller,
      message: "TokenCredentialRequest Token Received",
      component: "tokencredentialrequest",
      auditEvent: true,
      auditID: "audit-1",
      tokenID: createHash("sha256").update(token).digest("hex"),
    });
    const user = logs.lines.find((l) => l.message === "TokenCredentialRequest Authenticated User");
    assert.deepEqual(user?.personalInfo, { username: "redacted", groups: ["redacted 2 values"] });
    assert.deepEqual(user?.issuedClientCert, {
      notBefore: "2026-11-28T11:55:00Z",
      notAfter: "2026-11-28T12:05:00Z",
    });
    assert.equal(user?.auditID, "audit-1");
    assert.ok(!JSON.stringify(logs.lines).includes(token));
  });

  it("logs usernames and groups when that is enabled", async () => {
    const { a } = ok();
    const { handler, logs } = setup(a, { logUsernamesAndGroups: true });
    await handler(request({}), ctx());
    const user = logs.lines.find((l) => l.message === "TokenCredentialRequest Authenticated User");
    assert.deepEqual(user?.personalInfo, { username: "alice", groups: ["devs", "ops"] });
  });

  it("formats times as metav1.Time does", () => {
    assert.equal(metaTime(new Date("2026-01-02T03:04:05.999Z")), "2026-01-02T03:04:05Z");
  });
});

describe("TokenCredentialRequest create with a client's certificate signing request (not upstream)", () => {
  it("passes a request signed with its own key to the issuer", async () => {
    const { a } = ok();
    const seen: (string | undefined)[] = [];
    const { handler } = setup(a, {
      issuer: {
        issue: async ({ certificateSigningRequestPEM }) => {
          seen.push(certificateSigningRequestPEM);
          return { ok: true, credential: { type: "certificate", certificatePEM: "CERT PEM", notAfter } };
        },
      },
    });
    const { csrPEM } = await createSigningRequest({ username: "anyone", groups: [] });
    const res = await handler(request({ certificateSigningRequest: csrPEM }), ctx());
    assert.equal(res.code, 201);
    assert.deepEqual(seen, [csrPEM]);
    const credential = (res.body as { status: { credential: Record<string, unknown> } }).status.credential;
    assert.equal(credential.clientCertificateData, "CERT PEM");
    assert.equal("clientKeyData" in credential, false);
  });

  it("answers 422 naming the field for a request that is not one, before authenticating", async () => {
    const { a, calls } = ok();
    const { handler } = setup(a);
    const res = await handler(request({ certificateSigningRequest: "not a CSR" }), ctx());
    assert.equal(res.code, 422);
    assert.equal(
      (res.body as { message: string }).message,
      '.login.concierge.pinniped.dev "req" is invalid: spec.certificateSigningRequest: Invalid value: "<omitted>": not a PEM CERTIFICATE REQUEST',
    );
    assert.deepEqual(calls, []);
    const wrongType = await handler(request({ certificateSigningRequest: 7 }), ctx());
    assert.equal(wrongType.code, 400);
  });
});
