// Loads the cold bundle (cold.ts) on first use: from the executable's embedded asset, or from
// the file next to the npm package's entry. It needs nothing but Node's built-in modules.
import { createRequire } from "node:module";
import { join } from "node:path";
import { compileFunction } from "node:vm";

type Cold = typeof import("./cold.ts");

export const coldFileName = "pinniped-cold.cjs";
let loaded: Cold | undefined;

export function loadCold(): Cold {
  if (loaded) return loaded;
  const require = createRequire(__filename);
  const path = join(__dirname, coldFileName);
  const sea = require("node:sea") as typeof import("node:sea");
  if (!sea.isSea()) {
    loaded = require(path) as Cold;
    return loaded;
  }
  const module = { exports: {} as Cold };
  compileFunction(
    sea.getAsset(coldFileName, "utf8"),
    ["exports", "require", "module", "__filename", "__dirname"],
    {
      filename: path,
    },
  )(module.exports, require, module, path, __dirname);
  loaded = module.exports;
  return loaded;
}
