// The core conformance suite (every kernel against the reference backend, fused kernels against
// compositions) on the WebGPU backend, resolved through the plugin as a pipeline would. On a
// machine without a GPU this runs on Mesa lavapipe (Vulkan on the CPU).
import t from "tap";
import { conformanceTap, container, registryOf, type TensorBackend } from "@ecomla/core";
import plugin, { WebGpuBackend } from "@ecomla/backend-webgpu";

const kernels = process.env.ECOMLA_CONFORMANCE_KERNELS?.split(",").filter((k) => k);

t.test("the plugin registers a lazy backend 'webgpu' that resolves to a WebGpuBackend", async (t) => {
  const c = container.createChildContainer();
  await registryOf(c).install(plugin);
  const lazy = registryOf(c).resolve("backend", "webgpu");
  t.ok("lazy" in lazy && lazy.lazy, "registering acquires no device");
  const backend = await registryOf(c).backend("webgpu");
  t.ok(backend instanceof WebGpuBackend);
  t.equal(backend.name, "webgpu");
  t.equal(await registryOf(c).backend("webgpu"), backend, "one backend per container");
  (backend as WebGpuBackend).destroy();
});

let made: WebGpuBackend | undefined;
conformanceTap(
  t,
  async (): Promise<TensorBackend> => {
    const c = container.createChildContainer();
    await registryOf(c).install(plugin);
    made = (await registryOf(c).backend("webgpu")) as WebGpuBackend;
    return made;
  },
  kernels ? { kernels } : {},
);
t.teardown(() => made?.destroy());
