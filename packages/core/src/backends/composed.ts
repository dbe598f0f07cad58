// The default paths of the optional fused kernels: each one composed from the required primitives
// only (fill, copyStrided, cast, gemm, binary, unary, unaryBackward, reduceLastAxis, embedding).
// `completeBackend` fills a backend's missing fused kernels with these, so a new backend needs the
// primitives alone (ggml's supports_op + CPU fallback is the model). They favour few, large
// primitive calls over speed; temporaries are bounded by chunking rows (COMPOSE_CHUNK_ELEMENTS).
// Only unary and binary ever run in place (the primitives whose contract allows aliasing).
import type {
  AdamWArgs,
  AttentionArgs,
  AttentionBackwardArgs,
  AttentionForwardArgs,
  BackendPrimitives,
  CompleteBackend,
  CrossEntropyArgs,
  DType,
  DeviceBuffer,
  FusedKernels,
  KlDivArgs,
  LossArgs,
  RopeArgs,
  TensorBackend,
} from "../interfaces/backend.js";
import { FUSED_KERNELS, PRIMITIVE_METHODS, type FusedKernelName } from "../interfaces/ops.js";

/** Largest temporary (elements) one composed step allocates for row-chunked work (16 MiB of f32). */
export const COMPOSE_CHUNK_ELEMENTS = 1 << 22;

/** Temporaries of one composed call, all freed by done() (after the kernels using them are enqueued). */
class Temps {
  private readonly owned: DeviceBuffer[] = [];
  constructor(readonly be: BackendPrimitives) {}
  f32(n: number): DeviceBuffer {
    return this.alloc("f32", n);
  }
  alloc(dtype: DType, n: number): DeviceBuffer {
    const buf = this.be.alloc(dtype, Math.max(1, n));
    this.owned.push(buf);
    return buf;
  }
  filled(n: number, value: number): DeviceBuffer {
    const buf = this.f32(n);
    this.be.fill(buf, value, n);
    return buf;
  }
  upload(data: Float32Array | Int32Array): DeviceBuffer {
    const buf = this.alloc(data instanceof Int32Array ? "i32" : "f32", data.length);
    if (data.length) this.be.upload(buf, data);
    return buf;
  }
  /** A contiguous copy of src[offset .. offset+n) (src itself when offset is 0: kernels read a prefix). */
  slice(src: DeviceBuffer, offset: number, n: number): DeviceBuffer {
    if (offset === 0) return src;
    const buf = this.alloc(src.dtype, n);
    this.be.copyStrided({ src, srcOffset: offset, srcStrides: [1], dst: buf, dstStrides: [1], shape: [n] });
    return buf;
  }
  done(): void {
    for (const buf of this.owned.splice(0)) this.be.free(buf);
  }
}

function run(be: BackendPrimitives, body: (t: Temps) => void): void {
  const t = new Temps(be);
  try {
    body(t);
  } finally {
    t.done();
  }
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

/** Rows per chunk so that rows·cols stays within COMPOSE_CHUNK_ELEMENTS (at least 1). */
function chunkRows(cols: number): number {
  return Math.max(1, Math.floor(COMPOSE_CHUNK_ELEMENTS / Math.max(1, cols)));
}

/** Copy a contiguous (n) temp into dst at `offset` (or nothing when it already is dst). */
function writeBack(be: BackendPrimitives, src: DeviceBuffer, dst: DeviceBuffer, offset: number, n: number): void {
  if (src === dst || n === 0) return;
  be.copyStrided({ src, srcStrides: [1], dst, dstOffset: offset, dstStrides: [1], shape: [n] });
}

// ---- reductions and row kernels -------------------------------------------------------------------

/** Sum x (xShape) down to outShape: permute the reduced axes last, then one last-axis sum. */
function sumToShape(be: BackendPrimitives, x: DeviceBuffer, xShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
  const rank = xShape.length;
  const padded = [...new Array<number>(rank - outShape.length).fill(1), ...outShape];
  const outSize = product(outShape);
  if (product(xShape) === 0) {
    if (outSize) be.fill(out, 0, outSize);
    return;
  }
  const kept: number[] = [];
  const reduced: number[] = [];
  for (let d = 0; d < rank; d++) (padded[d] === 1 && xShape[d] !== 1 ? reduced : kept).push(d);
  const cols = product(reduced.map((d) => xShape[d]!));
  const order = [...kept, ...reduced];
  const xStrides = contiguousStrides(xShape);
  run(be, (t) => {
    let src = x;
    if (order.some((d, i) => d !== i)) {
      const shape = order.map((d) => xShape[d]!);
      src = t.f32(outSize * cols);
      be.copyStrided({ src: x, srcStrides: order.map((d) => xStrides[d]!), dst: src, dstStrides: contiguousStrides(shape), shape });
    }
    be.reduceLastAxis("sum", src, out, outSize, cols);
  });
}

/** max/shift/exp/sum of rows: e = exp(x − max) (rows, cols), sum (rows), max (rows). */
function expShifted(t: Temps, x: DeviceBuffer, rows: number, cols: number): { e: DeviceBuffer; sum: DeviceBuffer; max: DeviceBuffer } {
  const be = t.be;
  const max = t.f32(rows);
  be.reduceLastAxis("max", x, max, rows, cols);
  const e = t.f32(rows * cols);
  be.binary("sub", x, [rows, cols], max, [rows, 1], e, [rows, cols]);
  be.unary("exp", e, e, rows * cols);
  const sum = t.f32(rows);
  be.reduceLastAxis("sum", e, sum, rows, cols);
  return { e, sum, max };
}

/** log-softmax of rows: z − max − log Σ exp(z − max). z (rows, cols) → (rows, cols) */
function logSoftmax(t: Temps, z: DeviceBuffer, rows: number, cols: number): DeviceBuffer {
  const be = t.be;
  const { sum, max } = expShifted(t, z, rows, cols);
  be.unary("log", sum, sum, rows);
  be.binary("add", sum, [rows], max, [rows], sum, [rows]);
  const logp = t.f32(rows * cols);
  be.binary("sub", z, [rows, cols], sum, [rows, 1], logp, [rows, cols]);
  return logp;
}

function softmax(be: BackendPrimitives, x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
  if (!rows || !cols) return;
  run(be, (t) => {
    const { e, sum } = expShifted(t, x, rows, cols);
    be.binary("div", e, [rows, cols], sum, [rows, 1], out, [rows, cols]);
  });
}

function softmaxBackward(be: BackendPrimitives, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, rows: number, cols: number): void {
  if (!rows || !cols) return;
  const n = rows * cols;
  run(be, (t) => {
    const prod = t.f32(n);
    be.binary("mul", dy, [n], y, [n], prod, [n]);
    const dot = t.f32(rows);
    be.reduceLastAxis("sum", prod, dot, rows, cols);
    be.binary("sub", dy, [rows, cols], dot, [rows, 1], prod, [rows, cols]);
    be.binary("mul", y, [n], prod, [n], dx, [n]);
  });
}

function rmsNorm(be: BackendPrimitives, x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rstd: DeviceBuffer, rows: number, cols: number, eps: number): void {
  if (!rows) return;
  run(be, (t) => {
    be.reduceLastAxis("sumsq", x, rstd, rows, cols);
    be.unary("scale", rstd, rstd, rows, 1 / cols);
    be.unary("addScalar", rstd, rstd, rows, eps);
    be.unary("rsqrt", rstd, rstd, rows);
    const normed = t.f32(rows * cols);
    be.binary("mul", x, [rows, cols], rstd, [rows, 1], normed, [rows, cols]);
    be.binary("mul", normed, [rows, cols], weight, [cols], out, [rows, cols]);
  });
}

/** dx = rstd·(g − x̂·mean(g ⊙ x̂)) with g = dy ⊙ w, x̂ = x·rstd; dW += Σ_rows dy ⊙ x̂ (a gemm with a row of ones). */
function rmsNormBackward(be: BackendPrimitives, x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, dWeight: DeviceBuffer, rows: number, cols: number): void {
  if (!rows || !cols) return;
  const n = rows * cols;
  run(be, (t) => {
    const xHat = t.f32(n);
    be.binary("mul", x, [rows, cols], rstd, [rows, 1], xHat, [rows, cols]);
    const prod = t.f32(n);
    be.binary("mul", dy, [n], xHat, [n], prod, [n]);
    const ones = t.filled(rows, 1);
    be.gemm({ batch: 1, m: 1, n: cols, k: rows, transA: false, transB: false, alpha: 1, beta: 1, a: ones, lda: rows, strideA: 0, b: prod, ldb: cols, strideB: 0, c: dWeight, ldc: cols, strideC: 0 });
    const g = t.f32(n);
    be.binary("mul", dy, [rows, cols], weight, [cols], g, [rows, cols]);
    be.binary("mul", g, [n], xHat, [n], prod, [n]);
    const mean = t.f32(rows);
    be.reduceLastAxis("mean", prod, mean, rows, cols);
    be.binary("mul", xHat, [rows, cols], mean, [rows, 1], prod, [rows, cols]);
    be.binary("sub", g, [n], prod, [n], g, [n]);
    be.binary("mul", g, [rows, cols], rstd, [rows, 1], dx, [rows, cols]);
  });
}

// ---- elementwise ----------------------------------------------------------------------------------

function swiglu(be: BackendPrimitives, gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer, n: number): void {
  if (!n) return;
  run(be, (t) => {
    const act = t.f32(n);
    be.unary("silu", gate, act, n);
    be.binary("mul", act, [n], up, [n], out, [n]);
  });
}

function swigluBackward(be: BackendPrimitives, gate: DeviceBuffer, up: DeviceBuffer, dOut: DeviceBuffer, dGate: DeviceBuffer, dUp: DeviceBuffer, n: number): void {
  if (!n) return;
  run(be, (t) => {
    const act = t.f32(n);
    be.unary("silu", gate, act, n);
    const dAct = t.f32(n);
    be.binary("mul", dOut, [n], up, [n], dAct, [n]);
    be.binary("mul", dOut, [n], act, [n], dUp, [n]);
    be.unaryBackward("silu", gate, act, dAct, dGate, n);
  });
}

/** PyTorch's AdamW: p −= lr·wd·p; then p −= lr·(m/bc1)/(√(v/bc2) + eps). */
function adamw(be: BackendPrimitives, a: AdamWArgs): void {
  const n = a.n;
  if (!n) return;
  run(be, (t) => {
    const g = t.f32(n);
    be.unary("scale", a.grad, g, n, a.gradScale ?? 1);
    const tmp = t.f32(n);
    be.unary("scale", a.m, a.m, n, a.beta1);
    be.unary("scale", g, tmp, n, 1 - a.beta1);
    be.binary("add", a.m, [n], tmp, [n], a.m, [n]);
    be.unary("scale", a.v, a.v, n, a.beta2);
    be.unary("square", g, tmp, n);
    be.unary("scale", tmp, tmp, n, 1 - a.beta2);
    be.binary("add", a.v, [n], tmp, [n], a.v, [n]);
    be.unary("scale", a.v, tmp, n, 1 / a.biasCorrection2);
    be.unary("sqrt", tmp, tmp, n);
    be.unary("addScalar", tmp, tmp, n, a.eps);
    be.binary("div", a.m, [n], tmp, [n], g, [n]);
    be.unary("scale", g, g, n, a.lr / a.biasCorrection1);
    if (a.weightDecay) be.unary("scale", a.param, a.param, n, 1 - a.lr * a.weightDecay);
    be.binary("sub", a.param, [n], g, [n], a.param, [n]);
  });
}

/**
 * One-hot rows from integer ids: onehot[r, j] = relu(1 − |id[r] − j|), exact for integers below
 * 2²⁴ (f32). Ids outside [0, cols) give an all-zero row. idsF32 (rows) → (rows, cols)
 */
function oneHot(t: Temps, idsF32: DeviceBuffer, iota: DeviceBuffer, rows: number, cols: number): DeviceBuffer {
  const be = t.be;
  const out = t.f32(rows * cols);
  be.binary("sub", idsF32, [rows, 1], iota, [cols], out, [rows, cols]);
  be.unary("abs", out, out, rows * cols);
  be.unary("scale", out, out, rows * cols, -1);
  be.unary("addScalar", out, out, rows * cols, 1);
  be.unary("relu", out, out, rows * cols);
  return out;
}

/** 0, 1, …, n−1 as f32. */
function iota(t: Temps, n: number): DeviceBuffer {
  const host = new Float32Array(n);
  for (let i = 0; i < n; i++) host[i] = i;
  return t.upload(host);
}

/** ids[offset + i·stride] for i < n, as f32. ids: i32 */
function idsAsF32(t: Temps, ids: DeviceBuffer, offset: number, stride: number, n: number): DeviceBuffer {
  const picked = t.alloc("i32", n);
  t.be.copyStrided({ src: ids, srcOffset: offset, srcStrides: [stride], dst: picked, dstStrides: [1], shape: [n] });
  const f = t.f32(n);
  t.be.cast(picked, f, n);
  return f;
}

/** dTable += onehot(ids)ᵀ · dOut, one gemm per chunk of ids. ids (n) i32, dOut (n, dim), dTable (vocab, dim) */
function embeddingBackward(be: BackendPrimitives, ids: DeviceBuffer, dOut: DeviceBuffer, dTable: DeviceBuffer, n: number, vocab: number, dim: number): void {
  if (!n || !dim) return;
  run(be, (t) => {
    const positions = iota(t, vocab);
    const step = chunkRows(vocab);
    for (let r0 = 0; r0 < n; r0 += step) run(be, (chunk) => {
      const rows = Math.min(step, n - r0);
      const hot = oneHot(chunk, idsAsF32(chunk, ids, r0, 1, rows), positions, rows, vocab);
      be.gemm({ batch: 1, m: vocab, n: dim, k: rows, transA: true, transB: false, alpha: 1, beta: 1, a: hot, lda: vocab, strideA: 0, b: dOut, bOffset: r0 * dim, ldb: dim, strideB: 0, c: dTable, ldc: dim, strideC: 0 });
    });
  });
}

// ---- rotary embedding -----------------------------------------------------------------------------

/** Gather cos/sin rows by position, split x into its pair halves, rotate with binary ops, write back. */
function rope(be: BackendPrimitives, a: RopeArgs): void {
  const { batch: B, seqLen: T, numHeads: H, headDim: D } = a;
  const half = D / 2;
  const tokens = B * T;
  const n = tokens * H * half;
  if (!n) return;
  const P = Math.floor(a.cos.length / half);
  run(be, (t) => {
    let positions = a.positions;
    if (!positions) {
      const host = new Int32Array(tokens);
      for (let i = 0; i < tokens; i++) host[i] = (a.posOffset ?? 0) + (i % T);
      positions = t.upload(host);
    }
    const cos = t.f32(tokens * half);
    const sin = t.f32(tokens * half);
    be.embedding(positions, a.cos, cos, tokens, P, half);
    be.embedding(positions, a.sin, sin, tokens, P, half);
    const scale = a.scale ?? 1;
    if (scale !== 1) {
      be.unary("scale", cos, cos, tokens * half, scale);
      be.unary("scale", sin, sin, tokens * half, scale);
    }
    if (a.inverse) be.unary("neg", sin, sin, tokens * half);
    // Pair (first, second) of each head: offsets and element stride inside the head's D values.
    const interleaved = a.layout === "interleaved";
    const secondOffset = interleaved ? 1 : half;
    const pairStride = interleaved ? 2 : 1;
    const shape = [tokens * H, half];
    const xa = t.f32(n);
    const xb = t.f32(n);
    be.copyStrided({ src: a.x, srcStrides: [D, pairStride], dst: xa, dstStrides: [half, 1], shape });
    be.copyStrided({ src: a.x, srcOffset: secondOffset, srcStrides: [D, pairStride], dst: xb, dstStrides: [half, 1], shape });
    const full = [tokens, H, half];
    const table = [tokens, 1, half];
    const ya = t.f32(n);
    const yb = t.f32(n);
    const tmp = t.f32(n);
    be.binary("mul", xa, full, cos, table, ya, full);
    be.binary("mul", xb, full, sin, table, tmp, full);
    be.binary("sub", ya, [n], tmp, [n], ya, [n]);
    be.binary("mul", xb, full, cos, table, yb, full);
    be.binary("mul", xa, full, sin, table, tmp, full);
    be.binary("add", yb, [n], tmp, [n], yb, [n]);
    be.copyStrided({ src: ya, srcStrides: [half, 1], dst: a.out, dstStrides: [D, pairStride], shape });
    be.copyStrided({ src: yb, srcStrides: [half, 1], dst: a.out, dstOffset: secondOffset, dstStrides: [D, pairStride], shape });
  });
}

// ---- attention ------------------------------------------------------------------------------------

/** Element offset and strides of a view, with the contiguous defaults. */
function viewOf(v: AttentionArgs["q"], len: number, heads: number, dim: number): { buf: DeviceBuffer; offset: number; batch: number; token: number; head: number } {
  const [batch, token, head] = v.strides ?? [len * heads * dim, heads * dim, dim];
  return { buf: v.buf, offset: v.offset ?? 0, batch, token, head };
}

/** The −1e30 causal mask (T, S) (query t sees keys s ≤ t + S − T), or null when not causal. */
function causalMask(t: Temps, a: AttentionArgs): DeviceBuffer | null {
  if (!a.causal) return null;
  const { queryLen: T, keyLen: S } = a;
  const host = new Float32Array(T * S);
  for (let q = 0; q < T; q++) for (let s = q + S - T + 1; s < S; s++) host[q * S + s] = -1e30;
  return t.upload(host);
}

/**
 * scores (G, T, S) = scale · Q_h K_gᵀ (+ mask) for the G query heads h0 … h0+G−1 that share kv head g,
 * one batched gemm (K broadcast across the group).
 */
function groupScores(t: Temps, a: AttentionArgs, b: number, g: number, mask: DeviceBuffer | null, scores: DeviceBuffer): void {
  const { queryLen: T, keyLen: S, numHeads: Hq, numKvHeads: Hkv, qkDim: Dqk } = a;
  const G = Hq / Hkv;
  const q = viewOf(a.q, T, Hq, Dqk);
  const k = viewOf(a.k, S, Hkv, Dqk);
  t.be.gemm({
    batch: G, m: T, n: S, k: Dqk, transA: false, transB: true, alpha: a.scale, beta: 0,
    a: q.buf, aOffset: q.offset + b * q.batch + g * G * q.head, lda: q.token, strideA: q.head,
    b: k.buf, bOffset: k.offset + b * k.batch + g * k.head, ldb: k.token, strideB: 0,
    c: scores, ldc: S, strideC: T * S,
  });
  if (mask) t.be.binary("add", scores, [G, T, S], mask, [T, S], scores, [G, T, S]);
}

function attention(be: BackendPrimitives, a: AttentionForwardArgs): void {
  const { batch: B, queryLen: T, keyLen: S, numHeads: Hq, numKvHeads: Hkv, vDim: Dv } = a;
  if (!B || !T || !Hq) return;
  const G = Hq / Hkv;
  const v = viewOf(a.v, S, Hkv, Dv);
  run(be, (t) => {
    const mask = causalMask(t, a);
    const scores = t.f32(G * T * S);
    const rows = G * T;
    for (let b = 0; b < B; b++) {
      for (let g = 0; g < Hkv; g++) run(be, (inner) => {
        groupScores(t, a, b, g, mask, scores);
        const { e, sum, max } = expShifted(inner, scores, rows, S);
        be.binary("div", e, [rows, S], sum, [rows, 1], e, [rows, S]);
        be.gemm({
          batch: G, m: T, n: Dv, k: S, transA: false, transB: false, alpha: 1, beta: 0,
          a: e, lda: S, strideA: T * S,
          b: v.buf, bOffset: v.offset + b * v.batch + g * v.head, ldb: v.token, strideB: 0,
          c: a.out, cOffset: b * T * Hq * Dv + g * G * Dv, ldc: Hq * Dv, strideC: Dv,
        });
        if (a.lse) {
          be.unary("log", sum, sum, rows);
          be.binary("add", sum, [rows], max, [rows], sum, [rows]);
          be.copyStrided({ src: sum, srcStrides: [1], dst: a.lse, dstOffset: (b * Hq + g * G) * T, dstStrides: [1], shape: [rows] });
        }
      });
    }
  });
}

/**
 * Backward from the saved log-sum-exp: P = exp(scores − lse); dV_g = Σ_h Pᵀ dO_h; dP = dO Vᵀ;
 * dS = P ⊙ (dP − rowsum(dO ⊙ O)); dQ = scale·dS K; dK_g = scale·Σ_h dSᵀ Q_h.
 */
function attentionBackward(be: BackendPrimitives, a: AttentionBackwardArgs): void {
  const { batch: B, queryLen: T, keyLen: S, numHeads: Hq, numKvHeads: Hkv, qkDim: Dqk, vDim: Dv } = a;
  if (!B) return;
  if (S) {
    be.fill(a.dk, 0, B * S * Hkv * Dqk);
    be.fill(a.dv, 0, B * S * Hkv * Dv);
  }
  if (!T || !Hq) return;
  const G = Hq / Hkv;
  const q = viewOf(a.q, T, Hq, Dqk);
  const k = viewOf(a.k, S, Hkv, Dqk);
  const v = viewOf(a.v, S, Hkv, Dv);
  run(be, (t) => {
    const mask = causalMask(t, a);
    // rowsum(dO ⊙ O) for every (b, t, h) at once. (B, T, Hq)
    const outCount = B * T * Hq;
    const prod = t.f32(outCount * Dv);
    be.binary("mul", a.dOut, [outCount * Dv], a.out, [outCount * Dv], prod, [outCount * Dv]);
    const dotAll = t.f32(outCount);
    be.reduceLastAxis("sum", prod, dotAll, outCount, Dv);
    const rows = G * T;
    const probs = t.f32(rows * S);
    const dProbs = t.f32(rows * S);
    const lse = t.f32(rows);
    const dot = t.f32(rows);
    for (let b = 0; b < B; b++) {
      for (let g = 0; g < Hkv; g++) {
        const h0 = g * G;
        groupScores(t, a, b, g, mask, probs);
        be.copyStrided({ src: a.lse, srcOffset: (b * Hq + h0) * T, srcStrides: [1], dst: lse, dstStrides: [1], shape: [rows] });
        be.binary("sub", probs, [rows, S], lse, [rows, 1], probs, [rows, S]);
        be.unary("exp", probs, probs, rows * S);
        const dOutOffset = b * T * Hq * Dv + h0 * Dv;
        for (let i = 0; i < G; i++) {
          be.gemm({
            batch: 1, m: S, n: Dv, k: T, transA: true, transB: false, alpha: 1, beta: 1,
            a: probs, aOffset: i * T * S, lda: S, strideA: 0,
            b: a.dOut, bOffset: dOutOffset + i * Dv, ldb: Hq * Dv, strideB: 0,
            c: a.dv, cOffset: b * S * Hkv * Dv + g * Dv, ldc: Hkv * Dv, strideC: 0,
          });
        }
        be.gemm({
          batch: G, m: T, n: S, k: Dv, transA: false, transB: true, alpha: 1, beta: 0,
          a: a.dOut, aOffset: dOutOffset, lda: Hq * Dv, strideA: Dv,
          b: v.buf, bOffset: v.offset + b * v.batch + g * v.head, ldb: v.token, strideB: 0,
          c: dProbs, ldc: S, strideC: T * S,
        });
        be.copyStrided({ src: dotAll, srcOffset: b * T * Hq + h0, srcStrides: [1, Hq], dst: dot, dstStrides: [T, 1], shape: [G, T] });
        be.binary("sub", dProbs, [rows, S], dot, [rows, 1], dProbs, [rows, S]);
        be.binary("mul", dProbs, [rows * S], probs, [rows * S], dProbs, [rows * S]);
        be.gemm({
          batch: G, m: T, n: Dqk, k: S, transA: false, transB: false, alpha: a.scale, beta: 0,
          a: dProbs, lda: S, strideA: T * S,
          b: k.buf, bOffset: k.offset + b * k.batch + g * k.head, ldb: k.token, strideB: 0,
          c: a.dq, cOffset: b * T * Hq * Dqk + h0 * Dqk, ldc: Hq * Dqk, strideC: Dqk,
        });
        for (let i = 0; i < G; i++) {
          be.gemm({
            batch: 1, m: S, n: Dqk, k: T, transA: true, transB: false, alpha: a.scale, beta: 1,
            a: dProbs, aOffset: i * T * S, lda: S, strideA: 0,
            b: q.buf, bOffset: q.offset + b * q.batch + (h0 + i) * q.head, ldb: q.token, strideB: 0,
            c: a.dk, cOffset: b * S * Hkv * Dqk + g * Dqk, ldc: Hkv * Dqk, strideC: 0,
          });
        }
      }
    }
  });
}

// ---- losses ---------------------------------------------------------------------------------------

/** The per-row multiplier of rows [r0, r0+n): weights or ones. (n) */
function rowWeights(t: Temps, a: LossArgs, r0: number, n: number): DeviceBuffer {
  return a.weights ? t.slice(a.weights, r0, n) : t.filled(n, 1);
}

/**
 * Shared frame of the losses: for each chunk of rows, z = logits/τ and log q = log-softmax(z); `body`
 * returns the chunk's loss (n) and d loss/d z (n, V) before the weights; the frame applies weights
 * and 1/τ and writes loss and grad.
 */
function lossRows(be: BackendPrimitives, a: LossArgs, body: (t: Temps, r0: number, n: number, logq: DeviceBuffer) => { loss: DeviceBuffer; dz: DeviceBuffer }): void {
  const { rows, vocab: V } = a;
  const tau = a.temperature ?? 1;
  const step = chunkRows(V);
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    run(be, (t) => {
      const z = t.f32(n * V);
      be.copyStrided({ src: a.logits, srcOffset: r0 * V, srcStrides: [1], dst: z, dstStrides: [1], shape: [n * V] });
      if (tau !== 1) be.unary("scale", z, z, n * V, 1 / tau);
      const logq = logSoftmax(t, z, n, V);
      const { loss, dz } = body(t, r0, n, logq);
      const w = rowWeights(t, a, r0, n);
      const lossOut = r0 === 0 ? a.loss : t.f32(n);
      be.binary("mul", loss, [n], w, [n], lossOut, [n]);
      writeBack(be, lossOut, a.loss, r0, n);
      if (a.grad) {
        const wOverTau = t.f32(n);
        be.unary("scale", w, wOverTau, n, 1 / tau);
        const gradOut = r0 === 0 ? a.grad : t.f32(n * V);
        be.binary("mul", dz, [n, V], wOverTau, [n, 1], gradOut, [n, V]);
        writeBack(be, gradOut, a.grad, r0 * V, n * V);
      }
    });
  }
}

/** loss = −log q[label]; dz = q − onehot(label); rows whose label is negative give 0 and 0. */
function crossEntropy(be: BackendPrimitives, a: CrossEntropyArgs): void {
  const V = a.vocab;
  lossRows(be, a, (t, r0, n, logq) => {
    const hot = oneHot(t, idsAsF32(t, a.labels, r0, 1, n), iota(t, V), n, V);
    const prod = t.f32(n * V);
    be.binary("mul", hot, [n * V], logq, [n * V], prod, [n * V]);
    const loss = t.f32(n);
    be.reduceLastAxis("sum", prod, loss, n, V);
    be.unary("neg", loss, loss, n);
    // valid rows (n): a one-hot row sums to 1, an ignored one to 0.
    const valid = t.f32(n);
    be.reduceLastAxis("sum", hot, valid, n, V);
    const dz = t.f32(n * V);
    be.unary("exp", logq, dz, n * V);
    be.binary("mul", dz, [n, V], valid, [n, 1], dz, [n, V]);
    be.binary("sub", dz, [n * V], hot, [n * V], dz, [n * V]);
    return { loss, dz };
  });
}

/**
 * loss = Σ_j p_j (log p_j − log q_j); dz = (Σ_j p_j)·q − p. Dense teacher: p = softmax(teacher/τ).
 * Top-k: p and log p are scattered into dense rows with one-hot masks (zeros elsewhere, where
 * 0·(0 − log q) adds nothing), so the unnormalised top-k mass enters dz through Σ_j p_j.
 */
function klDiv(be: BackendPrimitives, a: KlDivArgs): void {
  const V = a.vocab;
  const tau = a.temperature ?? 1;
  lossRows(be, a, (t, r0, n, logq) => {
    const nv = n * V;
    let p: DeviceBuffer;
    let logp: DeviceBuffer;
    if (a.teacherLogits) {
      const zt = t.f32(nv);
      be.copyStrided({ src: a.teacherLogits, srcOffset: r0 * V, srcStrides: [1], dst: zt, dstStrides: [1], shape: [nv] });
      if (tau !== 1) be.unary("scale", zt, zt, nv, 1 / tau);
      logp = logSoftmax(t, zt, n, V);
      p = t.f32(nv);
      be.unary("exp", logp, p, nv);
    } else {
      const K = a.topK ?? 0;
      const positions = iota(t, V);
      p = t.filled(nv, 0);
      logp = t.filled(nv, 0);
      const column = t.f32(n);
      const hotScaled = t.f32(nv);
      for (let i = 0; i < K; i++) run(be, (inner) => {
        const hot = oneHot(inner, idsAsF32(inner, a.teacherIndices!, r0 * K + i, K, n), positions, n, V);
        be.copyStrided({ src: a.teacherLogprobs!, srcOffset: r0 * K + i, srcStrides: [K], dst: column, dstStrides: [1], shape: [n] });
        be.binary("mul", hot, [n, V], column, [n, 1], hotScaled, [n, V]);
        be.binary("add", logp, [nv], hotScaled, [nv], logp, [nv]);
        be.unary("exp", column, column, n);
        be.binary("mul", hot, [n, V], column, [n, 1], hotScaled, [n, V]);
        be.binary("add", p, [nv], hotScaled, [nv], p, [nv]);
      });
    }
    const term = t.f32(nv);
    be.binary("sub", logp, [nv], logq, [nv], term, [nv]);
    be.binary("mul", term, [nv], p, [nv], term, [nv]);
    const loss = t.f32(n);
    be.reduceLastAxis("sum", term, loss, n, V);
    const mass = t.f32(n);
    be.reduceLastAxis("sum", p, mass, n, V);
    const dz = t.f32(nv);
    be.unary("exp", logq, dz, nv);
    be.binary("mul", dz, [n, V], mass, [n, 1], dz, [n, V]);
    be.binary("sub", dz, [nv], p, [nv], dz, [nv]);
    return { loss, dz };
  });
}

// ---- completeBackend ------------------------------------------------------------------------------

type Composition<K extends FusedKernelName> = (be: BackendPrimitives, ...args: Parameters<FusedKernels[K]>) => void;

/** The composition of every fused kernel from primitives. */
export const COMPOSITIONS: { readonly [K in FusedKernelName]: Composition<K> } = {
  sumToShape,
  softmax,
  softmaxBackward,
  rmsNorm,
  rmsNormBackward,
  rope,
  attention,
  attentionBackward,
  swiglu,
  swigluBackward,
  embeddingBackward,
  crossEntropy,
  klDiv,
  adamw,
};

const completed = new WeakMap<TensorBackend, CompleteBackend>();
const COMPLETE = Symbol("ecomla.completeBackend");

/** The fused kernels a backend implements itself. */
export function nativeKernelsOf(backend: TensorBackend): FusedKernelName[] {
  const base = (backend as Partial<CompleteBackend>)[COMPLETE as never] ? (backend as CompleteBackend).base : backend;
  return FUSED_KERNELS.filter((k) => typeof base[k] === "function");
}

/**
 * Give a backend every fused kernel: its own where it has them (and `supports` agrees), else the
 * composition from its primitives. The result forwards everything else (extra methods and
 * properties) to the backend, counts composed calls in `memoryStats().composedCalls`, and is the
 * same object for the same backend (tensors compare backends by identity).
 */
export function completeBackend(backend: TensorBackend): CompleteBackend {
  if ((backend as unknown as Record<symbol, unknown>)[COMPLETE]) return backend as CompleteBackend;
  const cached = completed.get(backend);
  if (cached) return cached;
  for (const method of PRIMITIVE_METHODS) {
    if (typeof backend[method] !== "function") {
      throw new TypeError(`completeBackend: backend "${backend.name}" lacks the required primitive ${method}() (required: ${PRIMITIVE_METHODS.join(", ")})`);
    }
  }
  const nativeKernels = nativeKernelsOf(backend);
  const composedCalls: Partial<Record<FusedKernelName, number>> = {};
  const own: Record<PropertyKey, unknown> = {
    [COMPLETE]: true,
    base: backend,
    nativeKernels,
    composedKernels: FUSED_KERNELS.filter((k) => !nativeKernels.includes(k)),
    memoryStats: () => ({ ...backend.memoryStats(), composedCalls: { ...composedCalls } }),
  };
  for (const kernel of FUSED_KERNELS) {
    const compose = COMPOSITIONS[kernel] as (be: BackendPrimitives, ...args: unknown[]) => void;
    const composed = (...args: unknown[]): void => {
      composedCalls[kernel] = (composedCalls[kernel] ?? 0) + 1;
      compose(backend, ...args);
    };
    const fused = backend[kernel] as ((...args: unknown[]) => void) | undefined;
    if (!fused) own[kernel] = composed;
    else if (backend.supports) own[kernel] = (...args: unknown[]) => (backend.supports!(kernel, args) ? fused.apply(backend, args) : composed(...args));
    else own[kernel] = fused.bind(backend);
  }
  const result = new Proxy(own, {
    get(target, prop) {
      if (prop in target) return target[prop];
      const value = Reflect.get(backend, prop, backend);
      return typeof value === "function" ? value.bind(backend) : value;
    },
    has: (target, prop) => prop in target || prop in backend,
  }) as unknown as CompleteBackend;
  completed.set(backend, result);
  return result;
}

/**
 * The same backend with its fused kernels hidden: only the primitives remain, so completing it
 * runs every fused kernel as a composition (for testing the compositions on a backend's own primitives).
 */
export function primitivesOnly(backend: TensorBackend): TensorBackend {
  const base = (backend as unknown as Record<symbol, unknown>)[COMPLETE] ? (backend as CompleteBackend).base : backend;
  const out: Record<string, unknown> = { name: base.name, capabilities: base.capabilities };
  for (const method of PRIMITIVE_METHODS) out[method] = (base[method] as (...args: unknown[]) => unknown).bind(base);
  return out as unknown as TensorBackend;
}
