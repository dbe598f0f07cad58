// The core conformance suite on the ROCm backend, resolved through the plugin as a pipeline would.
// Without a usable GPU (this CI) it checks that the registry refuses the backend with the probe's
// reason; on a GPU machine (scripts/gpu-check.sh) it runs every kernel against the reference.
import t from "tap";
import { conformanceTap, container, registryOf, type TensorBackend } from "@ecomla/core";
import plugin, { probeRocm } from "@ecomla/backend-rocm";

const probe = probeRocm();

t.test("the plugin registers a lazy backend 'rocm' whose probe explains itself", async (t) => {
  const c = container.createChildContainer();
  await registryOf(c).install(plugin);
  t.same(registryOf(c).names("backend").includes("rocm"), true);
  t.equal(typeof probe.available, "boolean");
  if (!probe.available) {
    t.match(probe.reason, /\S/, `unavailable here: ${probe.reason}`);
    await t.rejects(registryOf(c).backend("rocm"), { message: `backend "rocm" is unavailable: ${probe.reason.split("\n")[0]}` } as never);
  } else {
    const be = await registryOf(c).backend("rocm");
    t.equal(be.name, "rocm");
    t.comment(`device: ${probe.detail}`);
  }
});

if (probe.available) {
  conformanceTap(t, async (): Promise<TensorBackend> => {
    const c = container.createChildContainer();
    await registryOf(c).install(plugin);
    return registryOf(c).backend("rocm");
  });
} else {
  t.test("conformance on rocm", { skip: `no usable ROCm backend here: ${probe.reason}` }, async () => {});
}
