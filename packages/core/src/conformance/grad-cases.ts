// The gradient-check problems: for each kernel with a backward, a small forward whose output is
// projected on a random r, and the backward (fed r) that should be its gradient.
import type { DeviceBuffer } from "../interfaces/backend.js";
import { ATTENTION_CASES, type ViewSpec, attentionArgs, attentionLayout, attentionSizes } from "./cases-attention.js";
import { copyCases } from "./cases-layout.js";
import { makeLabels, makeTopK, makeWeights } from "./cases-loss.js";
import { UNARY_OPS, opNames } from "../interfaces/ops.js";
import { UNARY_DOMAIN, unaryAlphas } from "./cases-math.js";
import { ROPE_CASES, ROPE_POSITIONS, ropeTables } from "./cases-nn.js";
import type { GradCase, GradProblem, F64Scratch } from "./gradcheck.js";
import { numel, range } from "./harness.js";

/** Buffer element of each (batch, token, head, dim) element of a view, in contiguous order. */
function viewIndices(spec: ViewSpec, batch: number, tokens: number, heads: number, dim: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < batch; b++)
    for (let t = 0; t < tokens; t++)
      for (let h = 0; h < heads; h++)
        for (let d = 0; d < dim; d++) out.push(spec.offset + b * spec.strides[0] + t * spec.strides[1] + h * spec.strides[2] + d);
  return out;
}

function rowCases(): GradCase[] {
  const cases: GradCase[] = [];
  for (const [rows, cols] of [[3, 17], [2, 5]] as const) {
    cases.push({
      kernel: "softmaxBackward",
      name: `rows=${rows} cols=${cols}`,
      build(s) {
        const n = rows * cols;
        const x = s.input(s.gen.uniform(n, -3, 3));
        const r = s.gen.uniform(n);
        const rBuf = s.input(r);
        const y = s.filled(n);
        const dx = s.filled(n);
        return {
          params: [{ name: "x", buf: x, indices: range(n) }],
          loss: () => (s.be.softmax(x, y, rows, cols), s.project(y, r)),
          analytic: () => {
            s.be.softmax(x, y, rows, cols);
            s.be.softmaxBackward(y, rBuf, dx, rows, cols);
            return [s.read(dx)];
          },
        };
      },
    });
  }
  for (const [rows, cols, eps] of [[4, 9, 1e-5], [2, 16, 1e-2]] as const) {
    cases.push({
      kernel: "rmsNormBackward",
      name: `rows=${rows} cols=${cols} eps=${eps}`,
      build(s) {
        const n = rows * cols;
        const x = s.input(s.gen.normal(n));
        const weight = s.input(s.gen.uniform(cols, 0.5, 1.5));
        const r = s.gen.uniform(n);
        const rBuf = s.input(r);
        const out = s.filled(n);
        const rstd = s.filled(rows);
        const dx = s.filled(n);
        // dWeight accumulates: start from a constant and subtract it.
        const dWeight = s.filled(cols, 0.25);
        return {
          params: [
            { name: "x", buf: x, indices: range(n) },
            { name: "weight", buf: weight, indices: range(cols) },
          ],
          loss: () => (s.be.rmsNorm(x, weight, out, rstd, rows, cols, eps), s.project(out, r)),
          analytic: () => {
            s.be.rmsNorm(x, weight, out, rstd, rows, cols, eps);
            s.be.rmsNormBackward(x, weight, rstd, rBuf, dx, dWeight, rows, cols);
            return [s.read(dx), s.read(dWeight).map((v) => v - 0.25)];
          },
        };
      },
    });
  }
  for (const c of ROPE_CASES) {
    cases.push({
      kernel: "rope",
      name: `${c.name}: backward is rope(dy, ${c.inverse ? "forward" : "inverse"})`,
      build(s) {
        const n = c.batch * c.seqLen * c.numHeads * c.headDim;
        const tables = ropeTables(ROPE_POSITIONS, c.headDim);
        const cos = s.input(tables.cos);
        const sin = s.input(tables.sin);
        const positions = c.explicitPositions ? s.ints(s.gen.ints(c.batch * c.seqLen, ROPE_POSITIONS)) : undefined;
        const x = s.input(s.gen.uniform(n));
        const r = s.gen.uniform(n);
        const rBuf = s.input(r);
        const out = s.filled(n);
        const dx = s.filled(n);
        const rope = (src: DeviceBuffer, dst: DeviceBuffer, inverse: boolean) =>
          s.be.rope({
            x: src, out: dst, batch: c.batch, seqLen: c.seqLen, numHeads: c.numHeads, headDim: c.headDim, layout: c.layout, cos, sin, inverse,
            ...(c.posOffset !== undefined ? { posOffset: c.posOffset } : {}),
            ...(positions ? { positions } : {}),
            ...(c.scale !== undefined ? { scale: c.scale } : {}),
          });
        return {
          params: [{ name: "x", buf: x, indices: range(n) }],
          loss: () => (rope(x, out, c.inverse ?? false), s.project(out, r)),
          analytic: () => (rope(rBuf, dx, !(c.inverse ?? false)), [s.read(dx)]),
        };
      },
    });
  }
  cases.push({
    kernel: "swigluBackward",
    name: "n=33",
    build(s) {
      const n = 33;
      const gate = s.input(s.gen.uniform(n, -4, 4));
      const up = s.input(s.gen.uniform(n, -2, 2));
      const r = s.gen.uniform(n);
      const rBuf = s.input(r);
      const out = s.filled(n);
      const dGate = s.filled(n);
      const dUp = s.filled(n);
      return {
        params: [
          { name: "gate", buf: gate, indices: range(n) },
          { name: "up", buf: up, indices: range(n) },
        ],
        loss: () => (s.be.swiglu(gate, up, out, n), s.project(out, r)),
        analytic: () => (s.be.swigluBackward(gate, up, rBuf, dGate, dUp, n), [s.read(dGate), s.read(dUp)]),
      };
    },
  });
  for (const op of opNames(UNARY_OPS)) {
    for (const alpha of unaryAlphas(op)) {
      cases.push({
        kernel: "unaryBackward",
        name: `${op}${alpha === undefined ? "" : ` alpha=${alpha}`}`,
        build(s) {
          const n = 17;
          const x = s.input(UNARY_DOMAIN[op](s.gen, n));
          const r = s.gen.uniform(n);
          const rBuf = s.input(r);
          const y = s.filled(n);
          const dx = s.filled(n);
          return {
            params: [{ name: "x", buf: x, indices: range(n) }],
            loss: () => (s.be.unary(op, x, y, n, alpha), s.project(y, r)),
            analytic: () => {
              s.be.unary(op, x, y, n, alpha);
              s.be.unaryBackward(op, x, y, rBuf, dx, n, alpha);
              return [s.read(dx)];
            },
          };
        },
      });
    }
  }
  cases.push({
    kernel: "embeddingBackward",
    name: "n=9 vocab=7 dim=5, repeated ids",
    build(s) {
      const [n, vocab, dim] = [9, 7, 5];
      const ids = s.ints(Int32Array.from([3, 3, 0, 6, 3, 1, 0, 3, 5]));
      const table = s.input(s.gen.normal(vocab * dim));
      const r = s.gen.uniform(n * dim);
      const rBuf = s.input(r);
      const out = s.filled(n * dim);
      const dTable = s.filled(vocab * dim, 0.5);
      return {
        params: [{ name: "table", buf: table, indices: range(vocab * dim) }],
        loss: () => (s.be.embedding(ids, table, out, n, vocab, dim), s.project(out, r)),
        analytic: () => (s.be.embeddingBackward(ids, rBuf, dTable, n, vocab, dim), [s.read(dTable).map((v) => v - 0.5)]),
      };
    },
  });
  return cases;
}

function attentionGradCases(): GradCase[] {
  // The long case costs a lot of forwards for no new coverage; with a single key the output is v
  // whatever q and k are, so their gradients are exactly zero and the relative error is undefined.
  return ATTENTION_CASES.filter((c) => !c.noLse && c.keyLen > 1 && c.queryLen * c.keyLen <= 100).map((c) => ({
    kernel: "attentionBackward",
    name: c.name,
    build(s): GradProblem {
      const layout = attentionLayout(c);
      const sizes = attentionSizes(c);
      const inputs = layout.buffers.map((n) => s.input(s.gen.normal(n)));
      const args = attentionArgs(c, layout, inputs);
      const r = s.gen.uniform(sizes.out);
      const rBuf = s.input(r);
      const out = s.filled(sizes.out);
      const lse = s.filled(sizes.lse);
      const dq = s.filled(sizes.q);
      const dk = s.filled(sizes.k);
      const dv = s.filled(sizes.v);
      const forward = () => s.be.attention({ ...args, out, lse });
      return {
        params: [
          { name: "q", buf: inputs[layout.q.buffer]!, indices: viewIndices(layout.q, c.batch, c.queryLen, c.numHeads, c.qkDim) },
          { name: "k", buf: inputs[layout.k.buffer]!, indices: viewIndices(layout.k, c.batch, c.keyLen, c.numKvHeads, c.qkDim) },
          { name: "v", buf: inputs[layout.v.buffer]!, indices: viewIndices(layout.v, c.batch, c.keyLen, c.numKvHeads, c.vDim) },
        ],
        loss: () => (forward(), s.project(out, r)),
        analytic: () => {
          forward();
          s.be.attentionBackward({ ...args, out, lse, dOut: rBuf, dq, dk, dv });
          return [s.read(dq), s.read(dk), s.read(dv)];
        },
      };
    },
  }));
}

function lossGradCases(): GradCase[] {
  const cases: GradCase[] = [];
  for (const c of [
    { rows: 5, vocab: 17, temperature: 1, weights: false },
    { rows: 4, vocab: 9, temperature: 2, weights: true },
  ]) {
    cases.push({
      kernel: "crossEntropy",
      name: `rows=${c.rows} vocab=${c.vocab} temperature=${c.temperature}${c.weights ? " weights" : ""} ignored labels`,
      build(s) {
        const n = c.rows * c.vocab;
        const logits = s.input(s.gen.normal(n, 2));
        const labels = s.ints(makeLabels(s.gen, c.rows, c.vocab));
        const weights = c.weights ? { weights: s.input(makeWeights(s.gen, c.rows)) } : {};
        const loss = s.filled(c.rows);
        const grad = s.filled(n);
        const base = { logits, labels, rows: c.rows, vocab: c.vocab, temperature: c.temperature, loss, ...weights };
        return {
          params: [{ name: "logits", buf: logits, indices: range(n) }],
          loss: () => (s.be.crossEntropy(base), s.total(loss, c.rows)),
          analytic: () => (s.be.crossEntropy({ ...base, grad }), [s.read(grad)]),
        };
      },
    });
  }
  for (const c of [
    { rows: 4, vocab: 11, temperature: 1, weights: false, topK: 0 },
    { rows: 3, vocab: 9, temperature: 2, weights: true, topK: 0 },
    { rows: 4, vocab: 13, temperature: 1, weights: false, topK: 3 },
    { rows: 3, vocab: 9, temperature: 0.5, weights: true, topK: 1 },
    { rows: 2, vocab: 12, temperature: 2, weights: false, topK: 4 },
  ]) {
    cases.push({
      kernel: "klDiv",
      name: `${c.topK ? `top-${c.topK}` : "dense"} rows=${c.rows} vocab=${c.vocab} temperature=${c.temperature}${c.weights ? " weights" : ""}`,
      build(s) {
        const n = c.rows * c.vocab;
        const logits = s.input(s.gen.normal(n, 2));
        const weights = c.weights ? { weights: s.input(makeWeights(s.gen, c.rows)) } : {};
        let teacher;
        if (c.topK) {
          const top = makeTopK(s.gen, c.rows, c.vocab, c.topK);
          teacher = { teacherIndices: s.ints(top.indices), teacherLogprobs: s.input(top.logprobs), topK: c.topK };
        } else teacher = { teacherLogits: s.input(s.gen.normal(n, 2)) };
        const loss = s.filled(c.rows);
        const grad = s.filled(n);
        const base = { logits, rows: c.rows, vocab: c.vocab, temperature: c.temperature, loss, ...weights, ...teacher };
        return {
          params: [{ name: "logits", buf: logits, indices: range(n) }],
          loss: () => (s.be.klDiv(base), s.total(loss, c.rows)),
          analytic: () => (s.be.klDiv({ ...base, grad }), [s.read(grad)]),
        };
      },
    });
  }
  return cases;
}

/** (aShape, xShape): a is broadcast up to xShape by binary mul with b; sumToShape is the adjoint. */
const BROADCAST_PATTERNS: [number[], number[]][] = [
  [[1, 5, 1], [4, 5, 6]],
  [[6], [4, 5, 6]],
  [[4, 1, 6], [4, 5, 6]],
  [[1], [3, 4]],
  [[3, 1, 5], [2, 3, 4, 5]],
  [[1, 1, 7], [3, 1, 7]],
];

function adjointCases(): GradCase[] {
  const cases: GradCase[] = [];
  for (const [aShape, xShape] of BROADCAST_PATTERNS) {
    cases.push({
      kernel: "sumToShape",
      name: `adjoint of broadcasting (${aShape}) -> (${xShape})`,
      build(s) {
        const a = s.input(s.gen.uniform(numel(aShape)));
        const b = s.input(s.gen.uniform(numel(xShape)));
        const r = s.gen.uniform(numel(xShape));
        const rBuf = s.input(r);
        const out = s.filled(numel(xShape));
        const rb = s.filled(numel(xShape));
        const da = s.filled(numel(aShape));
        return {
          params: [{ name: "a", buf: a, indices: range(numel(aShape)) }],
          loss: () => (s.be.binary("mul", a, aShape, b, xShape, out, xShape), s.project(out, r)),
          analytic: () => {
            s.be.binary("mul", rBuf, xShape, b, xShape, rb, xShape);
            s.be.sumToShape(rb, xShape, da, aShape);
            return [s.read(da)];
          },
        };
      },
    });
  }
  for (const c of copyCases().filter((c) => c.dtype === "f32")) {
    cases.push({
      kernel: "copyStrided",
      name: `${c.name}: adjoint is the swapped copy with accumulate`,
      build(s) {
        const src = s.input(s.gen.uniform(c.srcLength));
        const base = s.gen.uniform(c.dstLength);
        const dst = s.filled(c.dstLength);
        const r = s.gen.uniform(c.dstLength);
        const rBuf = s.input(r);
        const gx = s.filled(c.srcLength);
        return {
          params: [{ name: "src", buf: src, indices: range(c.srcLength) }],
          loss: () => {
            s.be.writeF64(dst, Float64Array.from(base));
            for (const copy of c.copies) s.be.copyStrided({ src, dst, ...copy });
            return s.project(dst, r);
          },
          analytic: () => {
            for (const copy of c.copies) {
              s.be.copyStrided({ src: rBuf, srcOffset: copy.dstOffset, srcStrides: copy.dstStrides, dst: gx, dstOffset: copy.srcOffset, dstStrides: copy.srcStrides, shape: copy.shape, accumulate: true });
            }
            return [s.read(gx)];
          },
        };
      },
    });
  }
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      cases.push({ kernel: "gemm", name: `${transA ? "transA" : "A"} ${transB ? "transB" : "B"} m=3 n=5 k=4 alpha=0.7 beta=0.3: backward is gemm`, build: (s) => gemmProblem(s, transA, transB) });
    }
  }
  return cases;
}

/** C = alpha·op(A)·op(B) + beta·C0; dA, dB are gemms of R with the other operand, dC0 = beta·R. */
function gemmProblem(s: F64Scratch, transA: boolean, transB: boolean): GradProblem {
  const [m, n, k, alpha, beta] = [3, 5, 4, 0.7, 0.3];
  const be = s.be;
  const aCols = transA ? m : k;
  const bCols = transB ? k : n;
  const a = s.input(s.gen.uniform(m * k));
  const b = s.input(s.gen.uniform(k * n));
  const c0 = s.input(s.gen.uniform(m * n));
  const c = s.filled(m * n);
  const r = s.gen.uniform(m * n);
  const rBuf = s.input(r);
  const da = s.filled(m * k);
  const db = s.filled(k * n);
  const dc = s.filled(m * n);
  const one = { batch: 1, strideA: 0, strideB: 0, strideC: 0, beta: 0, alpha };
  return {
    params: [
      { name: "A", buf: a, indices: range(m * k) },
      { name: "B", buf: b, indices: range(k * n) },
      { name: "C", buf: c0, indices: range(m * n) },
    ],
    loss: () => {
      be.copyStrided({ src: c0, srcStrides: [1], dst: c, dstStrides: [1], shape: [m * n] });
      be.gemm({ batch: 1, m, n, k, transA, transB, alpha, beta, a, lda: aCols, strideA: 0, b, ldb: bCols, strideB: 0, c, ldc: n, strideC: 0 });
      return s.project(c, r);
    },
    analytic: () => {
      // dA: stored (m, k) gets alpha·R·op(B)ᵀ; stored (k, m) gets alpha·op(B)·Rᵀ.
      if (!transA) be.gemm({ ...one, m, n: k, k: n, transA: false, transB: !transB, a: rBuf, lda: n, b, ldb: bCols, c: da, ldc: k });
      else be.gemm({ ...one, m: k, n: m, k: n, transA: transB, transB: true, a: b, lda: bCols, b: rBuf, ldb: n, c: da, ldc: m });
      // dB: stored (k, n) gets alpha·op(A)ᵀ·R; stored (n, k) gets alpha·Rᵀ·op(A).
      if (!transB) be.gemm({ ...one, m: k, n, k: m, transA: !transA, transB: false, a, lda: aCols, b: rBuf, ldb: n, c: db, ldc: n });
      else be.gemm({ ...one, m: n, n: k, k: m, transA: true, transB: transA, a: rBuf, lda: n, b: a, ldb: aCols, c: db, ldc: k });
      be.unary("scale", rBuf, dc, m * n, beta);
      return [s.read(da), s.read(db), s.read(dc)];
    },
  };
}

/** Every gradient check, grouped by kernel. */
export function gradCases(): GradCase[] {
  return [...rowCases(), ...attentionGradCases(), ...lossGradCases(), ...adjointCases()];
}
