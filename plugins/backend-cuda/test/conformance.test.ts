// The core conformance suite on the CUDA backend, resolved through the plugin as a pipeline would.
// Without a usable GPU (this CI) it checks that the registry refuses the backend with the probe's
// reason; on a GPU machine (scripts/gpu-check.sh) it runs every kernel against the reference.
import t from "tap";
import { conformanceTap, container, registryOf, type TensorBackend } from "@ecomla/core";
import plugin, { probeCuda } from "@ecomla/backend-cuda";

const probe = probeCuda();

t.test("the plugin registers a lazy backend 'cuda' whose probe explains itself", async (t) => {
  const c = container.createChildContainer();
  await registryOf(c).install(plugin);
  t.same(registryOf(c).names("backend").includes("cuda"), true);
  t.equal(typeof probe.available, "boolean");
  if (!probe.available) {
    t.match(probe.reason, /\S/, `unavailable here: ${probe.reason}`);
    await t.rejects(registryOf(c).backend("cuda"), { message: `backend "cuda" is unavailable: ${probe.reason.split("\n")[0]}` } as never);
  } else {
    const be = await registryOf(c).backend("cuda");
    t.equal(be.name, "cuda");
    t.comment(`device: ${probe.detail}`);
  }
});

if (probe.available) {
  conformanceTap(t, async (): Promise<TensorBackend> => {
    const c = container.createChildContainer();
    await registryOf(c).install(plugin);
    return registryOf(c).backend("cuda");
  });
} else {
  t.test("conformance on cuda", { skip: `no usable CUDA backend here: ${probe.reason}` }, async () => {});
}
