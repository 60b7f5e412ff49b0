// The aggregated API under the floods of issue 15, measured inside the server's own process
// (bench/floods-server.ts): event-loop delay p99 and max, the p99 of the CPU time the server's
// own thread spent per 5 ms tick (the part of the delay it causes itself), and peak RSS, per stage.
//
//   idle        nothing, for 2 s
//   big bodies  1,000 concurrent TokenCredentialRequests with 250 KB tokens, over 10 HTTP/2
//               connections (body limit, in-flight limit: most are 413 or 429)
//   quadratic   20 concurrent TokenCredentialRequests with a validly signed token of 6,000
//               groups, against a JWTAuthenticator whose claim rule is quadratic in them (the
//               CEL cost budget refuses them), while /healthz is polled
//
// Goals (issue 15): p99 ≤ 50 ms, peak RSS under the Deployment's memory limit; a ✗ marks a figure
// past its goal. Printed, never asserted: the machine is shared, and on a loaded one the idle
// stage's p99 shows how much of the delay is only waiting for a core. About 15 s; needs no cluster.
//
//   node bench/floods.ts
import { fork } from "node:child_process";
import { type ClientHttp2Session, connect } from "node:http2";
import { availableParallelism, loadavg } from "node:os";
import { percentile } from "./lib.ts";

interface Ready {
  port: number;
  pki: { ca: string; cert: string; key: string };
  manyGroupsToken: string;
}
interface Measured {
  p99Ms: number;
  maxMs: number;
  ownCPUp99Ms: number;
  peakRSSMiB: number;
}

const child = fork(new URL("./floods-server.ts", import.meta.url), [], {
  stdio: ["ignore", "inherit", "inherit", "ipc"],
});
const ready = await new Promise<Ready>((resolve) => child.once("message", (m) => resolve(m as Ready)));
const measure = () =>
  new Promise<Measured>((resolve) => {
    child.once("message", (m) => resolve(m as Measured));
    child.send("measure");
  });

// Node's HTTP/2 server resets a session that buffers more than 10 MB (maxSessionMemory) with
// ENHANCE_YOUR_CALM, so the flood spreads over many connections, 20 streams each, to reach the
// handler; each stage gets connections of its own.
const open: ClientHttp2Session[] = [];
const sessions = (n: number): ClientHttp2Session[] =>
  Array.from({ length: n }, () => {
    const session = connect(`https://127.0.0.1:${ready.port}`, {
      ca: ready.pki.ca,
      cert: ready.pki.cert,
      key: ready.pki.key,
    });
    session.on("error", () => {});
    open.push(session);
    return session;
  });
const tcr = (token: string) =>
  JSON.stringify({
    apiVersion: "login.concierge.pinniped.dev/v1alpha1",
    kind: "TokenCredentialRequest",
    spec: {
      token,
      authenticator: {
        apiGroup: "authentication.concierge.pinniped.dev",
        kind: "JWTAuthenticator",
        name: "corp",
      },
    },
  });

function post(
  session: ClientHttp2Session,
  path: string,
  body?: string,
): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const stream = session.request({
      ":method": body === undefined ? "GET" : "POST",
      ":path": path,
      "content-type": "application/json",
      "x-remote-user": "system:anonymous",
      "x-remote-group": "system:unauthenticated",
    });
    let status = 0;
    stream.on("response", (h) => {
      status = Number(h[":status"]);
    });
    stream.on("data", () => {});
    // A server that answers before reading the whole body resets the rest of the stream.
    stream.on("error", () => resolve({ status: status || -1, ms: performance.now() - started }));
    stream.on("close", () => resolve({ status, ms: performance.now() - started }));
    stream.end(body);
  });
}

/** "400× 413, 600× 429": how many answers had each status (-1: reset before an answer). */
function summary(replies: { status: number }[]): string {
  const byStatus = new Map<number, number>();
  for (const r of replies) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
  return [...byStatus].map(([status, n]) => `${n}× ${status}`).join(", ");
}

const tcrPath = "/apis/login.concierge.pinniped.dev/v1alpha1/tokencredentialrequests";
const rows: [string, Measured, string][] = [];

await new Promise((resolve) => setTimeout(resolve, 2000));
rows.push(["idle", await measure(), ""]);

const big = tcr("t".repeat(250_000));
const floodSessions = sessions(50);
const flood = await Promise.all(
  Array.from({ length: 1000 }, (_, i) => post(floodSessions[i % floodSessions.length]!, tcrPath, big)),
);
rows.push(["big bodies", await measure(), summary(flood)]);

const [healthSession, ...quadraticSessions] = sessions(5);
let polling = true;
const health: number[] = [];
const poll = (async () => {
  while (polling) health.push((await post(healthSession!, "/healthz")).ms);
})();
const quadratic = await Promise.all(
  Array.from({ length: 20 }, (_, i) =>
    post(quadraticSessions[i % quadraticSessions.length]!, tcrPath, tcr(ready.manyGroupsToken)),
  ),
);
polling = false;
await poll;
health.sort((a, b) => a - b);
rows.push([
  "quadratic",
  await measure(),
  `${summary(quadratic)}; /healthz p99 ${percentile(health, 99).toFixed(1)} ms over ${health.length}`,
]);

const goalP99Ms = 50;
const memoryLimitMiB = 256;
console.log(
  `goals: loop p99 ≤ ${goalP99Ms} ms, peak RSS < ${memoryLimitMiB} MiB (the Deployment's limit); ` +
    `load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores (a busy machine delays timers too: compare with idle)`,
);
console.log("stage        loop p99      of it own CPU   loop max   peak RSS       answers");
const mark = (ok: boolean) => (ok ? "  " : " ✗");
for (const [stage, m, note] of rows) {
  console.log(
    `${stage.padEnd(12)} ${m.p99Ms.toFixed(1).padStart(6)} ms${mark(m.p99Ms <= goalP99Ms)} ${m.ownCPUp99Ms.toFixed(1).padStart(9)} ms${mark(m.ownCPUp99Ms <= goalP99Ms)} ${m.maxMs.toFixed(1).padStart(7)} ms ${m.peakRSSMiB.toFixed(0).padStart(6)} MiB${mark(m.peakRSSMiB < memoryLimitMiB)}   ${note}`,
  );
}
for (const s of open) s.close();
child.disconnect();
