// @ecomla/backend-rocm: registers the ROCm backend as backend "rocm" (a lazy backend: the GPU is
// acquired when a command asks for it). Kernels and host code live in @ecomla/gpu-common; this
// package is their hipcc build (gfx90a by default; ECOMLA_HIP_TARGETS).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createGpuBackend, createGpuPlugin, probeGpu, type GpuBackend, type GpuBackendOptions, type GpuPackage } from "@ecomla/gpu-common";

export { GpuBackend, type GpuBackendOptions, type MlaDecodeArgs } from "@ecomla/gpu-common";

const pkgDir = fileURLToPath(new URL("..", import.meta.url));
const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** Where this plugin's build lives. */
export const rocmPackage: GpuPackage = { flavor: "rocm", pkgDir, pkgName: "@ecomla/backend-rocm", version };

/** Create the ROCm backend (throws a BackendUnavailableError naming what is missing). */
export function createRocmBackend(options: GpuBackendOptions = {}): Promise<GpuBackend> {
  return createGpuBackend(rocmPackage, options);
}

/** Availability without acquiring the device (the build, the driver, a GPU, hipBLAS). */
export function probeRocm() {
  return probeGpu(rocmPackage);
}

export default createGpuPlugin(rocmPackage, "ROCm (HIP): hipBLAS GEMM (loaded at run time) + the CUDA kernels built with hipcc (flash-style attention, fused KL/CE, absorbed-MLA decode)");
