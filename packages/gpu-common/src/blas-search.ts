// Where cuBLAS / hipBLAS may live. Nothing is linked at build time: the backend dlopens the first
// candidate that loads, and the error of an unsuccessful search names every path tried.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { GpuFlavor } from "./native.js";

/** Library file names, newest ABI first. */
export const BLAS_NAMES: Readonly<Record<GpuFlavor, readonly string[]>> = {
  cuda: ["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
  rocm: ["libhipblas.so.2", "libhipblas.so.1", "libhipblas.so.0", "libhipblas.so"],
};

/** The environment variable that names the library (a file, or a folder holding it). */
export const BLAS_ENV: Readonly<Record<GpuFlavor, string>> = { cuda: "ECOMLA_CUBLAS_PATH", rocm: "ECOMLA_HIPBLAS_PATH" };

type Env = Readonly<Record<string, string | undefined>>;

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** site-packages / dist-packages folders of the usual Python installs (no interpreter started). */
export function pythonPackageDirs(env: Env = process.env): string[] {
  const roots = ["/usr/local/lib", "/usr/lib", join(env.HOME ?? homedir(), ".local", "lib")];
  if (env.VIRTUAL_ENV) roots.unshift(join(env.VIRTUAL_ENV, "lib"));
  if (env.CONDA_PREFIX) roots.unshift(join(env.CONDA_PREFIX, "lib"));
  const dirs: string[] = [];
  for (const root of roots) {
    if (!isDir(root)) continue;
    for (const entry of readdirSync(root)) {
      if (!/^python3(\.\d+)?$/.test(entry)) continue;
      for (const kind of ["site-packages", "dist-packages"]) {
        const d = join(root, entry, kind);
        if (isDir(d)) dirs.push(d);
      }
    }
  }
  return dirs;
}

/** Library folders inside the NVIDIA / ROCm Python wheels under a site-packages folder. */
export function wheelLibDirs(flavor: GpuFlavor, sitePackages: string): string[] {
  if (flavor === "cuda") {
    // nvidia-cublas-cu12 → nvidia/cublas/lib; the CUDA 13 wheels → nvidia/cu13/lib.
    const nvidia = join(sitePackages, "nvidia");
    const out = [join(nvidia, "cublas", "lib")];
    if (isDir(nvidia)) for (const e of readdirSync(nvidia)) if (/^cu\d+$/.test(e)) out.push(join(nvidia, e, "lib"));
    return out;
  }
  return [join(sitePackages, "_rocm_sdk_libraries", "lib"), join(sitePackages, "torch", "lib")];
}

/** Ask python3 where the wheel lives (`import nvidia.cublas`); [] when python3 or the wheel is absent. */
export function pythonWheelDirs(flavor: GpuFlavor, python = "python3"): string[] {
  if (flavor !== "cuda") return [];
  const script = "import os, nvidia.cublas as m; print(os.path.join(os.path.dirname(m.__file__), 'lib'))";
  const r = spawnSync(python, ["-c", script], { encoding: "utf8", timeout: 15000 });
  if (r.status !== 0 || !r.stdout) return [];
  return r.stdout.trim().split("\n").filter(Boolean);
}

/**
 * Candidate paths, in the order they are tried: the env override; bare names (dlopen's own search:
 * LD_LIBRARY_PATH, the linker cache); the toolkit (CUDA_HOME, CUDA_PATH, /usr/local/cuda / ROCM_PATH,
 * /opt/rocm); the system folders; the Python wheels found under the usual site-packages folders.
 */
export function blasCandidates(flavor: GpuFlavor, env: Env = process.env, extraDirs: readonly string[] = []): string[] {
  const names = BLAS_NAMES[flavor];
  const override = env[BLAS_ENV[flavor]];
  const out: string[] = [];
  const add = (p: string) => {
    if (!out.includes(p)) out.push(p);
  };
  if (override) {
    if (isDir(override)) names.forEach((n) => add(join(override, n)));
    else add(override);
  }
  names.forEach(add);
  const dirs =
    flavor === "cuda"
      ? [env.CUDA_HOME, env.CUDA_PATH, "/usr/local/cuda"].filter((d): d is string => !!d).flatMap((d) => [join(d, "lib64"), join(d, "lib")])
      : [env.ROCM_PATH, "/opt/rocm"].filter((d): d is string => !!d).map((d) => join(d, "lib"));
  dirs.push("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/aarch64-linux-gnu");
  for (const sp of pythonPackageDirs(env)) dirs.push(...wheelLibDirs(flavor, sp));
  dirs.push(...extraDirs);
  for (const d of dirs) for (const n of names) if (existsSync(join(d, n))) add(join(d, n));
  return out;
}

/** The message of a failed search: every path tried and why it did not load. */
export function blasNotFoundMessage(flavor: GpuFlavor, tried: readonly string[], errors: string): string {
  const lib = flavor === "cuda" ? "cuBLAS" : "hipBLAS";
  const hint =
    flavor === "cuda"
      ? `install the CUDA toolkit's cuBLAS or the nvidia-cublas Python wheel (pip install nvidia-cublas-cu12), or point ${BLAS_ENV.cuda} at libcublas.so.*`
      : `install hipBLAS (ROCm) or point ${BLAS_ENV.rocm} at libhipblas.so.*`;
  const lines = errors.trim() ? errors.trim().split("\n") : tried.map((p) => `${p}: not tried`);
  return `${lib} could not be loaded; searched ${tried.length} path(s):\n  ${lines.join("\n  ")}\n${hint}`;
}
