// Builds the N-API addon with node-gyp. Run by the package's `install` lifecycle (so the root
// `pnpm install` builds it) and by `pnpm run build:native`. Skips the build when the addon is newer
// than every native source, so repeated installs are cheap; `--force` rebuilds.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));
const addon = join(pkgDir, "build", "Release", "ecomla_cpu.node");
const force = process.argv.includes("--force");

function newestSourceMs() {
  const files = [join(pkgDir, "binding.gyp"), ...readdirSync(join(pkgDir, "native")).map((f) => join(pkgDir, "native", f))];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

if (!force && existsSync(addon) && statSync(addon).mtimeMs > newestSourceMs()) {
  process.exit(0);
}

const require = createRequire(import.meta.url);
const nodeGyp = require.resolve("node-gyp/bin/node-gyp.js");
const args = [nodeGyp, "rebuild", `--jobs=max`];
// node-gyp otherwise downloads Node's headers, which fails offline; the headers ship with the
// Node install itself (e.g. /usr/include/node), so point it there unless npm config already does.
if (!process.env.npm_config_nodedir) {
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
}
const result = spawnSync(process.execPath, args, { cwd: pkgDir, stdio: "inherit" });
if (result.status !== 0) {
  console.error(
    "@ecomla/backend-cpu: building the native addon failed. It needs a C++17 compiler, make, python3 and " +
      "OpenBLAS (Debian/Ubuntu: apt-get install libopenblas-dev).",
  );
  process.exit(result.status ?? 1);
}
