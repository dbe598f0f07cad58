// Self-consistency checks on one backend: each fused kernel against the same math composed from
// the backend's own primitives (gemm, binary, unary, unaryBackward, reduceLastAxis, copyStrided,
// fill; only unary ever runs in place, the one primitive whose contract allows aliasing). They
// never consult the reference, so they validate the reference itself too. The compositions avoid
// the fused kernel under test (e.g. the attention composition builds its softmax from
// max/sub/exp/sum/div), so a broken fused kernel shows up under its own name only.
import type { DeviceBuffer, TensorBackend } from "../interfaces/backend.js";
import { type AttentionCase, ATTENTION_CASES, attentionArgs, attentionLayout, attentionSizes } from "./cases-attention.js";
import { makeLabels, makeTopK, makeWeights } from "./cases-loss.js";
import { type ConformanceCheck, DEFAULT_SEED, Inputs, type Tolerance, caseSeed, compareArrays, errorCheck } from "./harness.js";

/** Options of {@link runCompositionChecks}. */
export interface CompositionOptions {
  /** Seed of the input generator. Default 1234. */
  seed?: number;
  /** Run only the checks of these kernels. Default: all. */
  kernels?: string[];
}

// Composed results round after every primitive, so they differ from a fused kernel by a few more
// ulp than two fused kernels do; a real bug (1e-3 shifts, lost factors, dropped masks) is far out.
const COMPOSED: Tolerance = { atol: 1e-5, rtol: 1e-4 };

/** Buffers on one backend, all freed by dispose(). */
class Scratch {
  private readonly owned: DeviceBuffer[] = [];
  constructor(readonly be: TensorBackend) {}
  input(data: Float32Array | Int32Array): DeviceBuffer {
    const buf = this.be.alloc(data instanceof Int32Array ? "i32" : "f32", data.length);
    this.owned.push(buf);
    this.be.upload(buf, data);
    return buf;
  }
  output(n: number, value = NaN): DeviceBuffer {
    const buf = this.be.alloc("f32", n);
    this.owned.push(buf);
    this.be.fill(buf, value, n);
    return buf;
  }
  read(buf: DeviceBuffer): Promise<Float32Array> {
    return this.be.download(buf as DeviceBuffer & { dtype: "f32" });
  }
  dispose(): void {
    for (const buf of this.owned.splice(0)) this.be.free(buf);
  }
}

/** log-softmax of rows from primitives: z − max − log Σ exp(z − max). (rows, cols) → (rows, cols) */
function composeLogSoftmax(s: Scratch, z: DeviceBuffer, rows: number, cols: number): DeviceBuffer {
  const be = s.be;
  const max = s.output(rows);
  be.reduceLastAxis("max", z, max, rows, cols);
  const shifted = s.output(rows * cols);
  be.binary("sub", z, [rows, cols], max, [rows, 1], shifted, [rows, cols]);
  const e = s.output(rows * cols);
  be.unary("exp", shifted, e, rows * cols);
  const sum = s.output(rows);
  be.reduceLastAxis("sum", e, sum, rows, cols);
  be.unary("log", sum, sum, rows);
  const logp = s.output(rows * cols);
  be.binary("sub", shifted, [rows, cols], sum, [rows, 1], logp, [rows, cols]);
  return logp;
}

/** softmax of rows from primitives, plus the row log-sum-exp. x (rows, cols) */
function composeSoftmax(s: Scratch, x: DeviceBuffer, rows: number, cols: number): { probs: DeviceBuffer; lse: DeviceBuffer } {
  const be = s.be;
  const max = s.output(rows);
  be.reduceLastAxis("max", x, max, rows, cols);
  const e = s.output(rows * cols);
  be.binary("sub", x, [rows, cols], max, [rows, 1], e, [rows, cols]);
  be.unary("exp", e, e, rows * cols);
  const sum = s.output(rows);
  be.reduceLastAxis("sum", e, sum, rows, cols);
  const probs = s.output(rows * cols);
  be.binary("div", e, [rows, cols], sum, [rows, 1], probs, [rows, cols]);
  const logSum = s.output(rows);
  be.unary("log", sum, logSum, rows);
  const lse = s.output(rows);
  be.binary("add", logSum, [rows], max, [rows], lse, [rows]);
  return { probs, lse };
}

/** a ⊙ b for (rows, cols) ⊙ (rows, 1), into a fresh buffer. */
function scaleRows(s: Scratch, a: DeviceBuffer, perRow: DeviceBuffer, rows: number, cols: number): DeviceBuffer {
  const out = s.output(rows * cols);
  s.be.binary("mul", a, [rows, cols], perRow, [rows, 1], out, [rows, cols]);
  return out;
}

interface Check {
  kernel: string;
  name: string;
  run(s: Scratch, gen: Inputs, record: (label: string, got: DeviceBuffer, want: DeviceBuffer, tol?: Tolerance) => Promise<void>): Promise<void>;
}

const CE_CASES = [
  { rows: 6, vocab: 17, temperature: 1, weights: false, logitScale: 3 },
  { rows: 4, vocab: 5000, temperature: 2, weights: true, logitScale: 3 },
  { rows: 7, vocab: 33, temperature: 0.5, weights: true, logitScale: 30 },
];

const KL_COMPOSITION_CASES = [
  { rows: 5, vocab: 17, temperature: 1, weights: false, topK: 0 },
  { rows: 3, vocab: 5000, temperature: 2, weights: true, topK: 0 },
  { rows: 6, vocab: 33, temperature: 1, weights: false, topK: 5 },
  { rows: 3, vocab: 17, temperature: 2, weights: true, topK: 1 },
  { rows: 2, vocab: 5000, temperature: 0.7, weights: true, topK: 8 },
];

function lossChecks(): Check[] {
  const checks: Check[] = [];
  for (const c of CE_CASES) {
    checks.push({
      kernel: "crossEntropy",
      name: `rows=${c.rows} vocab=${c.vocab} temperature=${c.temperature}${c.weights ? " weights" : ""} ignored labels`,
      async run(s, gen, record) {
        const { rows, vocab, temperature: tau } = c;
        const be = s.be;
        const logitsHost = gen.normal(rows * vocab, c.logitScale);
        const labelsHost = makeLabels(gen, rows, vocab);
        const weightsHost = c.weights ? makeWeights(gen, rows) : new Float32Array(rows).fill(1);
        const logits = s.input(logitsHost);
        const labels = s.input(labelsHost);
        const weights = s.input(weightsHost);
        const loss = s.output(rows);
        const grad = s.output(rows * vocab);
        be.crossEntropy({ logits, labels, rows, vocab, temperature: tau, loss, grad, ...(c.weights ? { weights } : {}) });

        const z = s.output(rows * vocab);
        be.unary("scale", logits, z, rows * vocab, 1 / tau);
        const logp = composeLogSoftmax(s, z, rows, vocab);
        // Gather logp[r, label[r]] with one-element strided copies; ignored rows keep 0.
        const picked = s.output(rows, 0);
        const onehot = new Float32Array(rows * vocab);
        const valid = new Float32Array(rows);
        for (let r = 0; r < rows; r++) {
          const label = labelsHost[r]!;
          if (label < 0) continue;
          be.copyStrided({ src: logp, srcOffset: r * vocab + label, srcStrides: [1], dst: picked, dstOffset: r, dstStrides: [1], shape: [1] });
          onehot[r * vocab + label] = 1;
          valid[r] = 1;
        }
        const composedLoss = s.output(rows);
        be.unary("neg", picked, picked, rows);
        be.binary("mul", picked, [rows], weights, [rows], composedLoss, [rows]);
        const p = s.output(rows * vocab);
        be.unary("exp", logp, p, rows * vocab);
        const diff = s.output(rows * vocab);
        be.binary("sub", p, [rows, vocab], s.input(onehot), [rows, vocab], diff, [rows, vocab]);
        const rowScale = s.output(rows);
        be.binary("mul", weights, [rows], s.input(valid), [rows], rowScale, [rows]);
        be.unary("scale", rowScale, rowScale, rows, 1 / tau);
        await record("loss", loss, composedLoss);
        await record("grad = (softmax(z) - onehot)·w/τ", grad, scaleRows(s, diff, rowScale, rows, vocab));
      },
    });
  }
  for (const c of KL_COMPOSITION_CASES) {
    checks.push({
      kernel: "klDiv",
      name: `${c.topK ? `top-${c.topK}` : "dense"} rows=${c.rows} vocab=${c.vocab} temperature=${c.temperature}${c.weights ? " weights" : ""}`,
      async run(s, gen, record) {
        const { rows, vocab, temperature: tau } = c;
        const n = rows * vocab;
        const be = s.be;
        const logits = s.input(gen.normal(n, 3));
        const weights = s.input(c.weights ? makeWeights(gen, rows) : new Float32Array(rows).fill(1));
        const loss = s.output(rows);
        const grad = s.output(n);
        const z = s.output(n);
        be.unary("scale", logits, z, n, 1 / tau);
        const logpStudent = composeLogSoftmax(s, z, rows, vocab);
        const studentProbs = s.output(n);
        be.unary("exp", logpStudent, studentProbs, n);
        // Teacher as dense (rows, vocab) probabilities and log-probabilities; top-k leaves zeros
        // elsewhere, and 0·(0 − logp) contributes nothing.
        let teacherProbs: DeviceBuffer;
        let teacherLogp: DeviceBuffer;
        let studentTerm: DeviceBuffer;
        if (c.topK) {
          const top = makeTopK(gen, rows, vocab, c.topK);
          be.klDiv({ logits, rows, vocab, temperature: tau, loss, grad, teacherIndices: s.input(top.indices), teacherLogprobs: s.input(top.logprobs), topK: c.topK, ...(c.weights ? { weights } : {}) });
          const probsHost = new Float32Array(n);
          const logpHost = new Float32Array(n);
          for (let r = 0; r < rows; r++) {
            for (let i = 0; i < c.topK; i++) {
              const j = r * vocab + top.indices[r * c.topK + i]!;
              logpHost[j] = top.logprobs[r * c.topK + i]!;
              probsHost[j] = Math.exp(logpHost[j]!);
            }
          }
          teacherProbs = s.input(probsHost);
          teacherLogp = s.input(logpHost);
          // The top-k teacher is unnormalised: d/dz of −Σ_k p_k log q_{j_k} is (Σ_k p_k)·q − p.
          const mass = s.output(rows);
          be.reduceLastAxis("sum", teacherProbs, mass, rows, vocab);
          studentTerm = scaleRows(s, studentProbs, mass, rows, vocab);
        } else {
          const teacherHost = gen.normal(n, 3);
          const teacher = s.input(teacherHost);
          be.klDiv({ logits, rows, vocab, temperature: tau, loss, grad, teacherLogits: teacher, ...(c.weights ? { weights } : {}) });
          const zt = s.output(n);
          be.unary("scale", teacher, zt, n, 1 / tau);
          teacherLogp = composeLogSoftmax(s, zt, rows, vocab);
          teacherProbs = s.output(n);
          be.unary("exp", teacherLogp, teacherProbs, n);
          studentTerm = studentProbs;
        }
        const logRatio = s.output(n);
        be.binary("sub", teacherLogp, [n], logpStudent, [n], logRatio, [n]);
        const term = s.output(n);
        be.binary("mul", logRatio, [n], teacherProbs, [n], term, [n]);
        const rowSum = s.output(rows);
        be.reduceLastAxis("sum", term, rowSum, rows, vocab);
        const composedLoss = s.output(rows);
        be.binary("mul", rowSum, [rows], weights, [rows], composedLoss, [rows]);
        const diff = s.output(n);
        be.binary("sub", studentTerm, [n], teacherProbs, [n], diff, [n]);
        const rowScale = s.output(rows);
        be.unary("scale", weights, rowScale, rows, 1 / tau);
        await record("loss", loss, composedLoss);
        await record("grad", grad, scaleRows(s, diff, rowScale, rows, vocab));
      },
    });
  }
  return checks;
}

/** Attention per (batch, head) from gemm (scores, alpha = scale), an added −1e30 mask, a composed softmax and gemm with v. */
async function composeAttention(s: Scratch, gen: Inputs, c: AttentionCase, record: (label: string, got: DeviceBuffer, want: DeviceBuffer) => Promise<void>): Promise<void> {
  const be = s.be;
  const layout = attentionLayout(c);
  const sizes = attentionSizes(c);
  const inputs = layout.buffers.map((n) => s.input(gen.normal(n)));
  const args = attentionArgs(c, layout, inputs);
  const out = s.output(sizes.out);
  const lse = s.output(sizes.lse);
  be.attention({ ...args, out, lse });

  const { batch: B, queryLen: T, keyLen: S, numHeads: Hq, numKvHeads: Hkv, qkDim: Dqk, vDim: Dv } = c;
  const mask = new Float32Array(T * S);
  if (c.causal) for (let t = 0; t < T; t++) for (let j = t + S - T + 1; j < S; j++) mask[t * S + j] = -1e30;
  const maskBuf = s.input(mask);
  const scores = s.output(T * S);
  const masked = s.output(T * S);
  const composedOut = s.output(sizes.out);
  const composedLse = s.output(sizes.lse);
  const group = Hq / Hkv;
  const { q, k, v } = layout;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kvHead = Math.floor(h / group);
      be.gemm({
        batch: 1, m: T, n: S, k: Dqk, transA: false, transB: true, alpha: args.scale, beta: 0,
        a: inputs[q.buffer]!, aOffset: q.offset + b * q.strides[0] + h * q.strides[2], lda: q.strides[1], strideA: 0,
        b: inputs[k.buffer]!, bOffset: k.offset + b * k.strides[0] + kvHead * k.strides[2], ldb: k.strides[1], strideB: 0,
        c: scores, cOffset: 0, ldc: S, strideC: 0,
      });
      be.binary("add", scores, [T, S], maskBuf, [T, S], masked, [T, S]);
      const { probs, lse: rowLse } = composeSoftmax(s, masked, T, S);
      be.gemm({
        batch: 1, m: T, n: Dv, k: S, transA: false, transB: false, alpha: 1, beta: 0,
        a: probs, aOffset: 0, lda: S, strideA: 0,
        b: inputs[v.buffer]!, bOffset: v.offset + b * v.strides[0] + kvHead * v.strides[2], ldb: v.strides[1], strideB: 0,
        c: composedOut, cOffset: b * T * Hq * Dv + h * Dv, ldc: Hq * Dv, strideC: 0,
      });
      be.copyStrided({ src: rowLse, srcStrides: [1], dst: composedLse, dstOffset: (b * Hq + h) * T, dstStrides: [1], shape: [T] });
    }
  }
  await record("out", out, composedOut);
  await record("lse", lse, composedLse);
}

function elementwiseChecks(): Check[] {
  const n = 1037;
  return [
    {
      kernel: "swiglu",
      name: `silu(gate)·up n=${n}`,
      async run(s, gen, record) {
        const be = s.be;
        const gate = s.input(gen.uniform(n, -8, 8));
        const up = s.input(gen.uniform(n, -2, 2));
        const out = s.output(n);
        be.swiglu(gate, up, out, n);
        const act = s.output(n);
        be.unary("silu", gate, act, n);
        const composed = s.output(n);
        be.binary("mul", act, [n], up, [n], composed, [n]);
        await record("out", out, composed);
      },
    },
    {
      kernel: "swigluBackward",
      name: `dUp = dOut·silu(gate), dGate = silu'(gate)·dOut·up n=${n}`,
      async run(s, gen, record) {
        const be = s.be;
        const gate = s.input(gen.uniform(n, -8, 8));
        const up = s.input(gen.uniform(n, -2, 2));
        const dOut = s.input(gen.uniform(n));
        const dGate = s.output(n);
        const dUp = s.output(n);
        be.swigluBackward(gate, up, dOut, dGate, dUp, n);
        const act = s.output(n);
        be.unary("silu", gate, act, n);
        const composedUp = s.output(n);
        be.binary("mul", dOut, [n], act, [n], composedUp, [n]);
        const dAct = s.output(n);
        be.binary("mul", dOut, [n], up, [n], dAct, [n]);
        const composedGate = s.output(n);
        be.unaryBackward("silu", gate, act, dAct, composedGate, n);
        await record("dGate", dGate, composedGate);
        await record("dUp", dUp, composedUp);
      },
    },
  ];
}

function rowChecks(): Check[] {
  const checks: Check[] = [];
  for (const [rows, cols, eps] of [[5, 65, 1e-5], [3, 5000, 1e-6]] as const) {
    checks.push({
      kernel: "rmsNorm",
      name: `rows=${rows} cols=${cols} eps=${eps} vs sumsq/mean composition`,
      async run(s, gen, record) {
        const be = s.be;
        const n = rows * cols;
        const x = s.input(gen.normal(n));
        const weight = s.input(gen.uniform(cols, 0.5, 1.5));
        const out = s.output(n);
        const rstd = s.output(rows);
        be.rmsNorm(x, weight, out, rstd, rows, cols, eps);
        // Two routes to mean(x²): sumsq / cols, and mean(square(x)).
        const viaSumsq = s.output(rows);
        be.reduceLastAxis("sumsq", x, viaSumsq, rows, cols);
        be.unary("scale", viaSumsq, viaSumsq, rows, 1 / cols);
        const squares = s.output(n);
        be.unary("square", x, squares, n);
        const viaMean = s.output(rows);
        be.reduceLastAxis("mean", squares, viaMean, rows, cols);
        for (const ms of [viaSumsq, viaMean]) {
          be.unary("addScalar", ms, ms, rows, eps);
          be.unary("rsqrt", ms, ms, rows);
        }
        const normed = scaleRows(s, x, viaSumsq, rows, cols);
        const composed = s.output(n);
        be.binary("mul", normed, [rows, cols], weight, [cols], composed, [rows, cols]);
        await record("rstd (sumsq)", rstd, viaSumsq);
        await record("rstd (mean of squares)", rstd, viaMean);
        await record("out", out, composed);
      },
    });
  }
  for (const [rows, cols] of [[3, 17], [4, 5000]] as const) {
    checks.push({
      kernel: "softmax",
      name: `rows=${rows} cols=${cols} vs exp(x − max)/Σ`,
      async run(s, gen, record) {
        const x = s.input(gen.uniform(rows * cols, -5, 5));
        const out = s.output(rows * cols);
        s.be.softmax(x, out, rows, cols);
        await record("out", out, composeSoftmax(s, x, rows, cols).probs);
      },
    });
    checks.push({
      kernel: "softmaxBackward",
      name: `rows=${rows} cols=${cols} vs y ⊙ (dy − Σ dy ⊙ y)`,
      async run(s, gen, record) {
        const be = s.be;
        const n = rows * cols;
        const y = composeSoftmax(s, s.input(gen.uniform(n, -3, 3)), rows, cols).probs;
        const dy = s.input(gen.uniform(n));
        const dx = s.output(n);
        be.softmaxBackward(y, dy, dx, rows, cols);
        const prod = s.output(n);
        be.binary("mul", dy, [n], y, [n], prod, [n]);
        const dot = s.output(rows);
        be.reduceLastAxis("sum", prod, dot, rows, cols);
        const centered = s.output(n);
        be.binary("sub", dy, [rows, cols], dot, [rows, 1], centered, [rows, cols]);
        const composed = s.output(n);
        be.binary("mul", y, [n], centered, [n], composed, [n]);
        await record("dx", dx, composed);
      },
    });
  }
  return checks;
}

function allChecks(): Check[] {
  const attention: Check[] = ATTENTION_CASES.map((c) => ({
    kernel: "attention",
    name: `${c.name} vs per-head gemm + mask + softmax + gemm`,
    run: (s, gen, record) => composeAttention(s, gen, c, record),
  }));
  return [...lossChecks(), ...attention, ...elementwiseChecks(), ...rowChecks()];
}

/**
 * Check fused kernels (crossEntropy, klDiv, attention, swiglu(+backward), rmsNorm, softmax(+backward))
 * against compositions of the same backend's primitive kernels. Needs no reference backend.
 */
export async function runCompositionChecks(backend: TensorBackend, options: CompositionOptions = {}): Promise<ConformanceCheck[]> {
  const seed = options.seed ?? DEFAULT_SEED;
  const selected = options.kernels ? new Set(options.kernels) : undefined;
  const results: ConformanceCheck[] = [];
  const liveBefore = backend.memoryStats().liveBuffers;
  for (const check of allChecks()) {
    if (selected && !selected.has(check.kernel)) continue;
    const caseName = `composition: ${check.name}`;
    const s = new Scratch(backend);
    try {
      await check.run(s, new Inputs(caseSeed(seed, check.kernel, caseName)), async (label, got, want, tol = COMPOSED) => {
        const fused = await s.read(got);
        const composed = await s.read(want);
        results.push({ kernel: check.kernel, case: `${caseName}: ${label}`, ...compareArrays(fused, composed, tol) });
      });
    } catch (err) {
      results.push(errorCheck(check.kernel, caseName, err));
    } finally {
      s.dispose();
    }
  }
  await backend.sync();
  const liveAfter = backend.memoryStats().liveBuffers;
  results.push({
    kernel: "memory",
    case: "composition checks: liveBuffers after equals before",
    pass: liveAfter === liveBefore,
    maxAbsErr: Math.abs(liveAfter - liveBefore),
    maxRelErr: 0,
    atol: 0,
    rtol: 0,
    detail: `liveBuffers before ${liveBefore}, after ${liveAfter}`,
  });
  return results;
}
