// Builds a GPU backend plugin's N-API addon: the kernels (kernels/*.cu here, one source for both
// flavours) through nvcc (cuda) or hipcc (rocm), then native/addon.cc linked with them by node-gyp
// (a binding.gyp generated under the plugin's build/gyp). Run by each plugin's `install` lifecycle.
// A missing or failing compiler never fails the install: the outcome is written to the plugin's
// build/gpu-status.json, which the plugin reads to say why it is unavailable.
//
//   node build-native.mjs --flavor cuda|rocm --pkg-dir <plugin folder> [--force]
//
// Environment: ECOMLA_NVCC / ECOMLA_HIPCC (the compiler to use; otherwise PATH and the toolkit folders), ECOMLA_CUDA_ARCHS (default "80,90": sm_80 and sm_90 code plus sm_90 PTX),
// ECOMLA_HIP_TARGETS (default "gfx90a"), CUDA_HOME / ROCM_PATH, ECOMLA_GPU_SKIP_BUILD=1 (record
// "skipped" and build nothing), ECOMLA_GPU_BUILD_JOBS (parallel compiles, default the CPU count).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { createRequire } from "node:module";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const commonDir = dirname(dirname(fileURLToPath(import.meta.url)));
const argv = process.argv.slice(2);
const flavorIndex = argv.indexOf("--flavor");
const flavor = flavorIndex >= 0 ? argv[flavorIndex + 1] : "cuda";
const pkgDir = resolve(argv.includes("--pkg-dir") ? argv[argv.indexOf("--pkg-dir") + 1] : process.cwd());
const force = argv.includes("--force");
const kernelDir = join(commonDir, "kernels");
const addonSrc = join(commonDir, "native", "addon.cc");
const buildDir = join(pkgDir, "build");
const objDir = join(buildDir, "gpu-objs");
const gypDir = join(buildDir, "gyp");
const addon = join(gypDir, "build", "Release", "ecomla_gpu.node");
const statusFile = join(buildDir, "gpu-status.json");
const pkgName = flavor === "rocm" ? "@ecomla/backend-rocm" : "@ecomla/backend-cuda";
if (!existsSync(join(pkgDir, "package.json"))) {
  console.error(`build-native: --pkg-dir ${pkgDir} holds no package.json`);
  process.exit(2);
}

function writeStatus(status) {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(statusFile, JSON.stringify({ flavor, ...status, at: new Date().toISOString() }, null, 2) + "\n");
}

function unavailable(reason) {
  writeStatus({ available: false, reason });
  console.warn(`${pkgName}: not built: ${reason}`);
  process.exit(0);
}

/** First executable named `name` on PATH or in `extra` folders. */
function findTool(name, extra) {
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), ...extra]) {
    if (!dir) continue;
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

function sources() {
  return readdirSync(kernelDir).filter((f) => f.endsWith(".cu")).sort();
}

function newestSourceMs() {
  const files = [fileURLToPath(import.meta.url), addonSrc, ...readdirSync(kernelDir).map((f) => join(kernelDir, f))];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

if (flavor !== "cuda" && flavor !== "rocm") {
  console.error(`build-native: --flavor must be cuda or rocm, found ${flavor}`);
  process.exit(2);
}
if (process.env.ECOMLA_GPU_SKIP_BUILD === "1") unavailable("the native build was skipped (ECOMLA_GPU_SKIP_BUILD=1 at install)");
if (!force && existsSync(addon) && existsSync(statusFile) && statSync(addon).mtimeMs > newestSourceMs()) process.exit(0);

// ---- the compiler ---------------------------------------------------------------------------------
let compiler;
let compileArgs;
let link;
let targets;
if (flavor === "cuda") {
  const home = process.env.CUDA_HOME ?? process.env.CUDA_PATH ?? "/usr/local/cuda";
  compiler = process.env.ECOMLA_NVCC ? (existsSync(process.env.ECOMLA_NVCC) ? process.env.ECOMLA_NVCC : null) : findTool("nvcc", [join(home, "bin"), "/usr/local/cuda/bin"]);
  if (!compiler) unavailable(`nvcc (CUDA ≥ 12) not found ${process.env.ECOMLA_NVCC ? `at ECOMLA_NVCC=${process.env.ECOMLA_NVCC}` : "on PATH, in $CUDA_HOME/bin or /usr/local/cuda/bin"}; install the CUDA toolkit and reinstall (pnpm install)`);
  const version = spawnSync(compiler, ["--version"], { encoding: "utf8" }).stdout ?? "";
  const release = /release (\d+)\.(\d+)/.exec(version);
  if (!release || Number(release[1]) < 12) unavailable(`${compiler} is CUDA ${release ? `${release[1]}.${release[2]}` : "(unknown version)"}; CUDA ≥ 12 is needed`);
  const archs = (process.env.ECOMLA_CUDA_ARCHS ?? "80,90").split(",").map((s) => s.trim().replace(/^sm_/, "")).filter(Boolean);
  targets = archs.map((a) => `sm_${a}`);
  const last = archs[archs.length - 1];
  compileArgs = (src, out) => [
    "-std=c++17", "-O3", "-Xcompiler", "-fPIC",
    ...archs.flatMap((a) => ["-gencode", `arch=compute_${a},code=sm_${a}`]),
    "-gencode", `arch=compute_${last},code=compute_${last}`,
    `-DECOMLA_TARGETS="${targets.join(",")}"`, "-c", src, "-o", out,
  ];
  const cudaLib = [join(dirname(dirname(compiler)), "lib64"), join(home, "lib64"), "/usr/local/cuda/lib64"].find((d) => existsSync(join(d, "libcudart_static.a")));
  if (!cudaLib) unavailable(`libcudart_static.a not found next to ${compiler} (lib64) or in $CUDA_HOME/lib64`);
  link = [`-L${cudaLib}`, "-lcudart_static", "-ldl", "-lrt", "-lpthread"];
} else {
  const rocm = process.env.ROCM_PATH ?? "/opt/rocm";
  compiler = process.env.ECOMLA_HIPCC ? (existsSync(process.env.ECOMLA_HIPCC) ? process.env.ECOMLA_HIPCC : null) : findTool("hipcc", [join(rocm, "bin")]);
  if (!compiler) unavailable(`hipcc not found ${process.env.ECOMLA_HIPCC ? `at ECOMLA_HIPCC=${process.env.ECOMLA_HIPCC}` : "on PATH or in $ROCM_PATH/bin"} (Debian/Ubuntu: apt-get install hipcc libamdhip64-dev), then reinstall (pnpm install)`);
  targets = (process.env.ECOMLA_HIP_TARGETS ?? "gfx90a").split(",").map((s) => s.trim()).filter(Boolean);
  compileArgs = (src, out) => [
    "-std=c++17", "-O3", "-fPIC", "-Wno-unused-result", "-x", "hip", ...targets.map((t) => `--offload-arch=${t}`),
    `-DECOMLA_TARGETS="${targets.join(",")}"`, "-c", src, "-o", out,
  ];
  const hipLib = [join(rocm, "lib"), "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"].find((d) => existsSync(join(d, "libamdhip64.so")));
  if (!hipLib) unavailable(`libamdhip64.so not found in $ROCM_PATH/lib or the system library folders (Debian/Ubuntu: apt-get install libamdhip64-dev)`);
  link = [`-L${hipLib}`, `-Wl,-rpath,${hipLib}`, "-lamdhip64"];
}

// ---- kernels --------------------------------------------------------------------------------------
if (force) rmSync(buildDir, { recursive: true, force: true });
mkdirSync(objDir, { recursive: true });
const env = { ...process.env, ...(flavor === "rocm" ? { HIP_PLATFORM: process.env.HIP_PLATFORM ?? "amd" } : {}) };
const jobs = Math.max(1, Number(process.env.ECOMLA_GPU_BUILD_JOBS) || cpus().length);
const started = Date.now();
const times = {};

function compile(file) {
  return new Promise((done) => {
    const out = join(objDir, file.replace(/\.cu$/, ".o"));
    const t0 = Date.now();
    const child = spawn(compiler, compileArgs(join(kernelDir, file), out), { env, stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    child.on("error", (err) => done({ file, ok: false, log: String(err) }));
    child.on("close", (code) => {
      times[file] = (Date.now() - t0) / 1000;
      done({ file, ok: code === 0, out, log });
    });
  });
}

const queue = sources();
const results = [];
await Promise.all(
  Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    while (queue.length > 0) results.push(await compile(queue.shift()));
  }),
);
const failed = results.filter((r) => !r.ok);
if (failed.length > 0) {
  for (const f of failed) console.error(`${pkgName}: ${compiler} failed on kernels/${f.file}:\n${f.log}`);
  unavailable(`${compiler} failed on ${failed.map((f) => `kernels/${f.file}`).join(", ")}: ${failed[0].log.split("\n").find((l) => /error/i.test(l)) ?? failed[0].log.slice(0, 300)}`);
}
const kernelSeconds = (Date.now() - started) / 1000;

// ---- the addon ------------------------------------------------------------------------------------
const require = createRequire(join(commonDir, "package.json"));
const nodeGyp = require.resolve("node-gyp/bin/node-gyp.js");
const napiInclude = dirname(require.resolve("node-addon-api/package.json"));
mkdirSync(gypDir, { recursive: true });
writeFileSync(
  join(gypDir, "binding.gyp"),
  JSON.stringify(
    {
      targets: [
        {
          target_name: "ecomla_gpu",
          // gyp's make generator wants sources relative to the .gyp file.
          sources: [relative(gypDir, addonSrc)],
          include_dirs: [napiInclude],
          defines: ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
          cflags_cc: ["-O2", "-fPIC", "-std=gnu++17"],
          "cflags_cc!": ["-fno-exceptions"],
          libraries: [...results.map((r) => r.out).sort(), ...link],
        },
      ],
    },
    null,
    2,
  ) + "\n",
);
const gypEnv = env;
const gypArgs = [];
if (!process.env.npm_config_nodedir) {
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, "include", "node", "node_api.h"))) gypArgs.push(`--nodedir=${prefix}`);
}
const addonStarted = Date.now();
for (const step of ["configure", "build"]) {
  const r = spawnSync(process.execPath, [nodeGyp, step, ...gypArgs], { cwd: gypDir, env: gypEnv, encoding: "utf8" });
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    unavailable(`node-gyp ${step} failed (exit ${r.status}); see the install log`);
  }
}
writeStatus({
  available: true,
  compiler,
  targets,
  kernelSeconds,
  addonSeconds: (Date.now() - addonStarted) / 1000,
  perFileSeconds: times,
});
console.log(`${pkgName}: built for ${targets.join(", ")} in ${((Date.now() - started) / 1000).toFixed(1)} s (kernels ${kernelSeconds.toFixed(1)} s)`);
