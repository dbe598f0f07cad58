// The chunked paths: every kernel must work on tensors larger than the device's storage-binding
// limit (128 MiB on lavapipe). A backend told the limit is tiny (maxStorageBindingBytes) splits
// small tensors the way it splits big ones on a real device, so these checks run in CI on small
// shapes: the conformance suite at small limits, then kernel calls that must take several
// dispatches, each against the reference backend.
import t from "tap";
import { ReferenceBackend, Rng, conformanceTap, type DType, type DeviceBuffer, type TensorBackend } from "@ecomla/core";
import { createWebGpuBackend, type WebGpuBackend } from "@ecomla/backend-webgpu";

/**
 * The conformance suite at the smallest limit each kernel's cases allow (one row of a row kernel,
 * one batch element of attention, the cos/sin rows of rope must fit one binding).
 */
const CONFORMANCE_LIMITS: [number, string[]][] = [
  [256, ["memory", "fill", "copyStrided", "cast", "gemm", "binary", "unary", "unaryBackward", "sumToShape", "swiglu", "swigluBackward", "adamw"]],
  [2048, ["embedding", "embeddingBackward"]],
  [4096, ["rope"]],
  [24576, ["reduceLastAxis", "softmax", "softmaxBackward", "rmsNorm", "rmsNormBackward", "crossEntropy", "klDiv", "attention", "attentionBackward"]],
];

const made: WebGpuBackend[] = [];
t.teardown(() => made.forEach((b) => b.destroy()));

async function limited(maxStorageBindingBytes: number): Promise<WebGpuBackend> {
  const backend = await createWebGpuBackend({ maxStorageBindingBytes });
  made.push(backend);
  return backend;
}

for (const [bytes, kernels] of CONFORMANCE_LIMITS) {
  t.test(`conformance with a ${bytes}-byte binding limit: ${kernels.join(", ")}`, async (t) => {
    // Only the native kernels' chunked paths are under test here; the compositions run in conformance.test.ts.
    await conformanceTap(t, () => limited(bytes), { kernels, composed: false });
  });
}

type Host = Float32Array | Int32Array | Uint16Array;

/** One kernel call: its buffers (uploaded to both backends), the outputs compared and their tolerance. */
interface Case {
  name: string;
  /** Binding limit of the WebGPU backend, bytes. */
  limit: number;
  /** Kernel calls `run` makes (the chunked backend must take more dispatches than that). */
  calls: number;
  buffers: Record<string, { dtype: DType; data: Host }>;
  /** Output name → allowed |Δ| ≤ tol + tol·|reference| (0: bit-exact). */
  check: Record<string, number>;
  run(be: TensorBackend, b: Record<string, DeviceBuffer>): void;
}

const rng = new Rng(7);
const f32 = (n: number, scale = 1): { dtype: DType; data: Float32Array } => ({ dtype: "f32", data: Float32Array.from({ length: n }, () => (rng.uniform() * 2 - 1) * scale) });
const zeros = (n: number): { dtype: DType; data: Float32Array } => ({ dtype: "f32", data: new Float32Array(n) });
const ints = (values: number[]): { dtype: DType; data: Int32Array } => ({ dtype: "i32", data: Int32Array.from(values) });

/** f32 tolerance of the fused and summing kernels (f32 on both sides, different summation orders). */
const F32_TOL = 2e-5;

const CASES: Case[] = [
  {
    name: "klDiv dense 37×29 temperature 1.5, weights, grad",
    limit: 512,
    calls: 1,
    buffers: { logits: f32(37 * 29, 4), teacher: f32(37 * 29, 4), weights: f32(37), loss: zeros(37), grad: zeros(37 * 29) },
    check: { loss: F32_TOL, grad: F32_TOL },
    run: (be, b) => be.klDiv({ logits: b.logits!, teacherLogits: b.teacher!, rows: 37, vocab: 29, temperature: 1.5, weights: b.weights!, loss: b.loss!, grad: b.grad! }),
  },
  {
    name: "klDiv top-5 23×31, grad aliasing the logits",
    limit: 512,
    calls: 1,
    buffers: {
      logits: f32(23 * 31, 3),
      indices: ints(Array.from({ length: 23 * 5 }, (_, i) => (i * 7 + Math.floor(i / 5)) % 31)),
      logprobs: { dtype: "f32", data: Float32Array.from({ length: 23 * 5 }, (_, i) => -1 - (i % 5) * 0.5) },
      loss: zeros(23),
    },
    check: { loss: F32_TOL, logits: F32_TOL },
    run: (be, b) => be.klDiv({ logits: b.logits!, teacherIndices: b.indices!, teacherLogprobs: b.logprobs!, topK: 5, rows: 23, vocab: 31, loss: b.loss!, grad: b.logits! }),
  },
  {
    name: "crossEntropy 41×19, ignored labels, weights, grad",
    limit: 256,
    calls: 1,
    buffers: { logits: f32(41 * 19, 5), labels: ints(Array.from({ length: 41 }, (_, i) => (i % 4 === 1 ? -100 : (i * 5) % 19))), weights: f32(41), loss: zeros(41), grad: zeros(41 * 19) },
    check: { loss: F32_TOL, grad: F32_TOL },
    run: (be, b) => be.crossEntropy({ logits: b.logits!, labels: b.labels!, rows: 41, vocab: 19, weights: b.weights!, loss: b.loss!, grad: b.grad! }),
  },
  {
    name: "softmax and softmaxBackward 33×21",
    limit: 256,
    calls: 2,
    buffers: { x: f32(33 * 21, 6), y: zeros(33 * 21), dy: f32(33 * 21), dx: zeros(33 * 21) },
    check: { y: F32_TOL, dx: F32_TOL },
    run: (be, b) => {
      be.softmax(b.x!, b.y!, 33, 21);
      be.softmaxBackward(b.y!, b.dy!, b.dx!, 33, 21);
    },
  },
  {
    name: "rmsNorm and rmsNormBackward 30×27 (dWeight accumulates)",
    limit: 256,
    calls: 2,
    buffers: { x: f32(30 * 27), w: f32(27), y: zeros(30 * 27), rstd: zeros(30), dy: f32(30 * 27), dx: zeros(30 * 27), dw: f32(27) },
    check: { y: F32_TOL, rstd: F32_TOL, dx: F32_TOL, dw: F32_TOL },
    run: (be, b) => {
      be.rmsNorm(b.x!, b.w!, b.y!, b.rstd!, 30, 27, 1e-5);
      be.rmsNormBackward(b.x!, b.w!, b.rstd!, b.dy!, b.dx!, b.dw!, 30, 27);
    },
  },
  {
    name: "reduceLastAxis max and sumsq 45×13",
    limit: 256,
    calls: 2,
    buffers: { x: f32(45 * 13), max: zeros(45), sumsq: zeros(45) },
    check: { max: 0, sumsq: F32_TOL },
    run: (be, b) => {
      be.reduceLastAxis("max", b.x!, b.max!, 45, 13);
      be.reduceLastAxis("sumsq", b.x!, b.sumsq!, 45, 13);
    },
  },
  {
    name: "gemm batch 3, 37×29×41, A transposed, offsets, alpha 0.7 beta 0.3",
    limit: 512,
    calls: 1,
    buffers: { a: f32(5 + 3 * 41 * 37), b: f32(2 + 3 * 41 * 29), c: f32(3 + 3 * 37 * 29) },
    check: { c: F32_TOL },
    run: (be, b) =>
      be.gemm({
        batch: 3, m: 37, n: 29, k: 41, transA: true, transB: false, alpha: 0.7, beta: 0.3,
        a: b.a!, aOffset: 5, lda: 37, strideA: 41 * 37, b: b.b!, bOffset: 2, ldb: 29, strideB: 41 * 29, c: b.c!, cOffset: 3, ldc: 29, strideC: 37 * 29,
      }),
  },
  {
    name: "gemm 40×44×36, B transposed, shared B (stride 0), vec4 loads",
    limit: 512,
    calls: 1,
    buffers: { a: f32(2 * 40 * 36), b: f32(44 * 36), c: zeros(2 * 40 * 44) },
    check: { c: F32_TOL },
    run: (be, b) =>
      be.gemm({ batch: 2, m: 40, n: 44, k: 36, transA: false, transB: true, alpha: 1, beta: 0, a: b.a!, lda: 36, strideA: 40 * 36, b: b.b!, ldb: 36, strideB: 0, c: b.c!, ldc: 44, strideC: 40 * 44 }),
  },
  {
    name: "binary add broadcast (13,1,17) + (1,11,17)",
    limit: 256,
    calls: 1,
    buffers: { a: f32(13 * 17), b: f32(11 * 17), out: zeros(13 * 11 * 17) },
    check: { out: 0 },
    run: (be, b) => be.binary("add", b.a!, [13, 1, 17], b.b!, [1, 11, 17], b.out!, [13, 11, 17]),
  },
  {
    name: "sumToShape (9,14,6) → (14,1) and → (9,1,6)",
    limit: 256,
    calls: 2,
    buffers: { x: f32(9 * 14 * 6), mid: zeros(14), outer: zeros(9 * 6) },
    check: { mid: F32_TOL, outer: F32_TOL },
    run: (be, b) => {
      be.sumToShape(b.x!, [9, 14, 6], b.mid!, [14, 1]);
      be.sumToShape(b.x!, [9, 14, 6], b.outer!, [9, 1, 6]);
    },
  },
  {
    name: "unary exp in place and adamw, 1000 elements",
    limit: 256,
    calls: 2,
    buffers: { x: f32(1000), p: f32(1000), g: f32(1000), m: f32(1000, 0.1), v: { dtype: "f32", data: Float32Array.from({ length: 1000 }, (_, i) => 0.01 + (i % 7) * 0.001) } },
    check: { x: F32_TOL, p: F32_TOL, m: F32_TOL, v: F32_TOL },
    run: (be, b) => {
      be.unary("exp", b.x!, b.x!, 1000);
      be.adamw({ param: b.p!, grad: b.g!, m: b.m!, v: b.v!, n: 1000, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, biasCorrection1: 0.19, biasCorrection2: 0.002 });
    },
  },
  {
    name: "cast f32 → bf16 (301 elements), bf16 strided transpose, fill f16 from an odd offset",
    limit: 256,
    calls: 3,
    buffers: { x: f32(301, 100), h: { dtype: "bf16", data: new Uint16Array(301) }, ht: { dtype: "bf16", data: new Uint16Array(300) }, f: { dtype: "f16", data: new Uint16Array(400) } },
    check: { h: 0, ht: 0, f: 0 },
    run: (be, b) => {
      be.cast(b.x!, b.h!, 301);
      be.copyStrided({ src: b.h!, srcOffset: 1, srcStrides: [1, 20], dst: b.ht!, dstStrides: [15, 1], shape: [20, 15] });
      be.fill(b.f!, 1.5, 333, 7);
    },
  },
  {
    name: "embedding and embeddingBackward, vocab 50 × dim 7, 40 tokens with repeated ids",
    limit: 256,
    calls: 2,
    buffers: {
      ids: ints(Array.from({ length: 40 }, (_, i) => ((i * 13) % 23) + (i % 3) * 9)),
      table: f32(50 * 7),
      out: f32(40 * 7),
      dOut: f32(40 * 7),
      dTable: f32(50 * 7),
    },
    check: { out: 0, dTable: F32_TOL },
    run: (be, b) => {
      be.embedding(b.ids!, b.table!, b.out!, 40, 50, 7);
      be.embeddingBackward(b.ids!, b.dOut!, b.dTable!, 40, 50, 7);
    },
  },
  {
    name: "rope half with positions B=3 T=11 H=2 D=8, interleaved in place with posOffset",
    limit: 512,
    calls: 2,
    buffers: {
      x: f32(3 * 11 * 2 * 8),
      y: zeros(3 * 11 * 2 * 8),
      z: f32(3 * 11 * 2 * 8),
      cos: { dtype: "f32", data: Float32Array.from({ length: 16 * 4 }, (_, i) => Math.cos(i * 0.37)) },
      sin: { dtype: "f32", data: Float32Array.from({ length: 16 * 4 }, (_, i) => Math.sin(i * 0.37)) },
      positions: ints(Array.from({ length: 33 }, (_, i) => (i * 5) % 16)),
    },
    check: { y: F32_TOL, z: F32_TOL },
    run: (be, b) => {
      be.rope({ x: b.x!, out: b.y!, cos: b.cos!, sin: b.sin!, positions: b.positions!, batch: 3, seqLen: 11, numHeads: 2, headDim: 8, layout: "half" });
      be.rope({ x: b.z!, out: b.z!, cos: b.cos!, sin: b.sin!, posOffset: 4, batch: 3, seqLen: 11, numHeads: 2, headDim: 8, layout: "interleaved", inverse: true });
    },
  },
  {
    name: "attention forward and backward B=5 T=S=6 Hq=4 Hkv=2 D=8 causal (one batch element per dispatch)",
    limit: 1024,
    calls: 2,
    buffers: {
      q: f32(5 * 6 * 4 * 8), k: f32(5 * 6 * 2 * 8), v: f32(5 * 6 * 2 * 8), out: zeros(5 * 6 * 4 * 8), lse: zeros(5 * 4 * 6),
      dOut: f32(5 * 6 * 4 * 8), dq: zeros(5 * 6 * 4 * 8), dk: zeros(5 * 6 * 2 * 8), dv: zeros(5 * 6 * 2 * 8),
    },
    check: { out: F32_TOL, lse: F32_TOL, dq: F32_TOL, dk: F32_TOL, dv: F32_TOL },
    run: (be, b) => {
      const shape = { batch: 5, queryLen: 6, keyLen: 6, numHeads: 4, numKvHeads: 2, qkDim: 8, vDim: 8, scale: 0.35, causal: true, q: { buf: b.q! }, k: { buf: b.k! }, v: { buf: b.v! } };
      be.attention({ ...shape, out: b.out!, lse: b.lse! });
      be.attentionBackward({ ...shape, out: b.out!, lse: b.lse!, dOut: b.dOut!, dq: b.dq!, dk: b.dk!, dv: b.dv! });
    },
  },
];

/** Upload the case's buffers to `be`, run it, and download the checked outputs. */
async function runCase(be: TensorBackend, c: Case): Promise<Record<string, Host>> {
  const bufs: Record<string, DeviceBuffer> = {};
  for (const [name, { dtype, data }] of Object.entries(c.buffers)) {
    bufs[name] = be.alloc(dtype, data.length);
    be.upload(bufs[name]!, data);
  }
  c.run(be, bufs);
  const out: Record<string, Host> = {};
  for (const name of Object.keys(c.check)) out[name] = (await be.download(bufs[name]! as DeviceBuffer & { dtype: DType })) as Host;
  for (const buf of Object.values(bufs)) be.free(buf);
  return out;
}

const reference = new ReferenceBackend();
const backends = new Map<number, WebGpuBackend>();

for (const c of CASES) {
  t.test(`${c.name}, ${c.limit}-byte binding limit`, async (t) => {
    let be = backends.get(c.limit);
    if (!be) backends.set(c.limit, (be = await limited(c.limit)));
    const want = await runCase(reference, c);
    const before = be.counters().dispatches;
    const got = await runCase(be, c);
    const dispatches = be.counters().dispatches - before;
    t.ok(dispatches > c.calls, `split into ${dispatches} dispatches for ${c.calls} kernel call(s)`);
    for (const [name, tol] of Object.entries(c.check)) {
      const g = got[name]!;
      const w = want[name]!;
      t.equal(g.length, w.length, `${name}: length`);
      let worst = 0;
      let bad = -1;
      for (let i = 0; i < w.length; i++) {
        const diff = Math.abs(g[i]! - w[i]!);
        const ok = tol === 0 ? g[i] === w[i] || (Number.isNaN(g[i]) && Number.isNaN(w[i])) : diff <= tol + tol * Math.abs(w[i]!);
        if (!ok && bad < 0) bad = i;
        worst = Math.max(worst, diff);
      }
      t.ok(bad < 0, `${name} matches the reference backend (${tol === 0 ? "bit-exact" : `|Δ| ≤ ${tol}·(1 + |ref|)`}; max |Δ| ${worst.toExponential(2)})`, bad < 0 ? {} : { index: bad, got: g[bad], want: w[bad] });
    }
  });
}
