// Perplexity by position = exp(mean over rows of −log softmax(logits)[label]) at each position,
// checked against a float64 log-softmax of the model's own logits computed here.
import t from "tap";
import { ReferenceBackend, Rng, Tensor, loadLlama } from "@ecomla/core";
import { perplexityByPosition } from "@ecomla/train";
import { teacherDir } from "./helpers/fixtures.js";

t.test("perplexity at each position matches a float64 log-softmax of the logits", async (t) => {
  const be = new ReferenceBackend();
  const { model } = await loadLlama(teacherDir, be);
  const rng = new Rng(3);
  const T = 6;
  const rows = Array.from({ length: 5 }, () => Int32Array.from({ length: T + 1 }, () => rng.int(model.vocabSize)));
  const got = await perplexityByPosition(model, be, rows, 2);
  const sums = new Float64Array(T);
  for (const row of rows) {
    const ids = Tensor.from(be, row.subarray(0, T), [1, T], { dtype: "i32" });
    const logits = (await model.forward(ids).data()) as Float32Array; // (1, T, V)
    const V = model.vocabSize;
    for (let p = 0; p < T; p++) {
      const z = Array.from(logits.subarray(p * V, (p + 1) * V), Number);
      const max = Math.max(...z);
      const logSum = max + Math.log(z.reduce((a, v) => a + Math.exp(v - max), 0));
      sums[p]! += logSum - z[row[p + 1]!]!;
    }
  }
  const want = Array.from(sums, (s) => Math.exp(s / rows.length));
  t.equal(got.length, T);
  const worst = Math.max(...got.map((g, i) => Math.abs(g - want[i]!) / want[i]!));
  t.ok(worst < 1e-5, `max relative difference ${worst.toExponential(2)}`);
  t.same(await perplexityByPosition(model, be, []), []);
  model.dispose();
});
