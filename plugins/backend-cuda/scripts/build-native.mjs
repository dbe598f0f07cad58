// Install step: build the CUDA addon from @ecomla/gpu-common's kernels with nvcc (see that script's
// header for the environment variables). Never fails the install; the outcome goes to build/gpu-status.json.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));
const script = createRequire(import.meta.url).resolve("@ecomla/gpu-common/build-native");
const r = spawnSync(process.execPath, [script, "--flavor", "cuda", "--pkg-dir", pkgDir, ...process.argv.slice(2)], { stdio: "inherit" });
process.exit(r.status ?? 1);
