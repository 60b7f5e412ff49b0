// Runs one command inside a fresh node's network and mount namespaces and removes them after:
//   node hack/node/launch.ts <command> [args...]
// `npm test`, the demo and `npm run cluster` go through it, and so does one test file on its own:
//   node hack/node/launch.ts node --test --test-global-setup=test/harness/global-setup.ts <file>
// Inside, the command finds the node through CONCIERGE_NODE_DIR. Run again inside a node, it just
// runs the command. Its exit code is the command's; SIGINT and SIGTERM go to the command first.
import { spawn } from "node:child_process";
import { createNodeNamespaces, enterCommand, nodeDirVariable, removeNodeNamespaces } from "./namespaces.ts";

const command = process.argv.slice(2);
if (command.length === 0) {
  process.stderr.write("usage: node hack/node/launch.ts <command> [args...]\n");
  process.exit(2);
}

async function main(): Promise<number> {
  if (process.env[nodeDirVariable]) return await runChild(command, process.env);
  const ns = await createNodeNamespaces();
  try {
    return await runChild([...enterCommand(ns, process.cwd()), ...command], {
      ...process.env,
      [nodeDirVariable]: ns.dir,
    });
  } finally {
    await removeNodeNamespaces(ns);
  }
}

function runChild(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [file, ...args] = argv as [string, ...string[]];
  const child = spawn(file, args, { stdio: "inherit", env });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  return new Promise((resolve) => {
    child.once("error", (err) => {
      process.stderr.write(`launching ${file} failed: ${err.message}\n`);
      resolve(127);
    });
    child.once("exit", (code, signal) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      resolve(code ?? (signal === "SIGINT" ? 130 : 143));
    });
  });
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  },
);
