// The core conformance suite (every kernel against the reference backend, fused kernels against
// compositions) on the native CPU backend, resolved through the plugin as a pipeline would.
import t from "tap";
import { conformanceTap, container, registryOf, type TensorBackend } from "@ecomla/core";
import plugin, { CpuBackend } from "@ecomla/backend-cpu";

t.test("the plugin registers backend 'cpu' and it resolves to a CpuBackend", async (t) => {
  const c = container.createChildContainer();
  await registryOf(c).install(plugin);
  const backend = registryOf(c).resolve("backend", "cpu");
  t.ok(backend instanceof CpuBackend);
  t.equal(backend.name, "cpu");
  t.equal(registryOf(c).resolve("backend", "cpu"), backend, "one backend per container");
});

conformanceTap(t, async (): Promise<TensorBackend> => {
  const c = container.createChildContainer();
  await registryOf(c).install(plugin);
  return registryOf(c).resolve("backend", "cpu");
});
