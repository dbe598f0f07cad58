// Conformance cases for the fused losses: crossEntropy (ignored labels, weights, temperature,
// gradient aliasing the logits) and klDiv (dense and top-k teachers).
import type { CaseSink, Inputs, PairBuf } from "./harness.js";
import { TOLERANCES } from "./tolerances.js";

export interface LossCase {
  name: string;
  rows: number;
  vocab: number;
  temperature?: number;
  weights?: boolean;
  /** grad aliases logits (the kernel overwrites the logits with their gradient). */
  aliasGrad?: boolean;
  /** Skip the gradient output. */
  noGrad?: boolean;
  /** Spread of the logits (large values test the max subtraction). */
  logitScale?: number;
  /** KL only: top-k teacher with this K; dense when absent. */
  topK?: number;
}

export const CROSS_ENTROPY_CASES: LossCase[] = [
  { name: "rows=1 vocab=1", rows: 1, vocab: 1 },
  { name: "rows=6 vocab=17 ignored labels", rows: 6, vocab: 17 },
  { name: "rows=4 vocab=5000 temperature=2 weights", rows: 4, vocab: 5000, temperature: 2, weights: true },
  { name: "rows=7 vocab=33 logits x30 weights, grad aliases logits", rows: 7, vocab: 33, logitScale: 30, weights: true, aliasGrad: true },
  { name: "rows=3 vocab=65 loss only", rows: 3, vocab: 65, noGrad: true },
];

export const KL_CASES: LossCase[] = [
  { name: "dense rows=5 vocab=17", rows: 5, vocab: 17 },
  { name: "dense rows=3 vocab=5000 temperature=2 weights", rows: 3, vocab: 5000, temperature: 2, weights: true },
  { name: "dense rows=4 vocab=33 temperature=1.5, grad aliases logits", rows: 4, vocab: 33, temperature: 1.5, aliasGrad: true },
  { name: "top-5 rows=6 vocab=33", rows: 6, vocab: 33, topK: 5 },
  { name: "top-1 rows=3 vocab=17 temperature=2 weights", rows: 3, vocab: 17, temperature: 2, weights: true, topK: 1 },
  { name: "top-8 rows=2 vocab=5000 temperature=0.7 weights", rows: 2, vocab: 5000, temperature: 0.7, weights: true, topK: 8 },
  { name: "top-3 rows=2 vocab=9 loss only", rows: 2, vocab: 9, topK: 3, noGrad: true },
];

/** Labels in [0, vocab) with every third row ignored (−1 or −100) when there are several rows. */
export function makeLabels(gen: Inputs, rows: number, vocab: number): Int32Array {
  const labels = gen.ints(rows, vocab);
  if (rows > 1) for (let r = 1; r < rows; r += 3) labels[r] = r % 2 === 0 ? -100 : -1;
  return labels;
}

/** Per-row weights: a mix of zero, fractional and >1 multipliers. */
export function makeWeights(gen: Inputs, rows: number): Float32Array {
  const w = gen.uniform(rows, 0.2, 2);
  if (rows > 2) w[rows - 1] = 0;
  return w;
}

/** A top-k teacher: the k largest of random teacher logits, with their log-probabilities (at temperature 1). */
export function makeTopK(gen: Inputs, rows: number, vocab: number, k: number): { indices: Int32Array; logprobs: Float32Array } {
  const indices = new Int32Array(rows * k);
  const logprobs = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const teacher = Array.from(gen.normal(vocab, 2));
    const max = Math.max(...teacher);
    const lse = max + Math.log(teacher.reduce((s, z) => s + Math.exp(z - max), 0));
    const order = teacher.map((z, j) => [z, j] as const).sort((a, b) => b[0] - a[0]);
    for (let i = 0; i < k; i++) {
      indices[r * k + i] = order[i]![1];
      logprobs[r * k + i] = order[i]![0] - lse;
    }
  }
  return { indices, logprobs };
}

/** Register the loss cases. */
export function lossCases(add: CaseSink): void {
  for (const c of CROSS_ENTROPY_CASES) {
    add("crossEntropy", c.name, async (ctx) => {
      const n = c.rows * c.vocab;
      const logits = ctx.input(ctx.gen.normal(n, c.logitScale ?? 3));
      const labels = ctx.input(makeLabels(ctx.gen, c.rows, c.vocab));
      const weights = c.weights ? ctx.input(makeWeights(ctx.gen, c.rows)) : undefined;
      const loss = ctx.output(c.rows);
      const grad = c.noGrad ? undefined : c.aliasGrad ? logits : ctx.output(n);
      ctx.run((be, pick) =>
        be.crossEntropy({
          logits: pick(logits),
          labels: pick(labels),
          rows: c.rows,
          vocab: c.vocab,
          loss: pick(loss),
          ...(c.temperature !== undefined ? { temperature: c.temperature } : {}),
          ...(weights ? { weights: pick(weights) } : {}),
          ...(grad ? { grad: pick(grad) } : {}),
        }),
      );
      await ctx.expect(loss, TOLERANCES.loss, "loss");
      if (grad) await ctx.expect(grad, TOLERANCES.lossGrad, "grad");
    });
  }
  for (const c of KL_CASES) {
    add("klDiv", c.name, async (ctx) => {
      const n = c.rows * c.vocab;
      const logits = ctx.input(ctx.gen.normal(n, c.logitScale ?? 3));
      const weights = c.weights ? ctx.input(makeWeights(ctx.gen, c.rows)) : undefined;
      const loss = ctx.output(c.rows);
      const grad = c.noGrad ? undefined : c.aliasGrad ? logits : ctx.output(n);
      let t: { logits: PairBuf } | { indices: PairBuf; logprobs: PairBuf };
      if (c.topK !== undefined) {
        const top = makeTopK(ctx.gen, c.rows, c.vocab, c.topK);
        t = { indices: ctx.input(top.indices), logprobs: ctx.input(top.logprobs) };
      } else t = { logits: ctx.input(ctx.gen.normal(n, 3)) };
      ctx.run((be, pick) =>
        be.klDiv({
          logits: pick(logits),
          rows: c.rows,
          vocab: c.vocab,
          loss: pick(loss),
          ...("logits" in t ? { teacherLogits: pick(t.logits) } : { teacherIndices: pick(t.indices), teacherLogprobs: pick(t.logprobs), topK: c.topK! }),
          ...(c.temperature !== undefined ? { temperature: c.temperature } : {}),
          ...(weights ? { weights: pick(weights) } : {}),
          ...(grad ? { grad: pick(grad) } : {}),
        }),
      );
      await ctx.expect(loss, TOLERANCES.loss, "loss");
      if (grad) await ctx.expect(grad, TOLERANCES.lossGrad, "grad");
    });
  }
}
