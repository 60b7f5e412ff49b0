import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseFlags } from "./flags.ts";
import { run } from "./main.ts";
import { parseWhoAmI } from "./whoami.ts";

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env,
  });
  return { code, stdout, stderr };
}

describe("pinniped", () => {
  it("has --help on every command", async () => {
    for (const argv of [
      [],
      ["--help"],
      ["login", "--help"],
      ["login", "static", "--help"],
      ["whoami", "--help"],
      ["get", "kubeconfig", "--help"],
      ["get", "-h"],
    ]) {
      const r = await cli(argv);
      assert.equal(r.code, 0, argv.join(" "));
      assert.match(r.stdout, /Usage:/, argv.join(" "));
      assert.equal(r.stderr, "");
    }
  });

  it("reports errors on stderr with exit 1 and says what to do", async () => {
    let r = await cli(["frobnicate"]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^Error: unknown command "frobnicate" for "pinniped"\nRun 'pinniped --help' for usage\.\n$/,
    );
    r = await cli(["login", "static", "--nope"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Run 'pinniped login static --help' for usage/);
    r = await cli(["login", "oidc"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /required flag\(s\) "issuer" not set/);
    r = await cli(["login", "saml"]);
    assert.match(r.stderr, /only "login oidc" and "login static" are supported/);
    r = await cli(["whoami", "-o", "xml"]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error: unknown output format: "xml"\n');
  });

  it("prints an ExecCredential for a static token without the Concierge", async () => {
    const r = await cli(["login", "static", "--token-env=T"], { T: "secret" });
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), {
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      spec: { interactive: false },
      status: { token: "secret" },
    });
  });

  it("never echoes the token in an error", async () => {
    const r = await cli([
      "login",
      "static",
      "--token=hunter2",
      "--enable-concierge",
      "--concierge-endpoint=http://x",
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /invalid endpoint scheme "http"/);
    assert.doesNotMatch(r.stderr, /hunter2/);
  });

  it("parses whoami flags", () => {
    const o = parseWhoAmI(["-o", "json", "--kubeconfig=/k", "--timeout=2s"]);
    assert.ok(o !== "help");
    assert.deepEqual(o, {
      output: "json",
      kubeconfig: "/k",
      context: undefined,
      apiGroupSuffix: "pinniped.dev",
      timeoutMs: 2000,
    });
    assert.throws(() => parseWhoAmI(["--timeout=soon"]), /invalid --timeout/);
  });
});

describe("flag values", () => {
  it("takes the next argument as a string flag's value even when it starts with '-', as pflag does", () => {
    const { values } = parseFlags("login static", ["--token", "-abc", "--enable-concierge"], {
      token: { type: "string" },
      "enable-concierge": { type: "boolean" },
    });
    assert.equal(values.token, "-abc");
    assert.equal(values["enable-concierge"], true);
  });
});
