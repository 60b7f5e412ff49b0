// The process entry point of `pinniped`: bin/pinniped in a clone, and the bundle that the
// executable and the npm package are built from (hack/build-cli.ts).
import { run } from "./main.ts";

run(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`Error: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
