// @ecomla/gpu-common: the host side shared by @ecomla/backend-cuda and @ecomla/backend-rocm (the
// kernels themselves are kernels/*.cu in this package, compiled by each plugin's install script).
export { GpuBackend, GpuBuffer, GPU_NATIVE_KERNELS, loadBlas, type GpuBackendOptions, type MlaDecodeArgs } from "./gpu.js";
export { BLAS_ENV, BLAS_NAMES, blasCandidates, blasNotFoundMessage, pythonPackageDirs, pythonWheelDirs, wheelLibDirs } from "./blas-search.js";
export { DevicePool, bucketBytes, type DeviceAllocator, type PoolStats } from "./pool.js";
export { BackendUnavailableError, addonPath, loadAddon, readBuildStatus, type BuildStatus, type DeviceProbe, type GpuAddon, type GpuFlavor } from "./native.js";
export { createGpuBackend, createGpuPlugin, probeGpu, type GpuPackage } from "./plugin.js";
export { mlaDecodeReference } from "./mla-reference.js";
