// Conformance cases for the linear-algebra and elementwise kernels: gemm, binary, unary,
// unaryBackward, reduceLastAxis, sumToShape.
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, opNames, type UnaryOp } from "../interfaces/ops.js";
import { type CaseSink, type Inputs, numel } from "./harness.js";
import { TOLERANCES, reduceTolerance } from "./tolerances.js";

interface GemmCase {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  /** Extra elements per stored row beyond the logical width (lda/ldb/ldc > width). */
  pad?: number;
  /** Offsets of A[0], B[0], C[0]. */
  offset?: number;
  broadcastA?: boolean;
  broadcastB?: boolean;
  /** C's prior content is NaN (only with beta = 0: it must not leak through). */
  nanC?: boolean;
}

function gemmCases(): GemmCase[] {
  const cases: GemmCase[] = [];
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      cases.push({ batch: 1, m: 17, n: 33, k: 65, transA, transB, alpha: 1, beta: 0, nanC: true });
      cases.push({ batch: 2, m: 3, n: 5, k: 17, transA, transB, alpha: -0.5, beta: 0.75, pad: 3, offset: 5 });
    }
  }
  cases.push({ batch: 1, m: 1, n: 1, k: 1, transA: false, transB: false, alpha: 2, beta: 1 });
  cases.push({ batch: 3, m: 65, n: 3, k: 17, transA: false, transB: true, alpha: 1, beta: 0, broadcastA: true, nanC: true });
  cases.push({ batch: 3, m: 5, n: 9, k: 33, transA: true, transB: false, alpha: 0.25, beta: 1, broadcastB: true, pad: 1 });
  cases.push({ batch: 4, m: 1, n: 33, k: 17, transA: false, transB: false, alpha: 1, beta: 0, nanC: true });
  cases.push({ batch: 1, m: 33, n: 1, k: 65, transA: true, transB: true, alpha: 1, beta: -1 });
  cases.push({ batch: 2, m: 33, n: 17, k: 1, transA: false, transB: false, alpha: 1.5, beta: 0.5 });
  cases.push({ batch: 1, m: 9, n: 7, k: 130, transA: false, transB: true, alpha: 0.125, beta: 0, nanC: true });
  return cases;
}

function gemmName(c: GemmCase): string {
  const flags = [c.transA ? "transA" : "", c.transB ? "transB" : "", c.broadcastA ? "A stride 0" : "", c.broadcastB ? "B stride 0" : "", c.pad ? `ld+${c.pad}` : "", c.offset ? `offset ${c.offset}` : "", c.nanC ? "NaN in C" : ""];
  return [`batch=${c.batch} m=${c.m} n=${c.n} k=${c.k} alpha=${c.alpha} beta=${c.beta}`, ...flags.filter((f) => f)].join(" ");
}

type Domain = (gen: Inputs, n: number) => Float32Array;

const positive: Domain = (g, n) => g.uniform(n, 0.1, 4);

/** Inputs inside each op's domain, away from kinks (abs, relu at 0) and poles (reciprocal). */
export const UNARY_DOMAIN: Record<UnaryOp, Domain> = {
  neg: (g, n) => g.uniform(n, -4, 4),
  exp: (g, n) => g.uniform(n, -5, 5),
  log: positive,
  sqrt: positive,
  rsqrt: positive,
  abs: (g, n) => g.awayFromZero(n, 0.01, 3),
  square: (g, n) => g.uniform(n, -4, 4),
  reciprocal: (g, n) => g.awayFromZero(n, 0.25, 4),
  relu: (g, n) => g.awayFromZero(n, 0.01, 3),
  sigmoid: (g, n) => g.uniform(n, -8, 8),
  silu: (g, n) => g.uniform(n, -8, 8),
  tanh: (g, n) => g.uniform(n, -4, 4),
  gelu: (g, n) => g.uniform(n, -6, 6),
  scale: (g, n) => g.uniform(n, -4, 4),
  addScalar: (g, n) => g.uniform(n, -4, 4),
  powScalar: positive,
};

/** The unary ops the table marks as taking alpha. */
type AlphaUnaryOp = Extract<(typeof UNARY_OPS)[number], { alpha: true }>["name"];

/** The alphas each alpha-taking op is exercised with (keyed by the table, so a new one must be listed). */
const ALPHA_VALUES: Record<AlphaUnaryOp, number[]> = {
  scale: [1.7],
  addScalar: [-0.3],
  powScalar: [1.5, -0.5],
};

/** The alphas a case runs `op` with: the values above, or `[undefined]` for ops that ignore alpha. */
export function unaryAlphas(op: UnaryOp): (number | undefined)[] {
  const entry = UNARY_OPS.find((e) => e.name === op);
  return entry?.alpha ? ALPHA_VALUES[entry.name] : [undefined];
}

/** (aShape, bShape, outShape): equal shapes, broadcasts from either side, scalars, size 1. */
const BINARY_SHAPES: [number[], number[], number[]][] = [
  [[17, 33], [17, 33], [17, 33]],
  [[3, 1, 5], [4, 5], [3, 4, 5]],
  [[1], [7, 3], [7, 3]],
  [[33, 1], [1, 65], [33, 65]],
  [[2, 3, 4], [1], [2, 3, 4]],
  [[1], [1], [1]],
];

/** [xShape, outShape] pairs: every axis pattern a broadcast backward produces. */
const SUM_TO_SHAPE: [number[], number[]][] = [
  [[4, 5, 6], [1, 5, 1]],
  [[4, 5, 6], [5, 6]],
  [[4, 5, 6], [6]],
  [[4, 5, 6], [4, 1, 6]],
  [[4, 5, 6], [1]],
  [[4, 5, 6], [4, 5, 6]],
  [[2, 3, 4, 5], [3, 1, 5]],
  [[3, 1, 7], [1, 1, 7]],
  [[17, 33], [17, 1]],
  [[300], [1]],
];

/** Register the gemm and elementwise cases. */
export function mathCases(add: CaseSink): void {
  for (const c of gemmCases()) {
    add("gemm", gemmName(c), async (ctx) => {
      const pad = c.pad ?? 0;
      const offset = c.offset ?? 0;
      const [aRows, aCols] = c.transA ? [c.k, c.m] : [c.m, c.k];
      const [bRows, bCols] = c.transB ? [c.n, c.k] : [c.k, c.n];
      const lda = aCols + pad;
      const ldb = bCols + pad;
      const ldc = c.n + pad;
      // A gap of one element between batch items catches kernels that assume packed batches.
      const strideA = c.broadcastA ? 0 : aRows * lda + 1;
      const strideB = c.broadcastB ? 0 : bRows * ldb + 1;
      const strideC = c.m * ldc + 1;
      const a = ctx.input(ctx.gen.uniform(offset + (c.batch - 1) * strideA + aRows * lda));
      const b = ctx.input(ctx.gen.uniform(offset + (c.batch - 1) * strideB + bRows * ldb));
      const cLength = offset + (c.batch - 1) * strideC + c.m * ldc;
      // Untouched padding must survive; with beta = 0 the whole of C starts as NaN.
      const out = c.nanC ? ctx.output(cLength) : ctx.input(ctx.gen.uniform(cLength));
      ctx.run((be, pick) =>
        be.gemm({ batch: c.batch, m: c.m, n: c.n, k: c.k, transA: c.transA, transB: c.transB, alpha: c.alpha, beta: c.beta, a: pick(a), aOffset: offset, lda, strideA, b: pick(b), bOffset: offset, ldb, strideB, c: pick(out), cOffset: offset, ldc, strideC }),
      );
      // NaN matches NaN, so padding left NaN passes while a NaN leaked into a written element fails.
      await ctx.expect(out, TOLERANCES.gemm, "C");
    });
  }

  for (const op of opNames(BINARY_OPS)) {
    for (const [aShape, bShape, outShape] of BINARY_SHAPES) {
      add("binary", `${op} (${aShape}) ⊙ (${bShape}) -> (${outShape})`, async (ctx) => {
        const aData = op === "pow" ? ctx.gen.uniform(numel(aShape), 0.5, 2) : ctx.gen.uniform(numel(aShape), -2, 2);
        const bData = op === "div" ? ctx.gen.awayFromZero(numel(bShape), 0.5, 2) : ctx.gen.uniform(numel(bShape), -2, 2);
        const a = ctx.input(aData);
        const b = ctx.input(bData);
        const out = ctx.output(numel(outShape));
        ctx.run((be, pick) => be.binary(op, pick(a), aShape, pick(b), bShape, pick(out), outShape));
        await ctx.expect(out, TOLERANCES.binary);
      });
    }
  }

  for (const op of opNames(UNARY_OPS)) {
    for (const alpha of unaryAlphas(op)) {
      const suffix = alpha === undefined ? "" : ` alpha=${alpha}`;
      for (const n of [1, 1037]) {
        add("unary", `${op}${suffix} n=${n}`, async (ctx) => {
          const x = ctx.input(UNARY_DOMAIN[op](ctx.gen, n));
          const out = ctx.output(n);
          ctx.run((be, pick) => be.unary(op, pick(x), pick(out), n, alpha));
          await ctx.expect(out, TOLERANCES.unary);
        });
        add("unaryBackward", `${op}${suffix} n=${n}`, async (ctx) => {
          const x = ctx.input(UNARY_DOMAIN[op](ctx.gen, n));
          const y = await ctx.fromReference(n, (ref, pick, y) => ref.unary(op, pick(x), y, n, alpha));
          const dy = ctx.input(ctx.gen.uniform(n));
          const dx = ctx.output(n);
          ctx.run((be, pick) => be.unaryBackward(op, pick(x), pick(y), pick(dy), pick(dx), n, alpha));
          await ctx.expect(dx, TOLERANCES.unary);
        });
      }
    }
  }
  for (const op of ["exp", "scale"] as const) {
    add("unary", `${op} in place (out aliases x)`, async (ctx) => {
      const x = ctx.input(ctx.gen.uniform(333, -3, 3));
      ctx.run((be, pick) => be.unary(op, pick(x), pick(x), 333, 0.5));
      await ctx.expect(x, TOLERANCES.unary);
    });
  }

  for (const op of opNames(REDUCE_OPS)) {
    for (const [rows, cols] of [[1, 1], [3, 17], [33, 65], [4, 5000]] as const) {
      add("reduceLastAxis", `${op} rows=${rows} cols=${cols}`, async (ctx) => {
        const x = ctx.input(ctx.gen.uniform(rows * cols));
        const out = ctx.output(rows);
        ctx.run((be, pick) => be.reduceLastAxis(op, pick(x), pick(out), rows, cols));
        await ctx.expect(out, reduceTolerance(op, cols));
      });
    }
  }

  for (const [xShape, outShape] of SUM_TO_SHAPE) {
    add("sumToShape", `(${xShape}) -> (${outShape})`, async (ctx) => {
      const x = ctx.input(ctx.gen.uniform(numel(xShape)));
      const out = ctx.output(numel(outShape));
      ctx.run((be, pick) => be.sumToShape(pick(x), xShape, pick(out), outShape));
      await ctx.expect(out, TOLERANCES.sumToShape);
    });
  }
}
