// @ecomla/backend-webgpu: registers the WebGPU backend (WGSL kernels on Dawn) as backend "webgpu".
import type { DependencyContainer } from "tsyringe";
import { provide, type EcomlaPlugin, type LazyBackend } from "@ecomla/core";
import { WebGpuBackend } from "./backend.js";
import { requestDevice } from "./runtime.js";

export { WebGpuBackend, WebGpuBuffer, storageBytes } from "./backend.js";
export { BufferPool, bucketBytes, type PoolStats } from "./pool.js";
export { GpuRuntime, type RuntimeCounters } from "./runtime.js";

/** Create a WebGPU backend on the first adapter Dawn finds (a GPU's Vulkan driver, or lavapipe). */
export async function createWebGpuBackend(options: { powerPreference?: GPUPowerPreference } = {}): Promise<WebGpuBackend> {
  const { device, adapterInfo } = await requestDevice(options.powerPreference);
  return new WebGpuBackend(device, adapterInfo);
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
    const lazy: LazyBackend = { lazy: true, name: "webgpu", create: () => createWebGpuBackend() };
    provide(container, "backend", "webgpu", { useValue: lazy }, { description: "WebGPU (Dawn): WGSL kernels on any Vulkan/Metal/D3D12 GPU, or Mesa lavapipe" });
  },
};

export default plugin;
