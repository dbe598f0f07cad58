// Conformance cases for the fused row kernels: softmax (+backward), rmsNorm (+backward), rope,
// swiglu (+backward) and adamw.
import type { CompleteBackend, TensorBackend } from "../interfaces/backend.js";
import type { CaseSink } from "./harness.js";
import { TOLERANCES } from "./tolerances.js";

/** cos/sin tables (P, D/2) of the usual θ = 10000 rotary frequencies, computed in f64 on the host. */
export function ropeTables(positions: number, headDim: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * 10000 ** (-(2 * i) / headDim);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

export interface RopeCase {
  name: string;
  batch: number;
  seqLen: number;
  numHeads: number;
  headDim: number;
  layout: "half" | "interleaved";
  posOffset?: number;
  explicitPositions?: boolean;
  scale?: number;
  inverse?: boolean;
  inPlace?: boolean;
}

/** The rope variants exercised by both the conformance and the gradient checks. */
export const ROPE_CASES: RopeCase[] = [
  { name: "half B=2 T=5 H=3 D=8", batch: 2, seqLen: 5, numHeads: 3, headDim: 8, layout: "half" },
  { name: "interleaved posOffset=3", batch: 2, seqLen: 5, numHeads: 3, headDim: 8, layout: "interleaved", posOffset: 3 },
  { name: "half positions buffer scale=0.7", batch: 2, seqLen: 5, numHeads: 2, headDim: 16, layout: "half", explicitPositions: true, scale: 0.7 },
  { name: "interleaved positions buffer scale=1.3 inverse", batch: 2, seqLen: 3, numHeads: 2, headDim: 6, layout: "interleaved", explicitPositions: true, scale: 1.3, inverse: true },
  { name: "half inverse posOffset=7", batch: 1, seqLen: 4, numHeads: 2, headDim: 10, layout: "half", posOffset: 7, inverse: true },
  { name: "half D=2 decode T=1 posOffset=17", batch: 1, seqLen: 1, numHeads: 1, headDim: 2, layout: "half", posOffset: 17 },
  { name: "interleaved in place D=64 T=17", batch: 1, seqLen: 17, numHeads: 2, headDim: 64, layout: "interleaved", posOffset: 2, inPlace: true },
];

/** Maximum position any rope case reads (the table height). */
export const ROPE_POSITIONS = 40;

/** Register the fused row-kernel cases. */
export function nnCases(add: CaseSink): void {
  for (const [rows, cols, kind] of [[1, 1, "plain"], [3, 17, "plain"], [7, 5000, "plain"], [5, 65, "plain"], [4, 33, "large +100"], [3, 17, "-Inf entries"], [3, 65, "in place"]] as const) {
    add("softmax", `rows=${rows} cols=${cols} ${kind}`, async (ctx) => {
      const data = ctx.gen.uniform(rows * cols, -5, 5);
      if (kind === "large +100") for (let i = 0; i < data.length; i++) data[i] = data[i]! * 4 + 100;
      if (kind === "-Inf entries") for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j += 3) data[r * cols + j] = -Infinity;
      const x = ctx.input(data);
      const out = kind === "in place" ? x : ctx.output(rows * cols);
      ctx.run((be, pick) => be.softmax(pick(x), pick(out), rows, cols));
      await ctx.expect(out, TOLERANCES.softmax);
    });
  }
  for (const [rows, cols] of [[1, 1], [3, 17], [4, 5000], [9, 65]] as const) {
    add("softmaxBackward", `rows=${rows} cols=${cols}`, async (ctx) => {
      const x = ctx.input(ctx.gen.uniform(rows * cols, -3, 3));
      const y = await ctx.fromReference(rows * cols, (ref, pick, y) => ref.softmax(pick(x), y, rows, cols));
      const dy = ctx.input(ctx.gen.uniform(rows * cols));
      const dx = ctx.output(rows * cols);
      ctx.run((be, pick) => be.softmaxBackward(pick(y), pick(dy), pick(dx), rows, cols));
      await ctx.expect(dx, TOLERANCES.softmax);
    });
  }

  for (const [rows, cols, eps] of [[1, 1, 1e-5], [3, 17, 1e-5], [5, 65, 1e-6], [33, 128, 1e-5], [2, 5000, 1e-5]] as const) {
    const name = `rows=${rows} cols=${cols} eps=${eps}`;
    add("rmsNorm", name, async (ctx) => {
      const x = ctx.input(ctx.gen.normal(rows * cols));
      const weight = ctx.input(ctx.gen.uniform(cols, 0.5, 1.5));
      const out = ctx.output(rows * cols);
      const rstd = ctx.output(rows);
      ctx.run((be, pick) => be.rmsNorm(pick(x), pick(weight), pick(out), pick(rstd), rows, cols, eps));
      await ctx.expect(out, TOLERANCES.rmsNorm, "out");
      await ctx.expect(rstd, TOLERANCES.rmsNorm, "rstd");
    });
    add("rmsNormBackward", name, async (ctx) => {
      const x = ctx.input(ctx.gen.normal(rows * cols));
      const weight = ctx.input(ctx.gen.uniform(cols, 0.5, 1.5));
      const rstd = await ctx.fromReference(rows, (ref, pick, rstd) => {
        const scratch = ref.alloc("f32", rows * cols);
        ref.rmsNorm(pick(x), pick(weight), scratch, rstd, rows, cols, eps);
        ref.free(scratch);
      });
      const dy = ctx.input(ctx.gen.normal(rows * cols));
      const dx = ctx.output(rows * cols);
      // dWeight accumulates, so it starts non-zero.
      const dWeight = ctx.input(ctx.gen.uniform(cols));
      ctx.run((be, pick) => be.rmsNormBackward(pick(x), pick(weight), pick(rstd), pick(dy), pick(dx), pick(dWeight), rows, cols));
      await ctx.expect(dx, TOLERANCES.rmsNorm, "dx");
      await ctx.expect(dWeight, TOLERANCES.rmsNorm, "dWeight (accumulated)");
    });
  }

  for (const c of ROPE_CASES) {
    add("rope", c.name, async (ctx) => {
      const n = c.batch * c.seqLen * c.numHeads * c.headDim;
      const tables = ropeTables(ROPE_POSITIONS, c.headDim);
      const cos = ctx.input(tables.cos);
      const sin = ctx.input(tables.sin);
      const x = ctx.input(ctx.gen.uniform(n));
      const out = c.inPlace ? x : ctx.output(n);
      const positions = c.explicitPositions ? ctx.input(ctx.gen.ints(c.batch * c.seqLen, ROPE_POSITIONS)) : undefined;
      ctx.run((be: CompleteBackend, pick) =>
        be.rope({
          x: pick(x),
          out: pick(out),
          batch: c.batch,
          seqLen: c.seqLen,
          numHeads: c.numHeads,
          headDim: c.headDim,
          layout: c.layout,
          cos: pick(cos),
          sin: pick(sin),
          ...(c.posOffset !== undefined ? { posOffset: c.posOffset } : {}),
          ...(positions ? { positions: pick(positions) } : {}),
          ...(c.scale !== undefined ? { scale: c.scale } : {}),
          ...(c.inverse ? { inverse: true } : {}),
        }),
      );
      await ctx.expect(out, TOLERANCES.rope);
    });
  }

  for (const n of [1, 1037]) {
    add("swiglu", `n=${n}`, async (ctx) => {
      const gate = ctx.input(ctx.gen.uniform(n, -8, 8));
      const up = ctx.input(ctx.gen.uniform(n, -2, 2));
      const out = ctx.output(n);
      ctx.run((be, pick) => be.swiglu(pick(gate), pick(up), pick(out), n));
      await ctx.expect(out, TOLERANCES.unary);
    });
    add("swigluBackward", `n=${n}`, async (ctx) => {
      const gate = ctx.input(ctx.gen.uniform(n, -8, 8));
      const up = ctx.input(ctx.gen.uniform(n, -2, 2));
      const dOut = ctx.input(ctx.gen.uniform(n));
      const dGate = ctx.output(n);
      const dUp = ctx.output(n);
      ctx.run((be, pick) => be.swigluBackward(pick(gate), pick(up), pick(dOut), pick(dGate), pick(dUp), n));
      await ctx.expect(dGate, TOLERANCES.unary, "dGate");
      await ctx.expect(dUp, TOLERANCES.unary, "dUp");
    });
  }

  const adamwCases = [
    { name: "n=1037 step=3 weightDecay=0.1 gradScale=0.5", n: 1037, step: 3, weightDecay: 0.1, gradScale: 0.5 as number | undefined },
    { name: "n=1 step=1 no decay, default gradScale", n: 1, step: 1, weightDecay: 0, gradScale: undefined },
    { name: "n=65 step=1000 weightDecay=0.01 gradScale=2", n: 65, step: 1000, weightDecay: 0.01, gradScale: 2 },
  ];
  for (const c of adamwCases) {
    add("adamw", c.name, async (ctx) => {
      const param = ctx.input(ctx.gen.normal(c.n));
      const grad = ctx.input(ctx.gen.normal(c.n));
      const m = ctx.input(ctx.gen.normal(c.n, 0.1));
      const v = ctx.input(ctx.gen.uniform(c.n, 0, 0.01));
      const beta1 = 0.9;
      const beta2 = 0.999;
      ctx.run((be, pick) =>
        be.adamw({
          param: pick(param),
          grad: pick(grad),
          m: pick(m),
          v: pick(v),
          n: c.n,
          lr: 1e-3,
          beta1,
          beta2,
          eps: 1e-8,
          weightDecay: c.weightDecay,
          biasCorrection1: 1 - beta1 ** c.step,
          biasCorrection2: 1 - beta2 ** c.step,
          ...(c.gradScale !== undefined ? { gradScale: c.gradScale } : {}),
        }),
      );
      await ctx.expect(param, TOLERANCES.adamw, "param");
      await ctx.expect(m, TOLERANCES.adamw, "m");
      await ctx.expect(v, TOLERANCES.adamw, "v");
    });
  }
}
