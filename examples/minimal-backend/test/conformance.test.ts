// The whole conformance suite on the minimal backend: every primitive against the reference backend,
// and every fused kernel as core composes it from those primitives (filed as "KERNEL (composed)").
import t from "tap";
import { EcomlaError, ShapeError, completeBackend, conformanceTap, container, registryOf } from "@ecomla/core";
import plugin, { MinimalBackend } from "@ecomla/example-minimal-backend";

conformanceTap(t, () => new MinimalBackend());

t.test("the plugin registers backend 'minimal'; every fused kernel is composed", async (t) => {
  const scope = container.createChildContainer();
  const registry = registryOf(scope);
  await registry.install(plugin);
  const backend = await registry.backend("minimal");
  t.ok(backend instanceof MinimalBackend);
  t.equal(await registry.backend("minimal"), backend, "one instance per container");
  const complete = completeBackend(backend);
  t.same(complete.nativeKernels, [], "no fused kernel of its own");
  t.equal(complete.composedKernels.length, 14, "all 14 fused kernels come from core's compositions");
});

t.test("errors name the kernel, the argument, and what was expected", async (t) => {
  const be = new MinimalBackend();
  const ids = be.alloc("i32", 2);
  const table = be.alloc("f32", 3 * 4);
  const out = be.alloc("f32", 2 * 4);
  be.upload(ids, Int32Array.from([1, 3]));
  t.throws(() => be.embedding(ids, table, out, 2, 3, 4), { constructor: ShapeError, message: "MinimalBackend.embedding: ids[1] = 3 is out of range [0, 3)" });
  t.throws(() => be.upload(table, new Float32Array(13)), { constructor: ShapeError, message: "MinimalBackend.upload: argument 'buf' needs elements [0, 13) but has length 12" });
  t.throws(() => be.upload(ids, new Float32Array(2)), { constructor: ShapeError, message: "MinimalBackend.upload: argument 'buf' (i32) takes a Int32Array, found Float32Array" });
  for (const buf of [ids, table, out]) be.free(buf);
  t.throws(() => be.free(ids), { constructor: EcomlaError, message: "MinimalBackend.free: argument 'buf' was already freed (use after free)" });
  t.same(be.memoryStats().liveBuffers, 0, "nothing left allocated");
});
