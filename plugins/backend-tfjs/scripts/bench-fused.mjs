// Times each fused kernel the tfjs backend implements against core's composition of its own
// primitives, in the same process, on model-like shapes: the evidence for claiming it natively.
// Run: node plugins/backend-tfjs/scripts/bench-fused.mjs (after a build; ECOMLA_TFJS_BACKEND picks the tfjs backend).
import { completeBackend, primitivesOnly } from "@ecomla/core";
import { createTfjsBackend } from "@ecomla/backend-tfjs";

const backend = await createTfjsBackend();
const native = completeBackend(backend);
const composed = completeBackend(primitivesOnly(backend));
const repeats = Number(process.env.REPEATS ?? 5);

function buf(n, lo = -1, hi = 1) {
  const b = backend.alloc("f32", n);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * Math.random();
  backend.upload(b, data);
  return b;
}

/** Median ms of native and composed calls, alternated so both see the same machine load. */
async function timePair(call) {
  const ms = { native: [], composed: [] };
  for (let r = -1; r < repeats; r++) {
    for (const [name, be] of [["native", native], ["composed", composed]]) {
      const t0 = performance.now();
      call(be);
      await be.sync();
      if (r >= 0) ms[name].push(performance.now() - t0);
    }
  }
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return [median(ms.native), median(ms.composed)];
}

const rows = 2048, cols = 1024, n = 2048 * 2816;
const x = buf(rows * cols), y = buf(rows * cols), dy = buf(rows * cols), out = buf(rows * cols), w = buf(cols), rstd = buf(rows), dw = buf(cols);
const g = buf(n), u = buf(n), o = buf(n), p = buf(n), m = buf(n), v = buf(n, 0, 1);
const lossRows = 512, vocab = 32000, topK = 32;
const logits = buf(lossRows * vocab, -5, 5), teacher = buf(lossRows * vocab, -5, 5), grad = buf(lossRows * vocab), loss = buf(lossRows), weights = buf(lossRows, 0, 1);
const labels = backend.alloc("i32", lossRows);
backend.upload(labels, Int32Array.from({ length: lossRows }, () => Math.floor(Math.random() * vocab)));
const topIds = backend.alloc("i32", lossRows * topK);
backend.upload(topIds, Int32Array.from({ length: lossRows * topK }, () => Math.floor(Math.random() * vocab)));
const topLogprobs = buf(lossRows * topK, -8, -1);
const lossArgs = { logits, rows: lossRows, vocab, temperature: 2, weights, loss, grad };
// The bench kernels' attention: batch 4, 512 tokens, 8 query heads over 2 key/value heads, dim 64, causal.
const [B, T, Hq, Hkv, D] = [4, 512, 8, 2, 64];
const att = { batch: B, queryLen: T, keyLen: T, numHeads: Hq, numKvHeads: Hkv, qkDim: D, vDim: D, scale: 1 / Math.sqrt(D), causal: true, q: { buf: buf(B * T * Hq * D) }, k: { buf: buf(B * T * Hkv * D) }, v: { buf: buf(B * T * Hkv * D) } };
const attOut = buf(B * T * Hq * D), lse = buf(B * Hq * T), dOut = buf(B * T * Hq * D), dq = buf(B * T * Hq * D), dk = buf(B * T * Hkv * D), dv = buf(B * T * Hkv * D);
native.attention({ ...att, out: attOut, lse });
const ropeX = buf(B * T * Hq * D), ropeOut = buf(B * T * Hq * D), cos = buf(T * (D / 2)), sin = buf(T * (D / 2));
const [embN, embVocab, embDim] = [2048, 4096, 256];
const embIds = backend.alloc("i32", embN);
backend.upload(embIds, Int32Array.from({ length: embN }, () => Math.floor(Math.random() * embVocab)));
const embDOut = buf(embN * embDim), embTable = buf(embVocab * embDim);
const cases = {
  rope: (be) => be.rope({ x: ropeX, out: ropeOut, batch: B, seqLen: T, numHeads: Hq, headDim: D, layout: "half", cos, sin }),
  embeddingBackward: (be) => be.embeddingBackward(embIds, embDOut, embTable, embN, embVocab, embDim),
  attention: (be) => be.attention({ ...att, out: attOut, lse }),
  attentionBackward: (be) => be.attentionBackward({ ...att, out: attOut, lse, dOut, dq, dk, dv }),
  crossEntropy: (be) => be.crossEntropy({ ...lossArgs, labels }),
  "klDiv dense": (be) => be.klDiv({ ...lossArgs, teacherLogits: teacher }),
  "klDiv top-k": (be) => be.klDiv({ ...lossArgs, teacherIndices: topIds, teacherLogprobs: topLogprobs, topK }),
  sumToShape: (be) => be.sumToShape(x, [rows, cols], w, [cols]),
  softmax: (be) => be.softmax(x, out, rows, cols),
  softmaxBackward: (be) => be.softmaxBackward(y, dy, out, rows, cols),
  rmsNorm: (be) => be.rmsNorm(x, w, out, rstd, rows, cols, 1e-5),
  rmsNormBackward: (be) => be.rmsNormBackward(x, w, rstd, dy, out, dw, rows, cols),
  swiglu: (be) => be.swiglu(g, u, o, n),
  swigluBackward: (be) => be.swigluBackward(g, u, o, p, m, n),
  adamw: (be) => be.adamw({ param: p, grad: g, m, v, n, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, biasCorrection1: 0.1, biasCorrection2: 0.001 }),
};
const results = {};
for (const [kernel, call] of Object.entries(cases)) {
  if (!native.nativeKernels.includes(kernel.split(" ")[0])) continue;
  const [nativeMs, composedMs] = await timePair(call);
  results[kernel] = { nativeMs: +nativeMs.toFixed(2), composedMs: +composedMs.toFixed(2), speedup: +(composedMs / nativeMs).toFixed(2) };
}
console.log(JSON.stringify({ tfjs: backend.selection.active, shapes: { rows, cols, n, lossRows, vocab, topK, attention: { B, T, Hq, Hkv, D }, embedding: { embN, embVocab, embDim } }, repeats, results }, null, 2));
