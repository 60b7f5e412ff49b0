import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runCommand } from "../test/harness/process.ts";
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
    assert.equal(r.stderr, "Error: unknown flag: --nope\n");
    r = await cli(["login", "oidc"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /required flag\(s\) "issuer" not set/);
    r = await cli(["login", "saml"]);
    assert.equal(
      r.stderr,
      `Error: unknown command "saml" for "pinniped login"\nRun 'pinniped login --help' for usage.\n`,
    );
    r = await cli(["whoami", "-o", "xml"]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error: unknown output format: "xml"\n');
  });

  it("words flag mistakes as pflag does, in one line, with exit 1", async () => {
    const cases: [string[], string][] = [
      [["login", "static", "--bogus"], "Error: unknown flag: --bogus\n"],
      [["whoami", "--kubeconfig"], "Error: flag needs an argument: --kubeconfig\n"],
      [["whoami", "-o"], "Error: flag needs an argument: --output\n"],
      [["whoami", "-x"], "Error: unknown shorthand flag: 'x' in -x\n"],
      [["--bogus"], "Error: unknown flag: --bogus\n"],
      [
        ["login", "static", "--token=t", "--enable-concierge=maybe"],
        'Error: invalid argument "maybe" for "--enable-concierge" flag: strconv.ParseBool: parsing "maybe": invalid syntax\n',
      ],
      [["whoami", "extra"], 'Error: unknown command "extra" for "pinniped whoami"\n'],
    ];
    for (const [argv, stderr] of cases) {
      const r = await cli(argv);
      assert.equal(r.code, 1, argv.join(" "));
      assert.equal(r.stderr, stderr, argv.join(" "));
      assert.equal(r.stdout, "");
    }
  });

  it("takes pflag's --flag=true and --flag=false for boolean flags", async () => {
    const r = await cli(["login", "static", "--token=t", "--enable-concierge=false"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).status, { token: "t" });
  });

  it("prints a command group's help on stderr with exit 1 when its subcommand is missing", async () => {
    for (const group of ["get", "login"]) {
      const r = await cli([group]);
      assert.equal(r.code, 1, group);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, new RegExp(`Usage:\n  pinniped ${group} \\[command\\]`));
    }
  });

  it("prints its version as text, json and yaml", async () => {
    let r = await cli(["version"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^v\d+\.\d+\.\d+\S*\n$/);
    r = await cli(["version", "-o", "json"]);
    const info = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(info), [
      "major",
      "minor",
      "gitVersion",
      "gitCommit",
      "gitTreeState",
      "buildDate",
      "nodeVersion",
      "platform",
    ]);
    assert.equal(info.nodeVersion, process.version);
    r = await cli(["version", "-o", "yaml"]);
    assert.match(r.stdout, /^major: "?\d+"?\n/);
    r = await cli(["version", "-o", "xml"]);
    assert.equal(r.code, 1);
  });

  it("prints completion scripts that bash, zsh and fish accept", async () => {
    for (const shell of ["bash", "zsh", "fish"]) {
      const r = await cli(["completion", shell]);
      assert.equal(r.code, 0, shell);
      assert.match(r.stdout, /pinniped/);
    }
    const r = await cli(["completion", "tcsh"]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error: unknown shell "tcsh" (one of bash, zsh, fish)\n');
  });

  it("completes commands and flags in bash", async () => {
    const script = (await cli(["completion", "bash"])).stdout;
    const complete = async (words: string[]) => {
      const line = `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _pinniped; printf '%s\n' "\${COMPREPLY[@]}"`;
      const res = await runCommand("bash", ["-c", `${script}\n${line}`]);
      assert.equal(res.code, 0, res.stderr);
      return res.stdout.split("\n").filter((l) => l !== "");
    };
    assert.deepEqual(await complete(["pinniped", "lo"]), ["login"]);
    assert.deepEqual(
      await complete(["pinniped", "login", ""]).then((w) => w.filter((x) => !x.startsWith("-"))),
      ["oidc", "static"],
    );
    assert.ok((await complete(["pinniped", "login", "static", "--tok"])).includes("--token-env"));
    assert.ok(
      (await complete(["pinniped", "get", "kubeconfig", "--kubeconfig", "x", "--static-t"])).includes(
        "--static-token",
      ),
    );
    assert.deepEqual(await complete(["pinniped", "whoami", "--kubeconfig", ""]), []);
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
    assert.throws(
      () => parseWhoAmI(["--timeout=soon"]),
      /invalid argument "soon" for "--timeout" flag: time: invalid duration "soon"/,
    );
    assert.throws(() => parseWhoAmI(["--timeout=5"]), /invalid duration "5"/);
    assert.equal((parseWhoAmI(["--timeout=1m30s"]) as { timeoutMs: number }).timeoutMs, 90_000);
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
