// @ecomla/backend-cuda: registers the CUDA backend as backend "cuda" (a lazy backend: the GPU is
// acquired when a command asks for it). Kernels and host code live in @ecomla/gpu-common; this
// package is their nvcc build (sm_80 and sm_90 by default).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createGpuBackend, createGpuPlugin, probeGpu, type GpuBackend, type GpuBackendOptions, type GpuPackage } from "@ecomla/gpu-common";

export { GpuBackend, type GpuBackendOptions, type MlaDecodeArgs } from "@ecomla/gpu-common";

const pkgDir = fileURLToPath(new URL("..", import.meta.url));
const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** Where this plugin's build lives. */
export const cudaPackage: GpuPackage = { flavor: "cuda", pkgDir, pkgName: "@ecomla/backend-cuda", version };

/** Create the CUDA backend (throws a BackendUnavailableError naming what is missing). */
export function createCudaBackend(options: GpuBackendOptions = {}): Promise<GpuBackend> {
  return createGpuBackend(cudaPackage, options);
}

/** Availability without acquiring the device (the build, the driver, a GPU, cuBLAS). */
export function probeCuda() {
  return probeGpu(cudaPackage);
}

export default createGpuPlugin(cudaPackage, "CUDA: cuBLAS GEMM (loaded at run time) + fused CUDA kernels (flash-style attention, fused KL/CE, absorbed-MLA decode)");
