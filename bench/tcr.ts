// TokenCredentialRequest throughput and latency, end to end, next to this machine's crypto ceiling
// measured in the same run. A dedicated control plane (etcd, kube-apiserver,
// kube-controller-manager) is started; our aggregated API server runs in a child process (this
// file again, with `server` as its argument, so that its CPU is its own and not mixed with the
// clients') with a static fake authenticator (one token, a fixed user with a few groups: the bench
// measures the handler and issuance, not an IdP), info-level audit lines formatted and dropped,
// and the real certs/ issuer behind a SignerHolder, and is registered behind the real
// kube-apiserver the way test/integration/aggregated-api.test.ts does (ExternalName Service
// `localhost`, APIServices, front-proxy config from kube-system/extension-apiserver-authentication).
// Five stages, each with the cluster's own RSA-2048 CA (as kubeadm makes it) and with a P-256 CA:
//
//   ceiling     P-256 keygen + one CA signature over a TBS-sized input, in this process, nothing else
//   issuance    certs/issue.ts issueClientCertificate, in this process
//   handler     HTTP/2 POST straight at our listener, presenting the control plane's
//               front-proxy client certificate with X-Remote-User/X-Remote-Group, as the aggregator does
//   handler, client's key (CSR)
//               the same with spec.certificateSigningRequest, as the pinniped CLI sends it: the server
//               checks the request's signature and makes no key pair
//   aggregator  HTTP/2 POST to kube-apiserver with the admin client certificate, as kubectl does;
//               kube-apiserver authenticates, authorizes and proxies to our listener
//
// Per strategy, through the aggregator: the local-CA strategies (KubeClusterSigningCertificate,
// SecretSigningCertificate and the impersonation proxy's signer all issue as the aggregator rows
// above do, from a CA in memory), and CertificateSigningRequestAPI, whose every request is a CSR
// created, approved, signed by the real kube-controller-manager, watched for and deleted, and
// JWTCredential, which signs an ES256 token (no key pair to make).
//
// Each at 1 and 8 requests in flight over one keep-alive HTTP/2 connection, in short interleaved
// rounds so a noisy neighbour or a GC pause hits every stage alike. Clients, our server and the
// control plane all share this machine, so the aggregator rows compete with kube-apiserver for the
// same cores. The CPU of the server process, kube-apiserver and this process is read per round
// from /proc. At the end, issue 16's goals for the handler next to this run's figures. About 45 s
// of measurement after about 10 s of control plane start-up; everything is stopped at the end,
// and it exits.
//
//   node bench/tcr.ts        (Node 24; node_modules/.bin/node where the system node is older)
import { generateKeyPairSync, type KeyObject, randomUUID, sign } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { ClientHttp2Session } from "node:http2";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { AuthenticatorCache, authenticationGroup } from "../authenticators/cache.ts";
import { CertificateAuthority } from "../certs/ca.ts";
import { createSigningRequest } from "../certs/csr.ts";
import { issueClientCertificate, issueServingCertificate } from "../certs/issue.ts";
import { ServingCertHolder } from "../certs/servingcert.ts";
import { SignerHolder } from "../certs/signer.ts";
import { type CSR, strategyLabel, strategyLabelValue } from "../controllers/csrapi/decide.ts";
import { CSRAPIIssuer, csrResource } from "../controllers/csrapi/issuer.ts";
import { JWTCredentialIssuer } from "../controllers/jwtcredential/issuer.ts";
import { generateStoredKey, loadKeys } from "../controllers/jwtcredential/keys.ts";
import { InformerFactory } from "../controllers/runtime/informer-factory.ts";
import { restTransport } from "../controllers/runtime/listwatch.ts";
import { type ControlPlane, startControlPlane } from "../hack/controlplane.ts";
import type { IssueRequest, Issuer } from "../issuers/issuer.ts";
import { LocalCAIssuer } from "../issuers/localca.ts";
import { KubeRestClient } from "../kube/rest.ts";
import { Logger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { startAggregatedAPIServer } from "../server/aggregated.ts";
import {
  extensionAPIServerAuthentication,
  FrontProxyConfigHolder,
  frontProxyConfigFromConfigMap,
} from "../server/frontproxy.ts";
import {
  BenchChild,
  findApiserverPid,
  kubectl,
  newTally,
  openSession,
  percentile,
  round,
  type Tally,
} from "./lib.ts";
import { quickOr } from "./quick.ts";

const warmupMs = quickOr(300, 150);
const rounds = quickOr(5, 2);
const roundMs = quickOr(500, 250);
const concurrencies = [1, 8] as const;
// Issue 16's goals for the handler.
const goalHandlerOfCeiling = 0.5;
const goalCPUPerTCRMs = 0.8;

const login = "login.concierge.pinniped.dev";
const identity = "identity.concierge.pinniped.dev";
const apiServices = [`v1alpha1.${login}`, `v1alpha1.${identity}`];
const tcrPath = `/apis/${login}/v1alpha1/tokencredentialrequests`;
const namespace = "concierge-bench";
const authenticatorName = "bench";
const goodToken = "the-one-token-the-bench-authenticator-accepts";
const user = {
  username: "jane@example.com",
  groups: ["developers", "platform-team", "on-call", "readers", "k8s-users"],
};
/** The request body; with a CSR, as the CLI sends it: the client holds the key, the server makes none. */
const tcrBody = (certificateSigningRequest?: string) =>
  JSON.stringify({
    apiVersion: `${login}/v1alpha1`,
    kind: "TokenCredentialRequest",
    metadata: { name: "login" },
    spec: {
      token: goodToken,
      authenticator: { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: authenticatorName },
      ...(certificateSigningRequest === undefined ? {} : { certificateSigningRequest }),
    },
  });

type CAName = "cluster" | "p256";
type StrategyName = "local" | "csr" | "jwt";

interface ServerConfig {
  kubeconfigPath: string;
  clusterCA: { certPEM: string; keyPEM: string };
  frontProxyData: Record<string, string> | undefined;
}

type ToServer =
  | { type: "start"; config: ServerConfig }
  | { type: "use"; ca: CAName; strategy: StrategyName }
  | { type: "stop" };
type FromServer = { type: "ready"; port: number; servingCAPEM: string } | { type: "ok" };

function signAsync(data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign("sha256", data, key, (error, signature) => (error ? reject(error) : resolve(signature)));
  });
}

/** The least any issuer must do: a P-256 key pair for the leaf and one CA signature over a TBS-sized input. */
function ceiling(caKey: KeyObject): () => Promise<unknown> {
  const tbs = Buffer.alloc(420, 1);
  return async () => {
    generateKeyPairSync("ec", { namedCurve: "P-256" });
    return signAsync(tbs, caKey);
  };
}

const plainBody = tcrBody();

/** An HTTP/2 POST of a TokenCredentialRequest; rejects unless it came back 201 with a credential. */
function postTCR(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  body: string = plainBody,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": tcrPath,
      "content-type": "application/json",
      accept: "application/json",
      ...headers,
    });
    let status = 0;
    let text = "";
    req.setEncoding("utf8");
    req.on("response", (h) => {
      status = Number(h[":status"]);
    });
    req.on("data", (chunk: string) => {
      text += chunk;
    });
    req.on("end", () =>
      status === 201 && (text.includes('"clientCertificateData"') || text.includes('"token"'))
        ? resolve()
        : reject(new Error(`TokenCredentialRequest answered ${status}: ${text.slice(0, 400)}`)),
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** The issuer the stage measures: the bench switches strategies between rounds. */
class SwitchedIssuer implements Issuer {
  readonly name = "bench strategy";
  current: Issuer;
  constructor(initial: Issuer) {
    this.current = initial;
  }
  health() {
    return this.current.health();
  }
  issue(request: IssueRequest) {
    return this.current.issue(request);
  }
}

/** The child: our aggregated API server alone, switched between CAs and strategies by the parent. */
async function runServerChild(): Promise<void> {
  const send = (message: FromServer) => process.send!(message);
  let stop: (() => Promise<void>) | undefined;
  let use: ((ca: CAName, strategy: StrategyName) => void) | undefined;
  process.on("message", (message: ToServer) => {
    void (async () => {
      if (message.type === "start") {
        const { config } = message;
        const clusterCA = CertificateAuthority.load(config.clusterCA.certPEM, config.clusterCA.keyPEM);
        const cas = {
          cluster: clusterCA,
          p256: await CertificateAuthority.create("bench P-256 signing CA", 3_600_000),
        };
        const signer = new SignerHolder("bench signing CA");
        signer.set(clusterCA);
        const localCA = new LocalCAIssuer(signer);
        // The CSR API strategy as the Concierge runs it, here with the admin's rights.
        const kc = new KubeConfig();
        kc.loadFromFile(config.kubeconfigPath);
        const rest = new KubeRestClient(kc);
        const informers = new InformerFactory({ transport: restTransport(rest) });
        const csrAPI = new CSRAPIIssuer({
          client: rest,
          csrs: informers.informer<CSR>({
            ...csrResource,
            labelSelector: `${strategyLabel}=${strategyLabelValue}`,
          }),
        });
        csrAPI.state.set({ ok: true });
        informers.start();
        // Its key as its reconciler would load it; kube-apiserver's trust is not what this measures.
        const jwt = new JWTCredentialIssuer({ issuer: "https://127.0.0.1/bench", audience: "bench" });
        const jwtKey = generateStoredKey(Date.now());
        jwt.keys.set(loadKeys([jwtKey], jwtKey.kid));
        jwt.state.set({ ok: true });
        const switched = new SwitchedIssuer(localCA);
        const issuers = { local: localCA, csr: csrAPI, jwt };
        use = (ca, strategy) => {
          signer.set(cas[ca]);
          switched.current = issuers[strategy];
        };

        const servingCA = await CertificateAuthority.create("bench serving CA", 3_600_000);
        const serving = await issueServingCertificate(
          servingCA,
          { dnsNames: [`concierge-api.${namespace}.svc`, "localhost"], ips: ["127.0.0.1"] },
          3_600_000,
        );
        const certs = new ServingCertHolder();
        certs.set({ certPEM: serving.certPEM, keyPEM: serving.keyPEM });
        // Read once: the bench's control plane never rotates the front-proxy CA.
        const frontProxy = new FrontProxyConfigHolder();
        frontProxy.set(frontProxyConfigFromConfigMap(config.frontProxyData));
        const authenticators = new AuthenticatorCache();
        authenticators.store(
          { apiGroup: authenticationGroup, kind: "JWTAuthenticator", name: authenticatorName },
          {
            fingerprint: "bench",
            authenticator: {
              authenticateToken: async (token) =>
                token === goodToken
                  ? { authenticated: true, user: { username: user.username, groups: [...user.groups] } }
                  : { authenticated: false, reason: "unknown token" },
              close: () => {},
            },
          },
        );
        const server = await startAggregatedAPIServer({
          certs,
          frontProxy,
          host: "127.0.0.1",
          port: 0,
          authenticators,
          issuer: switched,
          // Info level into nowhere: the audit lines are formatted as in production, then dropped.
          log: new Logger({ level: "info", sink: () => {} }),
          metrics: new Metrics(),
        });
        stop = async () => {
          await informers.stop();
          await server.close();
          rest.close?.();
        };
        send({ type: "ready", port: server.port, servingCAPEM: servingCA.certPEM });
      } else if (message.type === "use") {
        use?.(message.ca, message.strategy);
        send({ type: "ok" });
      } else {
        await stop?.();
        process.exit(0);
      }
    })();
  });
}

class ServerChild extends BenchChild<ToServer, FromServer> {
  constructor() {
    super(fileURLToPath(import.meta.url), "server");
  }

  async use(ca: CAName, strategy: StrategyName = "local"): Promise<void> {
    await this.ask({ type: "use", ca, strategy });
  }
}

/** Registers the child's listener behind kube-apiserver and waits until it is Available. */
async function registerConciergeAPI(cp: ControlPlane, port: number, servingCAPEM: string): Promise<void> {
  const caBundle = Buffer.from(servingCAPEM).toString("base64");
  const objects = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "concierge-api", namespace },
      spec: { type: "ExternalName", externalName: "localhost", ports: [{ port }] },
    },
    ...[login, identity].map((group) => ({
      apiVersion: "apiregistration.k8s.io/v1",
      kind: "APIService",
      metadata: { name: `v1alpha1.${group}` },
      spec: {
        group,
        version: "v1alpha1",
        groupPriorityMinimum: 9900,
        versionPriority: 15,
        caBundle,
        service: { namespace, name: "concierge-api", port },
      },
    })),
  ];
  await kubectl(cp, ["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
  await kubectl(cp, [
    "wait",
    "--for=condition=Available",
    "--timeout=90s",
    ...apiServices.map((n) => `apiservice/${n}`),
  ]);
}

/** Each CA's rows, in this order. */
const row = { ceiling: 0, issuance: 1, handler: 2, handlerCSR: 3, aggregator: 4 } as const;
const rowsPerCA = Object.keys(row).length;

interface Stage {
  name: string;
  ca: CertificateAuthority;
  caName: string;
  /** Which of the server's CAs the stage issues from. */
  serverCA: CAName;
  /** Whether the stage's work happens in the server process (or here, in-process). */
  viaServer: boolean;
  op: () => Promise<unknown>;
}

const log = (m: string) => process.stderr.write(`[bench/tcr] ${m}\n`);
const cpuMs = (seconds: number | undefined, count: number) =>
  seconds === undefined ? "-" : ((1000 * seconds) / count).toFixed(2);

async function main(): Promise<void> {
  process.once("SIGINT", () => process.exit(130)); // the control plane's exit hook kills its children
  const began = Date.now();
  const cp = await startControlPlane({ name: "bench", log });
  let child: ServerChild | undefined;
  const sessions: ClientHttp2Session[] = [];
  try {
    const [caCert, caKey, frontProxyCert, frontProxyKey, adminCert, adminKey] = await Promise.all(
      [
        cp.pki.ca.cert,
        cp.pki.ca.key,
        cp.pki.frontProxyClient.cert,
        cp.pki.frontProxyClient.key,
        cp.pki.admin.cert,
        cp.pki.admin.key,
      ].map((f) => readFile(f, "utf8")),
    );
    const clusterCA = CertificateAuthority.load(caCert!, caKey!);
    // The in-process stages' P-256 CA; the server has one of its own, made the same way.
    const p256CA = await CertificateAuthority.create("bench P-256 signing CA", 3_600_000);
    const configMap = JSON.parse(
      await kubectl(cp, [
        "get",
        "configmap",
        "-n",
        extensionAPIServerAuthentication.namespace,
        extensionAPIServerAuthentication.name,
        "-o",
        "json",
      ]),
    ) as { data?: Record<string, string> };

    child = new ServerChild();
    const serverPid = child.process.pid;
    const ready = await child.ask({
      type: "start",
      config: {
        kubeconfigPath: cp.kubeconfigPath,
        clusterCA: { certPEM: caCert!, keyPEM: caKey! },
        frontProxyData: configMap.data,
      },
    });
    if (ready.type !== "ready") throw new Error(`unexpected answer ${ready.type}`);
    await registerConciergeAPI(cp, ready.port, ready.servingCAPEM);
    const apiserverPid = await findApiserverPid();
    const watched = { server: serverPid, apiserver: apiserverPid };
    const direct = await openSession(
      `https://127.0.0.1:${ready.port}`,
      { ca: ready.servingCAPEM, cert: frontProxyCert!, key: frontProxyKey! },
      log,
    );
    const viaAggregator = await openSession(
      cp.server,
      { ca: caCert!, cert: adminCert!, key: adminKey! },
      log,
    );
    sessions.push(direct, viaAggregator);
    // What kube-apiserver's aggregator forwards for the admin.
    const frontProxyHeaders = { "x-remote-user": "kubernetes-admin", "x-remote-group": "system:masters" };
    const directOp = () => postTCR(direct, { ...frontProxyHeaders, "audit-id": randomUUID() });
    // One CSR for the whole run, as the CLI keeps its key between logins.
    const csrBody = tcrBody((await createSigningRequest(user)).csrPEM);
    const directCSROp = () => postTCR(direct, { ...frontProxyHeaders, "audit-id": randomUUID() }, csrBody);
    const aggregatorOp = () => postTCR(viaAggregator, {});
    // Every path must work before anything is timed.
    await directOp();
    await directCSROp();
    await aggregatorOp();
    await child.use("cluster", "csr");
    await aggregatorOp();
    await child.use("cluster", "jwt");
    await aggregatorOp();
    await child.use("cluster", "local");
    log(`set up in ${((Date.now() - began) / 1000).toFixed(1)}s; measuring`);

    const stages: Stage[] = [];
    for (const [caName, ca, serverCA] of [
      ["RSA-2048 (cluster CA)", clusterCA, "cluster"],
      ["P-256", p256CA, "p256"],
    ] as const) {
      stages.push(
        {
          name: "ceiling (keygen + 1 sign)",
          ca,
          caName,
          serverCA,
          viaServer: false,
          op: ceiling(ca.signingKey()),
        },
        {
          name: "issuance (issueClientCertificate)",
          ca,
          caName,
          serverCA,
          viaServer: false,
          op: () => issueClientCertificate(ca, user),
        },
        { name: "handler (HTTP/2, front-proxy cert)", ca, caName, serverCA, viaServer: true, op: directOp },
        {
          name: "handler, client's key (CSR)",
          ca,
          caName,
          serverCA,
          viaServer: true,
          op: directCSROp,
        },
        {
          name: "aggregator (kube-apiserver, admin)",
          ca,
          caName,
          serverCA,
          viaServer: true,
          op: aggregatorOp,
        },
      );
    }

    // Per strategy through the aggregator; the local-CA strategies with the cluster's RSA CA.
    const strategyStages: { name: string; strategy: StrategyName }[] = [
      {
        name: "local CA (KubeClusterSigningCertificate, SecretSigningCertificate, ImpersonationProxy)",
        strategy: "local",
      },
      { name: "CertificateSigningRequestAPI (real kube-controller-manager)", strategy: "csr" },
      { name: "JWTCredential (ES256 token)", strategy: "jwt" },
    ];
    const strategyResults = new Map<number, Tally[]>();

    const results = new Map<number, Tally[]>();
    const measureStarted = performance.now();
    for (const concurrency of concurrencies) {
      const tallies = stages.map(newTally);
      const scratch = newTally();
      for (const stage of stages) {
        await child.use(stage.serverCA);
        await round(stage.op, concurrency, warmupMs, scratch, watched);
      }
      for (let i = 0; i < rounds; i++) {
        for (const [j, stage] of stages.entries()) {
          await child.use(stage.serverCA);
          await round(stage.op, concurrency, roundMs, tallies[j]!, watched);
        }
      }
      results.set(concurrency, tallies);
      const strategyTallies = strategyStages.map(newTally);
      for (const stage of strategyStages) {
        await child.use("cluster", stage.strategy);
        await round(aggregatorOp, concurrency, warmupMs, scratch, watched);
      }
      for (let i = 0; i < rounds; i++) {
        for (const [j, stage] of strategyStages.entries()) {
          await child.use("cluster", stage.strategy);
          await round(aggregatorOp, concurrency, roundMs, strategyTallies[j]!, watched);
        }
      }
      await child.use("cluster", "local");
      strategyResults.set(concurrency, strategyTallies);
    }
    const measuredSeconds = (performance.now() - measureStarted) / 1000;

    console.log(
      `node ${process.version}; ${rounds} × ${roundMs} ms per cell, interleaved, after ${warmupMs} ms warm-up; ` +
        `measured for ${measuredSeconds.toFixed(0)} s on a machine with ${availableParallelism()} CPUs`,
    );
    console.log(
      "CPU ms/req: our server process | kube-apiserver | this process (the clients; the in-process stages' own work).\n" +
        "Ratios are of req/s within one CA and concurrency.",
    );
    const header = `  ${"stage".padEnd(36)} ${"req/s".padStart(7)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)}  ${"CPU ms/req".padStart(20)}  ratio`;
    for (const concurrency of concurrencies) {
      const tallies = results.get(concurrency)!;
      for (let base = 0; base < stages.length; base += rowsPerCA) {
        console.log(`\n${stages[base]!.caName} CA → P-256 leaf, ${concurrency} in flight`);
        console.log(header);
        const rate = (k: number) => tallies[base + k]!.count / tallies[base + k]!.seconds;
        const ratios = [
          "",
          `${((100 * rate(row.issuance)) / rate(row.ceiling)).toFixed(0)}% of ceiling`,
          `${((100 * rate(row.handler)) / rate(row.ceiling)).toFixed(0)}% of ceiling, ${((100 * rate(row.handler)) / rate(row.issuance)).toFixed(0)}% of issuance`,
          `${((100 * rate(row.handlerCSR)) / rate(row.handler)).toFixed(0)}% of handler`,
          `${((100 * rate(row.aggregator)) / rate(row.handler)).toFixed(0)}% of handler, ${((100 * rate(row.aggregator)) / rate(row.ceiling)).toFixed(0)}% of ceiling`,
        ];
        for (let k = 0; k < rowsPerCA; k++) {
          const stage = stages[base + k]!;
          const t = tallies[base + k]!;
          const sorted = t.latenciesMs.sort((a, b) => a - b);
          const server = stage.viaServer ? cpuMs(t.otherCPUSeconds.server, t.count) : "-";
          const apiserver = k === row.aggregator ? cpuMs(t.otherCPUSeconds.apiserver, t.count) : "-";
          console.log(
            `  ${stage.name.padEnd(36)} ${rate(k).toFixed(0).padStart(7)} ` +
              `${percentile(sorted, 50).toFixed(2).padStart(7)} ${percentile(sorted, 99).toFixed(2).padStart(7)}  ` +
              `${`${server} | ${apiserver} | ${cpuMs(t.cpuSeconds, t.count)}`.padStart(20)}  ${ratios[k]}`,
          );
        }
      }
    }
    const ceilingRate = (concurrency: number) => {
      const t = results.get(concurrency)![0]!;
      return t.count / t.seconds;
    };
    for (const concurrency of concurrencies) {
      console.log(
        `\nper strategy, through the aggregator (kube-apiserver, admin), ${concurrency} in flight; ` +
          `crypto ceiling with the RSA-2048 CA in this run: ${ceilingRate(concurrency).toFixed(0)} req/s`,
      );
      console.log(
        `  ${"strategy".padEnd(86)} ${"req/s".padStart(7)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)}  ${"server CPU ms/req".padStart(17)}  ratio`,
      );
      for (const [j, stage] of strategyStages.entries()) {
        const t = strategyResults.get(concurrency)![j]!;
        const sorted = t.latenciesMs.sort((a, b) => a - b);
        const rate = t.count / t.seconds;
        console.log(
          `  ${stage.name.padEnd(86)} ${rate.toFixed(0).padStart(7)} ${percentile(sorted, 50).toFixed(2).padStart(7)} ` +
            `${percentile(sorted, 99).toFixed(2).padStart(7)}  ${cpuMs(t.otherCPUSeconds.server, t.count).padStart(17)}  ` +
            `${((100 * rate) / ceilingRate(concurrency)).toFixed(1)}% of ceiling`,
        );
      }
    }

    // Issue 16's goals, at 8 in flight, from the rows above.
    const at8 = results.get(8)!;
    const byCA = (offset: number) =>
      [0, rowsPerCA].map((base) => ({
        caName: stages[base]!.caName,
        t: at8[base + offset]!,
        ceiling: at8[base]!,
      }));
    const perCA = (format: (row: ReturnType<typeof byCA>[number]) => string, offset: number) =>
      byCA(offset)
        .map((row) => `${row.caName} CA ${format(row)}`)
        .join(", ");
    console.log("\nGoals (issue 16), 8 in flight, this run:");
    console.log(
      `  handler throughput / crypto ceiling: ${perCA(
        ({ t, ceiling }) => `${(t.count / t.seconds / (ceiling.count / ceiling.seconds)).toFixed(2)}×`,
        row.handler,
      )} (goal ≥ ${goalHandlerOfCeiling}×)`,
    );
    console.log(
      `  server CPU per TCR, straight at the handler: ${perCA(({ t }) => `${cpuMs(t.otherCPUSeconds.server, t.count)} ms`, row.handler)}; ` +
        `with the client's key (CSR): ${perCA(({ t }) => `${cpuMs(t.otherCPUSeconds.server, t.count)} ms`, row.handlerCSR)}; ` +
        `through the aggregator: ${perCA(({ t }) => `${cpuMs(t.otherCPUSeconds.server, t.count)} ms`, row.aggregator)} (goal ≤ ${goalCPUPerTCRMs} ms)`,
    );
    console.log(
      `  for scale, the crypto alone (ceiling row, this process): ${perCA(({ ceiling }) => `${cpuMs(ceiling.cpuSeconds, ceiling.count)} ms`, 0)}`,
    );
  } finally {
    for (const session of sessions) session.close();
    await child?.stop();
    await cp.stop();
  }
}

if (process.argv[2] === "server") await runServerChild();
else await main();
