// Every backward kernel of the reference backend against central finite differences of its
// forward kernel, in float64 storage (precision "f64"): max |analytic − numeric| / max |numeric| < 1e-6.
import t from "tap";
import { ReferenceBackend, type AttentionView, type DeviceBuffer, type UnaryOp } from "@ecomla/core";

const be = new ReferenceBackend({ precision: "f64" });
const STEP = 1e-5;
const TOLERANCE = 1e-6;

/** The part of tap's test object the helpers use. */
type Asserts = Pick<typeof t, "ok">;

/** Deterministic uniform numbers in [lo, hi) (mulberry32). */
function randoms(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  let state = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    out[i] = lo + (hi - lo) * (((z ^ (z >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

function f32(values: ArrayLike<number>): DeviceBuffer {
  const buf = be.alloc("f32", values.length);
  be.writeF64(buf, Float64Array.from(values));
  return buf;
}

function i32(values: readonly number[]): DeviceBuffer {
  const buf = be.alloc("i32", values.length);
  be.upload(buf, Int32Array.from(values));
  return buf;
}

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

/**
 * Central differences of the scalar `loss` w.r.t. every element of `input`, compared with `analytic`
 * (same length as the buffer).
 */
function checkGradient(t: Asserts, what: string, input: DeviceBuffer, analytic: Float64Array, loss: () => number): void {
  const values = be.readF64(input);
  const numeric = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const saved = values[i]!;
    be.writeF64(input, [saved + STEP], i);
    const plus = loss();
    be.writeF64(input, [saved - STEP], i);
    const minus = loss();
    be.writeF64(input, [saved], i);
    numeric[i] = (plus - minus) / (2 * STEP);
  }
  let maxDiff = 0;
  let maxNumeric = 0;
  for (let i = 0; i < numeric.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(analytic[i]! - numeric[i]!));
    maxNumeric = Math.max(maxNumeric, Math.abs(numeric[i]!));
  }
  const relative = maxDiff / Math.max(maxNumeric, 1e-12);
  t.ok(maxNumeric > 0 && relative < TOLERANCE, `${what}: relative error ${relative.toExponential(2)} (max |grad| ${maxNumeric.toExponential(2)})`);
}

t.test("unary ops", async (t) => {
  const n = 9;
  const domains: Record<UnaryOp, [number, number, number?]> = {
    neg: [-2, 2],
    exp: [-2, 2],
    log: [0.3, 3],
    sqrt: [0.3, 3],
    rsqrt: [0.3, 3],
    abs: [0.1, 2],
    square: [-2, 2],
    reciprocal: [0.3, 3],
    relu: [0.1, 2],
    sigmoid: [-4, 4],
    silu: [-4, 4],
    tanh: [-2, 2],
    gelu: [-5, 5],
    scale: [-2, 2, -0.3],
    addScalar: [-2, 2, 2],
    powScalar: [0.3, 3, 1.7],
  };
  let seed = 1;
  for (const [op, [lo, hi, alpha]] of Object.entries(domains) as [UnaryOp, [number, number, number?]][]) {
    // abs and relu are checked on both sides of 0 (but away from the kink).
    const values = randoms(n, seed++, lo, hi).map((v, i) => ((op === "abs" || op === "relu") && i % 2 === 1 ? -v : v));
    const x = f32(values);
    const y = be.alloc("f32", n);
    const cotangent = randoms(n, seed++);
    const dy = f32(cotangent);
    const dx = be.alloc("f32", n);
    be.unary(op, x, y, n, alpha);
    be.unaryBackward(op, x, y, dy, dx, n, alpha);
    checkGradient(t, op, x, be.readF64(dx), () => {
      be.unary(op, x, y, n, alpha);
      return dot(be.readF64(y), cotangent);
    });
    for (const buf of [x, y, dy, dx]) be.free(buf);
  }
});

t.test("softmax, RMSNorm, SwiGLU", async (t) => {
  const [rows, cols] = [3, 5];
  const x = f32(randoms(rows * cols, 10, -3, 3));
  const y = be.alloc("f32", rows * cols);
  const r = randoms(rows * cols, 11);
  const dx = be.alloc("f32", rows * cols);
  be.softmax(x, y, rows, cols);
  be.softmaxBackward(y, f32(r), dx, rows, cols);
  checkGradient(t, "softmax", x, be.readF64(dx), () => {
    be.softmax(x, y, rows, cols);
    return dot(be.readF64(y), r);
  });

  const xs = f32(randoms(rows * 6, 12, -2, 2));
  const weight = f32(randoms(6, 13, 0.5, 1.5));
  const out = be.alloc("f32", rows * 6);
  const rstd = be.alloc("f32", rows);
  const cot = randoms(rows * 6, 14);
  const dxs = be.alloc("f32", rows * 6);
  const dWeight = f32(new Array(6).fill(0.5));
  const rmsLoss = () => {
    be.rmsNorm(xs, weight, out, rstd, rows, 6, 1e-3);
    return dot(be.readF64(out), cot);
  };
  rmsLoss();
  be.rmsNormBackward(xs, weight, rstd, f32(cot), dxs, dWeight, rows, 6);
  checkGradient(t, "rmsNorm dx", xs, be.readF64(dxs), rmsLoss);
  checkGradient(t, "rmsNorm dWeight (accumulated onto 0.5)", weight, be.readF64(dWeight).map((v) => v - 0.5), rmsLoss);

  const n = 8;
  const gate = f32(randoms(n, 15, -4, 4));
  const up = f32(randoms(n, 16));
  const sw = be.alloc("f32", n);
  const swCot = randoms(n, 17);
  const dGate = be.alloc("f32", n);
  const dUp = be.alloc("f32", n);
  be.swigluBackward(gate, up, f32(swCot), dGate, dUp, n);
  const swLoss = () => {
    be.swiglu(gate, up, sw, n);
    return dot(be.readF64(sw), swCot);
  };
  checkGradient(t, "swiglu dGate", gate, be.readF64(dGate), swLoss);
  checkGradient(t, "swiglu dUp", up, be.readF64(dUp), swLoss);
});

t.test("rope: the inverse rotation is the backward", async (t) => {
  const [batch, seqLen, numHeads, headDim, positionsTotal] = [2, 3, 2, 6, 8];
  const half = headDim / 2;
  const cosTable: number[] = [];
  const sinTable: number[] = [];
  for (let p = 0; p < positionsTotal; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * 10000 ** (-(2 * i) / headDim);
      cosTable.push(Math.cos(angle));
      sinTable.push(Math.sin(angle));
    }
  }
  const cos = f32(cosTable);
  const sin = f32(sinTable);
  const size = batch * seqLen * numHeads * headDim;
  const positions = i32([5, 1, 7, 0, 2, 3]);
  for (const layout of ["half", "interleaved"] as const) {
    for (const where of [{ posOffset: 2 }, { positions }]) {
      const common = { batch, seqLen, numHeads, headDim, layout, cos, sin, scale: 1.3, ...where };
      const x = f32(randoms(size, 20));
      const y = be.alloc("f32", size);
      const cot = randoms(size, 21);
      const dx = f32(cot);
      be.rope({ ...common, x: dx, out: dx, inverse: true });
      checkGradient(t, `rope ${layout} ${"positions" in where ? "explicit positions" : "posOffset"}`, x, be.readF64(dx), () => {
        be.rope({ ...common, x, out: y });
        return dot(be.readF64(y), cot);
      });
    }
  }
});

/** Element index of (b, t, h, d) in a view. */
function viewIndex(view: AttentionView, tokens: number, heads: number, dim: number, b: number, t: number, h: number, d: number): number {
  const [sb, st, sh] = view.strides ?? [tokens * heads * dim, heads * dim, dim];
  return (view.offset ?? 0) + b * sb + t * st + h * sh + d;
}

interface AttentionCase {
  name: string;
  batch: number;
  queryLen: number;
  keyLen: number;
  numHeads: number;
  numKvHeads: number;
  qkDim: number;
  vDim: number;
  causal: boolean;
  /** Pack q, k and v into one buffer as a fused QKV projection would (needs T = S). */
  packed: boolean;
}

function checkAttention(t: Asserts, c: AttentionCase): void {
  const { batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim, causal } = c;
  let q: AttentionView;
  let k: AttentionView;
  let v: AttentionView;
  if (c.packed) {
    const width = numHeads * qkDim + numKvHeads * qkDim + numKvHeads * vDim;
    const buf = f32(randoms(batch * queryLen * width, 30, -1.5, 1.5));
    const strides = (dim: number) => [queryLen * width, width, dim] as const;
    q = { buf, strides: strides(qkDim) };
    k = { buf, offset: numHeads * qkDim, strides: strides(qkDim) };
    v = { buf, offset: (numHeads + numKvHeads) * qkDim, strides: strides(vDim) };
  } else {
    // q padded: one spare element per head and two per batch, starting at offset 1.
    const qStrides = [queryLen * numHeads * (qkDim + 1) + 2, numHeads * (qkDim + 1), qkDim + 1] as const;
    q = { buf: f32(randoms(1 + batch * qStrides[0], 31, -1.5, 1.5)), offset: 1, strides: qStrides };
    k = { buf: f32(randoms(batch * keyLen * numKvHeads * qkDim, 32, -1.5, 1.5)) };
    v = { buf: f32(randoms(batch * keyLen * numKvHeads * vDim, 33)) };
  }
  const args = { batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim, scale: 1 / Math.sqrt(qkDim), causal, q, k, v };
  const rows = batch * queryLen * numHeads;
  const out = be.alloc("f32", rows * vDim);
  const lse = be.alloc("f32", rows);
  const cot = randoms(rows * vDim, 34);
  const dq = be.alloc("f32", rows * qkDim);
  const dk = be.alloc("f32", batch * keyLen * numKvHeads * qkDim);
  const dv = be.alloc("f32", batch * keyLen * numKvHeads * vDim);
  be.attention({ ...args, out, lse });
  be.attentionBackward({ ...args, out, lse, dOut: f32(cot), dq, dk, dv });
  // Scatter the contiguous dq/dk/dv into the layout of the (possibly shared, strided) inputs.
  const analytic = new Map<DeviceBuffer, { name: string; grad: Float64Array }>();
  const scatter = (name: string, view: AttentionView, grad: Float64Array, tokens: number, heads: number, dim: number) => {
    const entry = analytic.get(view.buf) ?? { name, grad: new Float64Array(view.buf.length) };
    analytic.set(view.buf, entry);
    const target = entry.grad;
    for (let b = 0; b < batch; b++)
      for (let tok = 0; tok < tokens; tok++)
        for (let h = 0; h < heads; h++)
          for (let d = 0; d < dim; d++) target[viewIndex(view, tokens, heads, dim, b, tok, h, d)] += grad[((b * tokens + tok) * heads + h) * dim + d]!;
  };
  scatter(c.packed ? "packed qkv" : "q (padded view)", q, be.readF64(dq), queryLen, numHeads, qkDim);
  scatter("k", k, be.readF64(dk), keyLen, numKvHeads, qkDim);
  scatter("v", v, be.readF64(dv), keyLen, numKvHeads, vDim);
  const loss = () => {
    be.attention({ ...args, out });
    return dot(be.readF64(out), cot);
  };
  for (const [buf, { name, grad }] of analytic) checkGradient(t, `${c.name}: ${name}`, buf, grad, loss);
}

t.test("attention: GQA, unequal dims, causal offset, strided and packed views", async (t) => {
  const base = { batch: 2, numHeads: 4, qkDim: 3, vDim: 2 };
  checkAttention(t, { ...base, name: "causal S>T GQA 4:2", queryLen: 3, keyLen: 5, numKvHeads: 2, causal: true, packed: false });
  checkAttention(t, { ...base, name: "full S>T MQA 4:1", queryLen: 2, keyLen: 4, numKvHeads: 1, causal: false, packed: false });
  checkAttention(t, { ...base, name: "causal packed QKV", queryLen: 4, keyLen: 4, numKvHeads: 2, qkDim: 2, vDim: 5, causal: true, packed: true });
});

t.test("embedding scatter-add is the gather's backward", async (t) => {
  const [vocab, dim] = [5, 3];
  const ids = i32([4, 0, 4, 2, 4]);
  const table = f32(randoms(vocab * dim, 40));
  const out = be.alloc("f32", 5 * dim);
  const cot = randoms(5 * dim, 41);
  const dTable = f32(new Array(vocab * dim).fill(0));
  be.embeddingBackward(ids, f32(cot), dTable, 5, vocab, dim);
  const grad = be.readF64(dTable);
  t.equal(grad[3], 0, "rows of unused ids get no gradient");
  checkGradient(t, "embedding dTable", table, grad, () => {
    be.embedding(ids, table, out, 5, vocab, dim);
    return dot(be.readF64(out), cot);
  });
});

t.test("loss gradients: cross-entropy, dense KL, top-k KL", async (t) => {
  const [rows, vocab] = [4, 6];
  const logits = f32(randoms(rows * vocab, 50, -3, 3));
  const loss = be.alloc("f32", rows);
  const grad = be.alloc("f32", rows * vocab);
  const weights = f32([1, 2, 0.5, 3]);
  const sumLoss = () => be.readF64(loss).reduce((a, b) => a + b, 0);

  const labels = i32([2, -1, 5, 0]);
  const ce = { logits, rows, vocab, labels, loss, temperature: 1.7, weights };
  be.crossEntropy({ ...ce, grad });
  checkGradient(t, "crossEntropy (τ = 1.7, weights, one ignored row)", logits, be.readF64(grad), () => {
    be.crossEntropy(ce);
    return sumLoss();
  });

  const teacherLogits = f32(randoms(rows * vocab, 51, -3, 3));
  const dense = { logits, rows, vocab, teacherLogits, loss, temperature: 2, weights };
  be.klDiv({ ...dense, grad });
  checkGradient(t, "klDiv dense (τ = 2, weights)", logits, be.readF64(grad), () => {
    be.klDiv(dense);
    return sumLoss();
  });

  const topK = 3;
  const teacherIndices = i32([0, 3, 5, 1, 2, 4, 5, 4, 0, 2, 3, 1]);
  const teacherLogprobs = f32(randoms(rows * topK, 52, -3, -0.5));
  const sparse = { logits, rows, vocab, teacherIndices, teacherLogprobs, topK, loss, temperature: 1.5 };
  be.klDiv({ ...sparse, grad });
  checkGradient(t, "klDiv top-k (τ = 1.5)", logits, be.readF64(grad), () => {
    be.klDiv(sparse);
    return sumLoss();
  });
});
