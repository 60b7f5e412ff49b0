// JWT verifications per second through the JWTAuthenticator (warm JWKS, claim mapping, metrics)
// next to jose's jwtVerify with the public key in hand, for RS256 and ES256. One verification in
// flight at a time; "per CPU-s" divides by the CPU time the process used, so it is the per-core
// figure even though WebCrypto does the signature check on libuv's thread pool. About 15 s.
//
//   node bench/jwt-verify.ts        (Node 24; node_modules/.bin/node where the system node is older)
import { jwtVerify } from "jose";
import { compileClaims } from "../authenticators/cel/claims.ts";
import { newJWTAuthenticator } from "../authenticators/jwt/authenticator.ts";
import { newSigningKey, type SigningKey, signToken, startTestIssuer } from "../authenticators/jwt/testing.ts";
import { quickOr } from "./quick.ts";

const warmupMs = quickOr(500, 200);
const rounds = quickOr(6, 2);
const roundMs = quickOr(500, 200);

interface Tally {
  count: number;
  seconds: number;
  cpuSeconds: number;
}

/** One round: as many sequential verifications as fit in `ms`, with wall and CPU time. */
async function round(verify: () => Promise<unknown>, ms: number, tally: Tally): Promise<void> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const end = started + ms;
  while (performance.now() < end) {
    await verify();
    tally.count++;
  }
  tally.seconds += (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  tally.cpuSeconds += (used.user + used.system) / 1e6;
}

/**
 * Alternates short rounds of the two candidates so that a neighbour's load or a GC pause
 * (the machines are shared) hits both alike rather than whichever ran at the time.
 */
async function compare(a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[Tally, Tally]> {
  const tallies: [Tally, Tally] = [
    { count: 0, seconds: 0, cpuSeconds: 0 },
    { count: 0, seconds: 0, cpuSeconds: 0 },
  ];
  const scratch = { count: 0, seconds: 0, cpuSeconds: 0 };
  await round(a, warmupMs, scratch);
  await round(b, warmupMs, scratch);
  for (let i = 0; i < rounds; i++) {
    await round(a, roundMs, tallies[0]);
    await round(b, roundMs, tallies[1]);
  }
  return tallies;
}

const issuer = await startTestIssuer();
try {
  const keys: SigningKey[] = [await newSigningKey("RS256", "rsa"), await newSigningKey("ES256", "ec")];
  issuer.setKeys(keys);
  const authenticator = newJWTAuthenticator({
    name: "bench",
    issuer: issuer.url,
    audiences: ["concierge"],
    compiled: compileClaims({}).compiled,
    claimValidationRules: [],
    systemPrefixPolicy: "Reject",
    jwksURL: issuer.jwksURL,
    caPEM: issuer.caPEM,
  });
  try {
    await authenticator.fetchKeys();
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: issuer.url,
      aud: "concierge",
      sub: "0b5c7a52-7d0a-4f1e-9a57-0f3c2d1e4b6a",
      username: "jane@example.com",
      groups: ["developers", "platform-team", "on-call", "readers", "k8s-users"],
      iat: now,
      exp: now + 3600,
      jti: "7f9c3e",
    };
    console.log(
      `JWT verifications, one in flight, ${rounds} alternating rounds of ${roundMs} ms each after ${warmupMs} ms of warm-up`,
    );
    console.log("alg    | authenticator /s (per CPU-s) | jose.jwtVerify /s (per CPU-s) | ratio (per CPU-s)");
    for (const key of keys) {
      const token = await signToken(key, claims);
      const check = await authenticator.authenticateToken(token);
      if (!check.authenticated) throw new Error(`the benchmark token was rejected: ${check.reason}`);
      const [ours, raw] = await compare(
        () => authenticator.authenticateToken(token),
        () =>
          jwtVerify(token, key.publicKey, {
            issuer: issuer.url,
            audience: "concierge",
            algorithms: [key.alg],
          }),
      );
      const perSecond = (t: Tally) => t.count / t.seconds;
      const perCPUSecond = (t: Tally) => t.count / t.cpuSeconds;
      const cell = (t: Tally) => `${perSecond(t).toFixed(0)} (${perCPUSecond(t).toFixed(0)})`;
      const ratio = `${(perSecond(ours) / perSecond(raw)).toFixed(2)} (${(perCPUSecond(ours) / perCPUSecond(raw)).toFixed(2)})`;
      console.log(`${key.alg}  | ${cell(ours).padEnd(28)} | ${cell(raw).padEnd(29)} | ${ratio}`);
    }
  } finally {
    authenticator.close();
  }
} finally {
  await issuer.close();
}
