// The core conformance suite (every primitive and fused kernel against the reference backend, the
// fused kernels also as core's compositions of the tfjs primitives) on the tfjs backend, resolved
// through the plugin as a pipeline would. The wasm tfjs backend is forced: it is the one our
// machines run (tfjs-node needs libtensorflow).
import t from "tap";
import { conformanceTap, container, nativeKernelsOf, registryOf, type TensorBackend } from "@ecomla/core";
import plugin, { TFJS_NATIVE_KERNELS, type TfjsBackend } from "@ecomla/backend-tfjs";

// wasm unless the environment names another (ECOMLA_TFJS_BACKEND=cpu runs the suite on tfjs's cpu backend).
process.env.ECOMLA_TFJS_BACKEND ??= "wasm";
const forced = process.env.ECOMLA_TFJS_BACKEND;

const kernels = process.env.ECOMLA_CONFORMANCE_KERNELS?.split(",").filter((k) => k);

let made: TfjsBackend | undefined;
let tensorsBefore = 0;

t.test("the plugin registers a lazy backend 'tfjs' that resolves to a TfjsBackend on the forced tfjs backend", async (t) => {
  const c = container.createChildContainer();
  await registryOf(c).install(plugin);
  const lazy = registryOf(c).resolve("backend", "tfjs");
  t.ok("lazy" in lazy && lazy.lazy, "registering initialises nothing");
  const backend = (await registryOf(c).backend("tfjs")) as TfjsBackend;
  t.equal(backend.constructor.name, "TfjsBackend");
  t.equal(backend.name, "tfjs");
  t.equal(backend.selection.active, forced);
  t.match(backend.selection.report.join("\n"), new RegExp(`${forced}: active`));
  t.match(backend.selection.report.join("\n"), /tfjs-node-gpu: not tried/, "the better ones are not tried when one is forced");
  t.same(nativeKernelsOf(backend), TFJS_NATIVE_KERNELS, "the kernels the plugin declares are the ones the class implements");
  t.equal(await registryOf(c).backend("tfjs"), backend, "one backend per container");
});

conformanceTap(
  t,
  async (): Promise<TensorBackend> => {
    const c = container.createChildContainer();
    await registryOf(c).install(plugin);
    made = (await registryOf(c).backend("tfjs")) as TfjsBackend;
    tensorsBefore = made.tfjsTensors();
    return made;
  },
  kernels ? { kernels } : {},
);

t.test("no tfjs tensor outlives the suite (intermediates are disposed, freed buffers drop theirs)", async (t) => {
  t.equal(made!.tfjsTensors(), tensorsBefore);
});
