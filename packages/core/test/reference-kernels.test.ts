// Reference backend kernels against hand-computed closed forms.
import t from "tap";
import { ReferenceBackend, type DeviceBuffer } from "@ecomla/core";

const be = new ReferenceBackend({ precision: "f64" });

/** The part of tap's test object the helpers use. */
type Asserts = Pick<typeof t, "ok">;

function f32(values: readonly number[]): DeviceBuffer {
  const buf = be.alloc("f32", values.length);
  be.writeF64(buf, Float64Array.from(values));
  return buf;
}

function i32(values: readonly number[]): DeviceBuffer {
  const buf = be.alloc("i32", values.length);
  be.upload(buf, Int32Array.from(values));
  return buf;
}

function read(buf: DeviceBuffer): number[] {
  return Array.from(be.readF64(buf));
}

/** Asserts |actual − expected| ≤ tol elementwise, reporting the worst difference. */
function close(t: Asserts, actual: readonly number[], expected: readonly number[], tol: number, what: string): void {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isNaN(expected[i]!)) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  }
  const sameNaN = actual.every((v, i) => Number.isNaN(v) === Number.isNaN(expected[i]!));
  t.ok(actual.length === expected.length && worst <= tol && sameNaN, `${what} (max diff ${worst.toExponential(2)})`, { actual, expected });
}

const gemmBase = { batch: 1, transA: false, transB: false, alpha: 1, beta: 0, strideA: 0, strideB: 0, strideC: 0 };

t.test("gemm: a 2×3 · 3×2 product by hand, transposes, alpha/beta, padding", async (t) => {
  const a = f32([1, 2, 3, 4, 5, 6]); // (2, 3)
  const b = f32([7, 8, 9, 10, 11, 12]); // (3, 2)
  const c = f32([NaN, NaN, NaN, NaN]);
  be.gemm({ ...gemmBase, m: 2, n: 2, k: 3, a, lda: 3, b, ldb: 2, c, ldc: 2 });
  t.same(read(c), [58, 64, 139, 154], "beta 0 ignores NaN already in C");
  const aT = f32([1, 4, 2, 5, 3, 6]); // Aᵀ stored (3, 2)
  const bT = f32([7, 9, 11, 8, 10, 12]); // Bᵀ stored (2, 3)
  be.fill(c, 1, 4);
  be.gemm({ ...gemmBase, m: 2, n: 2, k: 3, transA: true, transB: true, alpha: 2, beta: 0.5, a: aT, lda: 2, b: bT, ldb: 3, c, ldc: 2 });
  t.same(read(c), [116.5, 128.5, 278.5, 308.5], "C = 2·AᵀᵀBᵀᵀ + 0.5·C");
  // A padded to row stride 4 at offset 1, C padded to row stride 3.
  const aPadded = f32([99, 1, 2, 3, 99, 4, 5, 6, 99]);
  const cPadded = f32([0, 0, -1, 0, 0, -1]);
  be.gemm({ ...gemmBase, m: 2, n: 2, k: 3, a: aPadded, aOffset: 1, lda: 4, b, ldb: 2, c: cPadded, ldc: 3 });
  t.same(read(cPadded), [58, 64, -1, 139, 154, -1], "leading dimensions and offsets; padding untouched");
});

t.test("gemm: batched with a broadcast (stride 0) operand", async (t) => {
  const a = f32([1, 0, 0, 1, 2, 0, 0, 2]); // two (2, 2): I and 2I
  const b = f32([1, 2, 3, 4]); // one (2, 2), broadcast
  const c = be.alloc("f32", 8);
  be.gemm({ ...gemmBase, batch: 2, m: 2, n: 2, k: 2, a, lda: 2, strideA: 4, b, ldb: 2, strideB: 0, c, ldc: 2, strideC: 4 });
  t.same(read(c), [1, 2, 3, 4, 2, 4, 6, 8]);
  const empty = be.alloc("f32", 4);
  be.fill(empty, 3, 4);
  be.gemm({ ...gemmBase, m: 2, n: 2, k: 0, beta: 2, a, lda: 1, b, ldb: 2, c: empty, ldc: 2 });
  t.same(read(empty), [6, 6, 6, 6], "k = 0 leaves beta·C");
});

t.test("binary broadcasting, unary closed forms, reductions", async (t) => {
  const a = f32([1, 2, 3, 4, 5, 6]); // (2, 3)
  const out = be.alloc("f32", 6);
  be.binary("add", a, [2, 3], f32([10, 20, 30]), [3], out, [2, 3]);
  t.same(read(out), [11, 22, 33, 14, 25, 36], "(2,3) + (3)");
  be.binary("mul", a, [2, 3], f32([2, -1]), [2, 1], out, [2, 3]);
  t.same(read(out), [2, 4, 6, -4, -5, -6], "(2,3) · (2,1)");
  be.binary("sub", f32([1, 2]), [2, 1], f32([1, 2, 3]), [1, 3], out, [2, 3]);
  t.same(read(out), [0, -1, -2, 1, 0, -1], "(2,1) − (1,3) outer");
  be.binary("pow", a, [2, 3], f32([2]), [], out, [2, 3]);
  t.same(read(out), [1, 4, 9, 16, 25, 36], "scalar (rank 0) operand");
  be.binary("max", a, [6], f32([3, 3, 3, NaN, 3, 3]), [6], out, [6]);
  close(t, read(out), [3, 3, 3, NaN, 5, 6], 0, "max propagates NaN");
  be.binary("div", a, [6], a, [6], a, [6]);
  t.same(read(a), [1, 1, 1, 1, 1, 1], "in place (out aliases both inputs)");

  const x = f32([0, 1, -1, 2]);
  const y = be.alloc("f32", 4);
  be.unary("gelu", x, y, 4);
  // 0.5·x·(1 + erf(x/√2)) = x·Φ(x), Φ(1) = 0.8413447460685429, Φ(2) = 0.9772498680518208.
  close(t, read(y), [0, 0.8413447460685429, -(1 - 0.8413447460685429), 2 * 0.9772498680518208], 1e-15, "exact-erf GELU");
  be.unary("sigmoid", x, y, 4);
  close(t, read(y), [0.5, 1 / (1 + Math.exp(-1)), 1 / (1 + Math.E), 1 / (1 + Math.exp(-2))], 1e-16, "sigmoid");
  be.unary("silu", f32([-800, 800]), y, 2);
  close(t, read(y).slice(0, 2), [0, 800], 0, "silu saturates without overflow");
  be.unary("powScalar", f32([4, 9]), y, 2, 0.5);
  close(t, read(y).slice(0, 2), [2, 3], 0, "powScalar");
  be.unary("rsqrt", f32([4, 0.25]), y, 2);
  close(t, read(y).slice(0, 2), [0.5, 2], 0, "rsqrt");

  const m = f32([1, -2, 3, -4, 5, 6]); // (2, 3)
  const r = be.alloc("f32", 2);
  const expect = { sum: [2, 7], max: [3, 6], mean: [2 / 3, 7 / 3], sumsq: [14, 77] } as const;
  for (const op of ["sum", "max", "mean", "sumsq"] as const) {
    be.reduceLastAxis(op, m, r, 2, 3);
    close(t, read(r), expect[op], 1e-15, `reduceLastAxis ${op}`);
  }
  const s = be.alloc("f32", 3);
  be.sumToShape(m, [2, 3], s, [3]);
  t.same(read(s), [-3, 3, 9], "(2,3) → (3)");
  be.sumToShape(m, [2, 3], s, [2, 1]);
  t.same(read(s).slice(0, 2), [2, 7], "(2,3) → (2,1)");
  be.sumToShape(m, [2, 3], s, []);
  t.equal(read(s)[0], 9, "(2,3) → scalar");
});

t.test("fill and copyStrided: transpose, broadcast, accumulate, other dtypes", async (t) => {
  const src = f32([1, 2, 3, 4, 5, 6]); // (2, 3)
  const dst = be.alloc("f32", 6);
  be.copyStrided({ src, srcStrides: [1, 3], dst, dstStrides: [2, 1], shape: [3, 2] });
  t.same(read(dst), [1, 4, 2, 5, 3, 6], "transpose (2,3) → (3,2)");
  be.copyStrided({ src, srcOffset: 3, srcStrides: [0, 1], dst, dstStrides: [3, 1], shape: [2, 3], accumulate: true });
  t.same(read(dst), [5, 9, 8, 9, 8, 12], "broadcast a row with stride 0, accumulated");
  be.fill(dst, 7, 2, 4);
  t.same(read(dst), [5, 9, 8, 9, 7, 7], "fill a sub-range");
  const ids = i32([1, 2, 3]);
  const idsOut = be.alloc("i32", 3);
  be.copyStrided({ src: ids, srcOffset: 2, srcStrides: [-1], dst: idsOut, dstStrides: [1], shape: [3] });
  t.same(read(idsOut), [3, 2, 1], "negative stride reverses (i32)");
  const bf = be.alloc("bf16", 2);
  be.writeF64(bf, [1, 256]);
  be.copyStrided({ src: bf, srcStrides: [1], dst: bf, dstStrides: [1], shape: [2], accumulate: true });
  t.same(read(bf), [2, 512], "bf16 accumulation adds values, not bits");
  const six = be.alloc("f32", 6);
  be.copyStrided({ src: f32([1, 2]), srcStrides: [0, 0, 0, 0, 0, 1], dst: six, dstStrides: [0, 0, 0, 0, 0, 1], shape: [1, 1, 1, 1, 1, 2] });
  t.same(read(six).slice(0, 2), [1, 2], "rank 6");
});

t.test("softmax, RMSNorm, SwiGLU", async (t) => {
  const x = f32([0, Math.log(2), Math.log(3), 1000, 1000, 1000]);
  const y = be.alloc("f32", 6);
  be.softmax(x, y, 2, 3);
  close(t, read(y), [1 / 6, 2 / 6, 3 / 6, 1 / 3, 1 / 3, 1 / 3], 1e-15, "softmax of [0, ln 2, ln 3]; large logits stay finite");
  be.softmax(x, x, 2, 3);
  close(t, read(x), read(y), 0, "in place");

  const v = f32([3, 4, 1, 1]);
  const out = be.alloc("f32", 4);
  const rstd = be.alloc("f32", 2);
  be.rmsNorm(v, f32([1, 2]), out, rstd, 2, 2, 0);
  const inv = 1 / Math.sqrt(12.5);
  close(t, read(out), [3 * inv, 8 * inv, 1, 2], 1e-15, "RMSNorm of [3, 4] (mean square 12.5) and [1, 1]");
  close(t, read(rstd), [inv, 1], 1e-15, "rstd");
  be.rmsNorm(f32([0, 0]), f32([1, 1]), out, rstd, 1, 2, 0.25);
  close(t, read(rstd).slice(0, 1), [2], 0, "eps inside the square root");

  const sw = be.alloc("f32", 2);
  be.swiglu(f32([0, 1]), f32([5, 2]), sw, 2);
  close(t, read(sw), [0, 2 / (1 + Math.exp(-1))], 1e-16, "silu(gate)·up");
});

t.test("RoPE: a 90° turn at the right position, both layouts, inverse", async (t) => {
  // Table rows: position 0 → angle 0, position 1 → 90°, position 2 → 180° (one frequency pair per row, D = 2).
  const cos2 = f32([1, 0, -1]);
  const sin2 = f32([0, 1, 0]);
  const x = f32([1, 0, 1, 0]); // (B=1, T=2, H=1, D=2)
  const y = be.alloc("f32", 4);
  be.rope({ x, out: y, batch: 1, seqLen: 2, numHeads: 1, headDim: 2, layout: "interleaved", cos: cos2, sin: sin2 });
  close(t, read(y), [1, 0, 0, 1], 1e-16, "(1,0) stays at position 0 and turns into (0,1) at position 1");
  be.rope({ x, out: y, batch: 1, seqLen: 2, numHeads: 1, headDim: 2, layout: "interleaved", cos: cos2, sin: sin2, posOffset: 1, scale: 2 });
  close(t, read(y), [0, 2, -2, 0], 1e-16, "posOffset shifts the rows; scale multiplies");
  be.rope({ x: y, out: y, batch: 1, seqLen: 2, numHeads: 1, headDim: 2, layout: "interleaved", cos: cos2, sin: sin2, posOffset: 1, inverse: true });
  close(t, read(y), [2, 0, 2, 0], 1e-16, "inverse undoes the turn (in place)");

  // D = 4: pair 0 at 90°, pair 1 at 0° (cos/sin rows of width D/2 = 2).
  const cos4 = f32([0, 1]);
  const sin4 = f32([1, 0]);
  const v = f32([1, 2, 3, 4]);
  const w = be.alloc("f32", 4);
  be.rope({ x: v, out: w, batch: 1, seqLen: 1, numHeads: 1, headDim: 4, layout: "half", cos: cos4, sin: sin4 });
  close(t, read(w), [-3, 2, 1, 4], 1e-16, "half layout pairs (x0, x2) and (x1, x3)");
  be.rope({ x: v, out: w, batch: 1, seqLen: 1, numHeads: 1, headDim: 4, layout: "interleaved", cos: cos4, sin: sin4 });
  close(t, read(w), [-2, 1, 3, 4], 1e-16, "interleaved layout pairs (x0, x1) and (x2, x3)");
  const z = be.alloc("f32", 4);
  be.rope({ x, out: z, batch: 2, seqLen: 1, numHeads: 1, headDim: 2, layout: "interleaved", cos: cos2, sin: sin2, positions: i32([2, 1]) });
  close(t, read(z), [-1, 0, 0, 1], 1e-16, "explicit positions per (batch, token)");
});

t.test("attention: one key returns v; causal offset; lse; GQA; strided views", async (t) => {
  const base = { batch: 1, numHeads: 1, numKvHeads: 1, qkDim: 2, vDim: 3, scale: 1 };
  const out = be.alloc("f32", 6);
  const lse = be.alloc("f32", 2);
  be.attention({ ...base, queryLen: 2, keyLen: 1, causal: false, q: { buf: f32([1, 2, -3, 4]) }, k: { buf: f32([5, 6]) }, v: { buf: f32([7, 8, 9]) }, out, lse });
  t.same(read(out), [7, 8, 9, 7, 8, 9], "a single key gives v whatever the scores");
  close(t, read(lse), [17, 9], 1e-13, "lse of a single score is the score");

  // Two queries, two keys, causal: query 0 sees key 0 only; query 1 sees both with scores 0 and ln 3.
  const q = f32([0, 0, Math.log(3), 0]);
  const k = f32([0, 0, 1, 0]);
  const v = f32([1, 0, 0, 0, 1, 0]);
  be.attention({ ...base, queryLen: 2, keyLen: 2, causal: true, q: { buf: q }, k: { buf: k }, v: { buf: v }, out, lse });
  close(t, read(out), [1, 0, 0, 0.25, 0.75, 0], 1e-15, "causal rows");
  close(t, read(lse), [0, Math.log(4)], 1e-15, "lse");
  // One query against those two keys: as the last position it sees both.
  const out1 = be.alloc("f32", 3);
  be.attention({ ...base, queryLen: 1, keyLen: 2, causal: true, q: { buf: q, offset: 2 }, k: { buf: k }, v: { buf: v }, out: out1 });
  close(t, read(out1), [0.25, 0.75, 0], 1e-15, "with S > T the queries are the last positions");

  // GQA: 2 query heads share 1 kv head; q packed with k and v in one (token, 2+1+1 heads) buffer.
  const packed = f32([
    /* t0: q h0 */ 0, 0, /* q h1 */ 0, 0, /* k */ 0, 0, /* v (qkDim 2) */ 1, 0,
    /* t1: q h0 */ Math.log(3), 0, /* q h1 */ -Math.log(3), 0, /* k */ 1, 0, /* v */ 0, 1,
  ]);
  const gqaOut = be.alloc("f32", 8);
  be.attention({
    batch: 1, queryLen: 2, keyLen: 2, numHeads: 2, numKvHeads: 1, qkDim: 2, vDim: 2, scale: 1, causal: false,
    q: { buf: packed, strides: [16, 8, 2] },
    k: { buf: packed, offset: 4, strides: [16, 8, 2] },
    v: { buf: packed, offset: 6, strides: [16, 8, 2] },
    out: gqaOut,
  });
  close(t, read(gqaOut), [0.5, 0.5, 0.5, 0.5, 0.25, 0.75, 0.75, 0.25], 1e-15, "both query heads read the shared kv head through strided views");
});

t.test("embedding gather and scatter-add", async (t) => {
  const table = f32([0, 1, 10, 11, 20, 21]); // (3, 2)
  const ids = i32([2, 0, 2]);
  const out = be.alloc("f32", 6);
  be.embedding(ids, table, out, 3, 3, 2);
  t.same(read(out), [20, 21, 0, 1, 20, 21]);
  const dTable = f32([1, 1, 1, 1, 1, 1]);
  be.embeddingBackward(ids, f32([1, 2, 3, 4, 5, 6]), dTable, 3, 3, 2);
  t.same(read(dTable), [4, 5, 1, 1, 7, 9], "repeated ids add up; dTable accumulates");
});

t.test("cross-entropy and KL closed forms", async (t) => {
  const vocab = 5;
  const logits = f32(new Array(2 * vocab).fill(0.3));
  const loss = be.alloc("f32", 2);
  const grad = be.alloc("f32", 2 * vocab);
  be.crossEntropy({ logits, rows: 2, vocab, labels: i32([3, -1]), loss, grad });
  close(t, read(loss), [Math.log(vocab), 0], 1e-15, "uniform logits give ln V; a negative label gives 0");
  close(t, read(grad), [0.2, 0.2, 0.2, -0.8, 0.2, 0, 0, 0, 0, 0], 1e-15, "grad = softmax − onehot; ignored row is 0");
  be.crossEntropy({ logits, rows: 1, vocab, labels: i32([0]), loss, grad: logits, temperature: 2, weights: f32([3]) });
  close(t, read(logits).slice(0, vocab), [-1.2, 0.3, 0.3, 0.3, 0.3], 1e-15, "grad aliasing logits, ·weight/τ");

  const teacher = f32([0, Math.log(3)]);
  const student = f32([0, 0]);
  const kl = be.alloc("f32", 1);
  const klGrad = be.alloc("f32", 2);
  be.klDiv({ logits: student, rows: 1, vocab: 2, teacherLogits: teacher, loss: kl, grad: klGrad });
  close(t, read(kl), [0.25 * Math.log(0.5) + 0.75 * Math.log(1.5)], 1e-15, "KL([1/4, 3/4] ‖ [1/2, 1/2])");
  close(t, read(klGrad), [0.25, -0.25], 1e-15, "grad = q − p");
  be.klDiv({ logits: teacher, rows: 1, vocab: 2, teacherLogits: teacher, loss: kl, grad: klGrad, temperature: 3 });
  close(t, read(kl).concat(read(klGrad)), [0, 0, 0], 1e-15, "identical distributions give 0 loss and 0 grad");
  // Top-k with all V entries given is the dense form (teacher log-probs at τ = 1).
  be.klDiv({ logits: student, rows: 1, vocab: 2, teacherIndices: i32([1, 0]), teacherLogprobs: f32([Math.log(0.75), Math.log(0.25)]), topK: 2, loss: kl, grad: klGrad });
  close(t, read(kl).concat(read(klGrad)), [0.25 * Math.log(0.5) + 0.75 * Math.log(1.5), 0.25, -0.25], 1e-15, "top-k with k = V matches dense");
  // One unnormalised entry: loss = p·(log p − log q_j), grad_j = q_j·p − p.
  be.klDiv({ logits: student, rows: 1, vocab: 2, teacherIndices: i32([1]), teacherLogprobs: f32([Math.log(0.5)]), topK: 1, loss: kl, grad: klGrad, weights: f32([2]) });
  close(t, read(kl).concat(read(klGrad)), [0, 0.5, -0.5], 1e-15, "top-k 1 entry, weighted");
});

t.test("AdamW first step moves each parameter by ≈ lr·sign(g) plus decay", async (t) => {
  const param = f32([1, -2, 0.5]);
  const m = f32([0, 0, 0]);
  const v = f32([0, 0, 0]);
  const lr = 0.01;
  const wd = 0.1;
  be.adamw({ param, grad: f32([0.3, -4, 0]), m, v, n: 3, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd, biasCorrection1: 0.1, biasCorrection2: 0.001 });
  const eps = 1e-8;
  close(t, read(param), [1 - lr * wd - lr * (0.3 / (0.3 + eps)), -2 + 2 * lr * wd + lr * (4 / (4 + eps)), 0.5 - 0.5 * lr * wd], 1e-15, "p − lr·wd·p − lr·g/(|g|+eps)");
  close(t, read(m), [0.03, -0.4, 0], 1e-15, "m = (1−β1)·g");
  close(t, read(v), [0.001 * 0.09, 0.001 * 16, 0], 1e-15, "v = (1−β2)·g²");
  be.adamw({ param, grad: f32([1, 1, 1]), m, v, n: 3, lr: 0, beta1: 0.5, beta2: 0.5, eps: 1e-8, weightDecay: 0, biasCorrection1: 1, biasCorrection2: 1, gradScale: 0.5 });
  close(t, read(m), [0.015 + 0.25, -0.2 + 0.25, 0.25], 1e-15, "gradScale multiplies the gradient");
});
