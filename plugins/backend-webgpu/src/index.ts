// @ecomla/backend-webgpu: registers the WebGPU backend (WGSL kernels on Dawn) as backend "webgpu".
import type { DependencyContainer } from "tsyringe";
import { nativeKernelsOf, provide, type EcomlaPlugin, type LazyBackend, type TensorBackend } from "@ecomla/core";
import { WebGpuBackend, type WebGpuBackendOptions } from "./backend.js";
import { requestDevice } from "./runtime.js";

export { WebGpuBackend, WebGpuBuffer, storageBytes, type WebGpuBackendOptions } from "./backend.js";
export type { BindingLimits } from "./kernels/common.js";
export { BufferPool, bucketBytes, type PoolStats } from "./pool.js";
export { GpuRuntime, type RuntimeCounters } from "./runtime.js";

/**
 * Create a WebGPU backend on the first adapter Dawn finds (a GPU's Vulkan driver, or lavapipe).
 * `maxStorageBindingBytes` (or the environment variable ECOMLA_WEBGPU_MAX_BINDING_BYTES) lowers the
 * storage-binding limit the kernels chunk their work by, to exercise the chunked paths.
 */
export async function createWebGpuBackend(options: { powerPreference?: GPUPowerPreference } & WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const { device, adapterInfo } = await requestDevice(options.powerPreference);
  const fromEnv = process.env.ECOMLA_WEBGPU_MAX_BINDING_BYTES;
  const maxStorageBindingBytes = options.maxStorageBindingBytes ?? (fromEnv ? Number(fromEnv) : undefined);
  try {
    return new WebGpuBackend(device, adapterInfo, maxStorageBindingBytes === undefined ? {} : { maxStorageBindingBytes });
  } catch (error) {
    device.destroy();
    throw error;
  }
}

/**
 * The plugin: `backend: webgpu` is a lazy backend — the GPU device is acquired only when a
 * command asks for this backend (through the registry's `backend("webgpu")`), so loading the
 * plugin costs nothing and prints nothing; without an adapter that call explains why.
 */
const plugin: EcomlaPlugin = {
  name: "@ecomla/backend-webgpu",
  version: "0.0.0",
  register(container: DependencyContainer) {
    const lazy: LazyBackend = {
      lazy: true,
      name: "webgpu",
      nativeKernels: nativeKernelsOf(WebGpuBackend.prototype as unknown as TensorBackend),
      create: () => createWebGpuBackend(),
    };
    provide(container, "backend", "webgpu", { useValue: lazy }, { description: "WebGPU (Dawn): WGSL kernels on any Vulkan/Metal/D3D12 GPU, or Mesa lavapipe" });
  },
};

export default plugin;
