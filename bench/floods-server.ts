// The server side of bench/floods.ts, in a process of its own so that its event loop and memory
// are measured without the flooding clients: our aggregated API with a JWT authenticator whose
// claim validation rule is quadratic in the number of groups, against a local test issuer.
// Sends its port, its TLS material and a signed token with 6,000 groups; then, for each "measure"
// message, answers with the event-loop delay, the share of it spent running this process's own
// code, and peak RSS seen since the previous one.
import { createHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { AuthenticatorCache, authenticationGroup } from "../authenticators/cache.ts";
import { compileClaims } from "../authenticators/cel/claims.ts";
import { newJWTAuthenticator } from "../authenticators/jwt/authenticator.ts";
import { newSigningKey, signToken, startTestIssuer } from "../authenticators/jwt/testing.ts";
import { ServingCertHolder } from "../certs/servingcert.ts";
import { startAggregatedAPIServer } from "../server/aggregated.ts";
import { FrontProxyConfigHolder } from "../server/frontproxy.ts";
import { testPKI } from "../test/harness/frontproxy-pki.ts";

const pki = await testPKI();
const issuer = await startTestIssuer();
const key = await newSigningKey("ES256", "bench");
issuer.setKeys([key]);
const spec = {
  claimValidationRules: [{ expression: "claims.groups.all(g, claims.groups.exists(h, h == g))" }],
};
const authenticators = new AuthenticatorCache();
authenticators.store(
  { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: "corp" },
  {
    fingerprint: "f",
    authenticator: newJWTAuthenticator({
      name: "corp",
      issuer: issuer.url,
      audiences: ["concierge"],
      compiled: compileClaims(spec).compiled,
      claimValidationRules: [],
      systemPrefixPolicy: "Reject",
      jwksURL: issuer.jwksURL,
      caPEM: issuer.caPEM,
    }),
  },
);
const certs = new ServingCertHolder();
certs.set(pki.serving);
const frontProxy = new FrontProxyConfigHolder();
frontProxy.set(pki.config);
const server = await startAggregatedAPIServer({
  certs,
  frontProxy,
  host: "127.0.0.1",
  port: 0,
  authenticators,
  issuer: { issue: async () => ({ ok: false, reason: "the bench issues nothing" }) as never },
});

let delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();
// Every 5 ms, the CPU time this thread spent since the previous tick. A tick held up by our own
// synchronous work (or its garbage) records that work's length; one held up only by waiting for a
// core on a busy machine records little. So its p99 is the part of the delay this process causes.
let busy = createHistogram();
let lastCPU = process.threadCpuUsage();
const ticker = setInterval(() => {
  const now = process.threadCpuUsage();
  busy.record(Math.max(1, now.user + now.system - lastCPU.user - lastCPU.system));
  lastCPU = now;
}, 5);
let peakRSS = process.memoryUsage().rss;
const sampler = setInterval(() => {
  peakRSS = Math.max(peakRSS, process.memoryUsage().rss);
}, 20);
process.on("message", (message) => {
  if (message !== "measure") return;
  delay.disable();
  process.send?.({
    p99Ms: delay.percentile(99) / 1e6,
    maxMs: delay.max / 1e6,
    ownCPUp99Ms: busy.percentile(99) / 1e3,
    peakRSSMiB: Math.max(peakRSS, process.memoryUsage().rss) / 2 ** 20,
  });
  delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  busy = createHistogram();
  peakRSS = process.memoryUsage().rss;
});
process.on("disconnect", async () => {
  clearInterval(sampler);
  clearInterval(ticker);
  await server.close();
  await issuer.close();
  process.exit(0);
});
process.send?.({
  port: server.port,
  pki: { ca: pki.servingCAPEM, cert: pki.proxyClient.certPEM, key: pki.proxyClient.keyPEM },
  manyGroupsToken: await signToken(key, {
    iss: issuer.url,
    aud: "concierge",
    username: "jane",
    groups: Array.from({ length: 6000 }, (_, i) => `g${i}`),
    exp: Math.floor(Date.now() / 1000) + 3600,
  }),
});
