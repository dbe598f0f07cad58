// backward() works with only the Tensor and a backend loaded: the engine used to get its ops from
// an install call in tensor/ops/index.ts, so it failed ("ops not installed") unless that module
// happened to be imported first. This file imports core's modules directly, never the ops.
import t from "tap";
import { ReferenceBackend } from "../src/backends/reference/index.js";
import { Tensor } from "../src/tensor/tensor.js";

t.test("a leaf scalar's backward seeds ones and accumulates, without the ops module", async (t) => {
  const backend = new ReferenceBackend();
  const x = Tensor.from(backend, [3], [1], { requiresGrad: true });
  x.backward();
  t.same(await x.grad!.toArray(), [1], "d x / d x = 1");
  x.backward();
  t.same(await x.grad!.toArray(), [2], "a second backward adds into .grad");
  x.grad!.dispose();
  x.dispose();
});
