// TfjsBackend: the primitives plus the fused kernels tfjs runs natively and faster than core's
// compositions (measured by test/bench-fused.ts); completeBackend composes the rest.
import * as tf from "@tensorflow/tfjs-core";
import {
  EcomlaError,
  stridedSpan,
  type AdamWArgs,
  type AttentionArgs,
  type AttentionBackwardArgs,
  type AttentionForwardArgs,
  type CrossEntropyArgs,
  type DeviceBuffer,
  type FusedKernelName,
  type KlDivArgs,
  type LossArgs,
  type RopeArgs,
} from "@ecomla/core";
import { attentionBackward, attentionForward, type AttentionIo } from "./attention.js";
import { numel } from "./layout.js";
import { TfjsPrimitives, type TfjsBuffer } from "./primitives.js";

/** Elements of logits one loss step holds at a time (16 MiB of f32): rows are processed in chunks of this size. */
const LOSS_CHUNK_ELEMENTS = 1 << 22;

/** Per-row loss (n) and the gradient with respect to the scaled logits z = logits/τ (n, V), before the row weights and 1/τ. */
type LossRows = { loss: tf.Tensor; dz: tf.Tensor };

/** Largest score matrix (B·Hq·T·S elements, 128 MiB of f32) native attention holds; larger calls go to core's chunked composition. */
const ATTENTION_MAX_SCORES = 1 << 25;

/** The TensorFlow.js backend ("tfjs"). */
export class TfjsBackend extends TfjsPrimitives {
  /** Native attention holds the whole score matrix, so it declines calls whose scores would not fit {@link ATTENTION_MAX_SCORES}. */
  supports(kernel: FusedKernelName, args: readonly unknown[]): boolean {
    if (kernel !== "attention" && kernel !== "attentionBackward") return true;
    const a = args[0] as AttentionArgs;
    return a.batch * a.numHeads * a.queryLen * a.keyLen <= ATTENTION_MAX_SCORES;
  }

  sumToShape(x: DeviceBuffer, xShape: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const k = "sumToShape";
    this.checks.shape(k, "xShape", xShape);
    this.checks.shape(k, "outShape", outShape);
    this.checks.broadcast(k, "outShape", outShape, "xShape", xShape);
    const xb = this.typed(k, "x", x, "f32", numel(xShape));
    const ob = this.typed(k, "out", out, "f32", numel(outShape));
    if (numel(outShape) === 0) return;
    const lead = xShape.length - outShape.length;
    const axes = xShape.map((_, d) => d).filter((d) => d < lead || (outShape[d - lead] === 1 && xShape[d] !== 1));
    this.update(ob, (old) => {
      if (axes.length > 0 && axes.every((d, i) => d === i)) {
        // Leading axes only (a bias gradient): one (1, R)·(R, C) product beats tfjs's leading-axis sum.
        const inner = numel(xShape.slice(axes.length));
        const reduced = numel(xShape) / inner;
        return this.spliced(old, 0, this.matMul(tf.ones([1, 1, reduced]), this.read(xb, numel(xShape), 0, [1, reduced, inner])));
      }
      const xt = this.read(xb, numel(xShape), 0, xShape);
      return this.spliced(old, 0, axes.length ? tf.sum(xt, axes) : xt);
    });
  }

  softmax(x: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number): void {
    this.checks.ints("softmax", { rows, cols });
    const xb = this.typed("softmax", "x", x, "f32", rows * cols);
    const ob = this.typed("softmax", "out", out, "f32", rows * cols);
    if (rows * cols === 0) return;
    this.update(ob, (old) => this.spliced(old, 0, tf.softmax(this.read(xb, rows * cols, 0, [rows, cols]))));
  }

  softmaxBackward(y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, rows: number, cols: number): void {
    const k = "softmaxBackward";
    this.checks.ints(k, { rows, cols });
    const size = rows * cols;
    const [yb, dyb, dxb] = [this.typed(k, "y", y, "f32", size), this.typed(k, "dy", dy, "f32", size), this.typed(k, "dx", dx, "f32", size)];
    if (size === 0) return;
    this.update(dxb, (old) => {
      const yt = this.read(yb, size, 0, [rows, cols]);
      const dyt = this.read(dyb, size, 0, [rows, cols]);
      return this.spliced(old, 0, tf.mul(yt, tf.sub(dyt, tf.sum(tf.mul(dyt, yt), -1, true))));
    });
  }

  rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rstd: DeviceBuffer, rows: number, cols: number, eps: number): void {
    const k = "rmsNorm";
    this.checks.ints(k, { rows, cols });
    const size = rows * cols;
    const [xb, ob, rb] = [this.typed(k, "x", x, "f32", size), this.typed(k, "out", out, "f32", size), this.typed(k, "rstd", rstd, "f32", rows)];
    const wb = this.typed(k, "weight", weight, "f32", rows > 0 ? cols : 0);
    if (rows === 0) return;
    const r = tf.tidy(() => tf.rsqrt(tf.add(tf.mean(tf.square(this.read(xb, size, 0, [rows, cols])), -1, true), eps)));
    try {
      // out before rstd: out may not alias rstd, but weight may alias either (read first).
      this.update(ob, (old) => this.spliced(old, 0, tf.mul(tf.mul(this.read(xb, size, 0, [rows, cols]), r), this.read(wb, cols))));
      this.update(rb, (old) => this.spliced(old, 0, r));
    } finally {
      r.dispose();
    }
  }

  rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer, dWeight: DeviceBuffer, rows: number, cols: number): void {
    const k = "rmsNormBackward";
    this.checks.ints(k, { rows, cols });
    const size = rows * cols;
    const [xb, wb, rb] = [this.typed(k, "x", x, "f32", size), this.typed(k, "weight", weight, "f32", cols), this.typed(k, "rstd", rstd, "f32", rows)];
    const [dyb, dxb, dwb] = [this.typed(k, "dy", dy, "f32", size), this.typed(k, "dx", dx, "f32", size), this.typed(k, "dWeight", dWeight, "f32", cols)];
    if (size === 0) return;
    // Every input is read before either output is written (dx may alias an input).
    const [dxNew, dwNew] = tf.tidy(() => {
      const xt = this.read(xb, size, 0, [rows, cols]);
      const dyt = this.read(dyb, size, 0, [rows, cols]);
      const w = this.read(wb, cols);
      const r = this.read(rb, rows, 0, [rows, 1]);
      // dx = r·w·dy − x·r³·Σ(dy·w·x)/cols; dWeight += Σ_rows dy·x·r.
      const dyx = tf.mul(dyt, xt);
      const coeff = tf.div(tf.mul(tf.mul(tf.square(r), r), tf.sum(tf.mul(dyx, w), -1, true)), cols);
      const dxValue = tf.sub(tf.mul(tf.mul(r, w), dyt), tf.mul(coeff, xt));
      // The column sum as a (1, rows)·(rows, cols) product: tfjs reduces a leading axis slowly.
      return [dxValue, tf.add(this.read(dwb, cols), this.matMul(tf.reshape(r, [1, 1, rows]), tf.reshape(dyx, [1, rows, cols])))];
    });
    try {
      this.update(dxb, (old) => this.spliced(old, 0, dxNew));
      this.update(dwb, (old) => this.spliced(old, 0, dwNew));
    } finally {
      dxNew.dispose();
      dwNew.dispose();
    }
  }

  swiglu(gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer, n: number): void {
    this.checks.ints("swiglu", { n });
    const [gb, ub, ob] = [this.typed("swiglu", "gate", gate, "f32", n), this.typed("swiglu", "up", up, "f32", n), this.typed("swiglu", "out", out, "f32", n)];
    if (n === 0) return;
    this.update(ob, (old) => {
      const g = this.read(gb, n);
      return this.spliced(old, 0, tf.mul(tf.mul(g, tf.sigmoid(g)), this.read(ub, n)));
    });
  }

  swigluBackward(gate: DeviceBuffer, up: DeviceBuffer, dOut: DeviceBuffer, dGate: DeviceBuffer, dUp: DeviceBuffer, n: number): void {
    const k = "swigluBackward";
    this.checks.ints(k, { n });
    const [gb, ub, ob] = [this.typed(k, "gate", gate, "f32", n), this.typed(k, "up", up, "f32", n), this.typed(k, "dOut", dOut, "f32", n)];
    const [dgb, dub] = [this.typed(k, "dGate", dGate, "f32", n), this.typed(k, "dUp", dUp, "f32", n)];
    if (n === 0) return;
    const [dg, du] = tf.tidy(() => {
      const g = this.read(gb, n);
      const s = tf.sigmoid(g);
      const dy = this.read(ob, n);
      return [tf.mul(tf.mul(tf.mul(dy, this.read(ub, n)), s), tf.add(1, tf.mul(g, tf.sub(1, s)))), tf.mul(tf.mul(dy, g), s)];
    });
    try {
      this.update(dgb, (old) => this.spliced(old, 0, dg));
      this.update(dub, (old) => this.spliced(old, 0, du));
    } finally {
      dg.dispose();
      du.dispose();
    }
  }

  adamw(args: AdamWArgs): void {
    const k = "adamw";
    const { n } = args;
    this.checks.ints(k, { n });
    const [pb, gb, mb, vb] = [this.typed(k, "param", args.param, "f32", n), this.typed(k, "grad", args.grad, "f32", n), this.typed(k, "m", args.m, "f32", n), this.typed(k, "v", args.v, "f32", n)];
    if (new Set([pb, mb, vb]).size !== 3) this.checks.fail(k, `param, m and v must be distinct buffers`);
    if (n === 0) return;
    const [m, v] = tf.tidy(() => {
      const g = tf.mul(this.read(gb, n), args.gradScale ?? 1);
      return [tf.add(tf.mul(this.read(mb, n), args.beta1), tf.mul(g, 1 - args.beta1)), tf.add(tf.mul(this.read(vb, n), args.beta2), tf.mul(tf.square(g), 1 - args.beta2))];
    });
    try {
      this.update(pb, (old) => {
        const p = this.read(pb, n);
        const step = tf.div(tf.div(m, args.biasCorrection1), tf.add(tf.sqrt(tf.div(v, args.biasCorrection2)), args.eps));
        return this.spliced(old, 0, tf.sub(tf.sub(p, tf.mul(p, args.lr * args.weightDecay)), tf.mul(step, args.lr)));
      });
      this.update(mb, (old) => this.spliced(old, 0, m));
      this.update(vb, (old) => this.spliced(old, 0, v));
    } finally {
      m.dispose();
      v.dispose();
    }
  }

  rope(args: RopeArgs): void {
    const k = "rope";
    const { batch, seqLen, numHeads, headDim, layout } = args;
    const posOffset = args.posOffset ?? 0;
    this.checks.ints(k, { batch, seqLen, numHeads, headDim, posOffset });
    if (headDim % 2 !== 0) this.checks.fail(k, `headDim must be even, found ${headDim}`);
    if (layout !== "half" && layout !== "interleaved") this.checks.fail(k, `layout must be "half" or "interleaved", found ${JSON.stringify(layout)}`);
    const size = batch * seqLen * numHeads * headDim;
    const [xb, ob] = [this.typed(k, "x", args.x, "f32", size), this.typed(k, "out", args.out, "f32", size)];
    const positions = args.positions === undefined ? null : this.typed(k, "positions", args.positions, "i32", batch * seqLen);
    if (size === 0) return;
    // Positions are few (one per token): read on the host to check the tables hold their rows.
    let maxPos = posOffset + seqLen - 1;
    if (positions !== null) {
      const host = tf.tidy(() => tf.clone(this.read(positions, batch * seqLen)));
      const values = host.dataSync();
      host.dispose();
      maxPos = -1;
      values.forEach((pos, i) => {
        if (pos < 0) throw new EcomlaError(`TfjsBackend.rope: positions[${i}] = ${pos} is negative`);
        maxPos = Math.max(maxPos, pos);
      });
    }
    const half = headDim / 2;
    const [cosb, sinb] = [this.typed(k, "cos", args.cos, "f32", (maxPos + 1) * half), this.typed(k, "sin", args.sin, "f32", (maxPos + 1) * half)];
    const scale = args.scale ?? 1;
    this.update(ob, (old) => {
      // Rows of the tables per token, (B, T, 1, D/2), scaled (and the sine negated for the inverse).
      const rows = positions === null ? tf.range(posOffset, posOffset + seqLen, 1, "int32") : this.read(positions, batch * seqLen);
      const table = (buf: TfjsBuffer, factor: number) => tf.mul(tf.reshape(tf.gather(this.read(buf, (maxPos + 1) * half, 0, [maxPos + 1, half]), rows), [positions === null ? 1 : batch, seqLen, 1, half]), factor);
      const c = table(cosb, scale);
      const s = table(sinb, args.inverse ? -scale : scale);
      // Each head's pairs as (rows, 2, D/2): contiguous halves, or the interleaved pairs transposed
      // so (tfjs-wasm slices and splits inner axes of rank-5 tensors very slowly).
      const rowCount = batch * seqLen * numHeads;
      const x = layout === "half" ? this.read(xb, size, 0, [rowCount, 2, half]) : tf.transpose(this.read(xb, size, 0, [rowCount, half, 2]), [0, 2, 1]);
      const part = (i: number) => tf.reshape(tf.slice(x, [0, i, 0], [rowCount, 1, half]), [batch, seqLen, numHeads, half]);
      const [xa, xbPart] = [part(0), part(1)];
      const ya = tf.reshape(tf.sub(tf.mul(xa, c), tf.mul(xbPart, s)), [rowCount, 1, half]);
      const yb = tf.reshape(tf.add(tf.mul(xbPart, c), tf.mul(xa, s)), [rowCount, 1, half]);
      const y = tf.concat([ya, yb], 1);
      return this.spliced(old, 0, layout === "half" ? y : tf.transpose(y, [0, 2, 1]));
    });
  }

  embeddingBackward(ids: DeviceBuffer, dOut: DeviceBuffer, dTable: DeviceBuffer, n: number, vocab: number, dim: number): void {
    const k = "embeddingBackward";
    this.checks.ints(k, { n, vocab, dim });
    const idb = this.typed(k, "ids", ids, "i32", n);
    const tb = this.typed(k, "dTable", dTable, "f32", vocab * dim);
    const ob = this.typed(k, "dOut", dOut, "f32", n * dim);
    if (n === 0 || dim === 0) return;
    this.checkIds(k, "ids", idb, n, vocab, false);
    // scatterND sums the rows of repeated ids.
    this.update(tb, (old) => tf.add(old, tf.reshape(tf.scatterND(this.read(idb, n, 0, [n, 1]), this.read(ob, n * dim, 0, [n, dim]), [vocab, dim]), [-1])));
  }

  // ---- losses ------------------------------------------------------------------------------------

  /** Ids of an i32 buffer, read on the host, each in [0, limit) (negative ones allowed where they mean "ignored"). */
  private checkIds(kernel: string, arg: string, buf: TfjsBuffer, count: number, limit: number, allowNegative: boolean): void {
    const ids = tf.tidy(() => tf.clone(this.read(buf, count)));
    const host = ids.dataSync();
    ids.dispose();
    for (let i = 0; i < count; i++) {
      if (host[i]! >= limit || (host[i]! < 0 && !allowNegative)) throw new EcomlaError(`TfjsBackend.${kernel}: ${arg}[${i}] = ${host[i]} is out of range [0, ${limit})`);
    }
  }

  /**
   * The loss kernels' shared frame: checks, row chunks of z = logits/τ through `body`, then
   * loss = w·loss and grad = (w/τ)·dz written once every chunk is computed (grad may alias logits).
   */
  private lossRows(kernel: string, a: LossArgs, body: (r0: number, n: number, z: tf.Tensor) => LossRows): void {
    const { rows, vocab } = a;
    this.checks.ints(kernel, { rows, vocab });
    const temperature = a.temperature ?? 1;
    if (!(temperature > 0) || !Number.isFinite(temperature)) this.checks.fail(kernel, `temperature must be finite and > 0, found ${temperature}`);
    const logits = this.typed(kernel, "logits", a.logits, "f32", rows * vocab);
    const lossBuf = this.typed(kernel, "loss", a.loss, "f32", rows);
    const gradBuf = a.grad === undefined ? null : this.typed(kernel, "grad", a.grad, "f32", rows * vocab);
    const weights = a.weights === undefined ? null : this.typed(kernel, "weights", a.weights, "f32", rows);
    if (rows === 0) return;
    const step = Math.max(1, Math.floor(LOSS_CHUNK_ELEMENTS / Math.max(1, vocab)));
    const losses: tf.Tensor[] = [];
    const grads: tf.Tensor[] = [];
    try {
      for (let r0 = 0; r0 < rows; r0 += step) {
        const n = Math.min(step, rows - r0);
        const [loss, grad] = tf.tidy(() => {
          const raw = this.read(logits, n * vocab, r0 * vocab, [n, vocab]);
          const part = body(r0, n, temperature === 1 ? raw : tf.div(raw, temperature));
          const w = weights === null ? null : this.read(weights, n, r0, [n, 1]);
          const loss = w === null ? part.loss : tf.mul(part.loss, tf.reshape(w, [n]));
          const gradScale = w === null ? 1 / temperature : tf.div(w, temperature);
          return [loss, gradBuf === null ? null : tf.mul(part.dz, gradScale)] as const;
        });
        losses.push(loss);
        if (grad !== null) grads.push(grad);
      }
      this.update(lossBuf, (old) => this.spliced(old, 0, tf.concat(losses)));
      if (gradBuf !== null) this.update(gradBuf, (old) => this.spliced(old, 0, tf.concat(grads.map((g) => tf.reshape(g, [-1])))));
    } finally {
      for (const t of [...losses, ...grads]) t.dispose();
    }
  }

  crossEntropy(args: CrossEntropyArgs): void {
    const k = "crossEntropy";
    const { rows, vocab } = args;
    this.checks.ints(k, { rows, vocab });
    const labels = this.typed(k, "labels", args.labels, "i32", rows);
    if (rows > 0) this.checkIds(k, "labels", labels, rows, vocab, true);
    this.lossRows(k, args, (r0, n, z) => {
      const logq = tf.logSoftmax(z);
      const label = this.read(labels, n, r0);
      const valid = tf.cast(tf.greaterEqual(label, 0), "float32");
      // [row, label] of each row; ignored rows (label < 0) point at column 0 and are zeroed.
      const at = tf.stack([tf.range(0, n, 1, "int32"), tf.maximum(label, tf.scalar(0, "int32"))], -1);
      const target = tf.scatterND(at, valid, [n, vocab]);
      const loss = tf.mul(tf.neg(tf.gatherND(logq, at)), valid);
      return { loss, dz: tf.mul(tf.sub(tf.exp(logq), target), tf.reshape(valid, [n, 1])) };
    });
  }

  klDiv(args: KlDivArgs): void {
    const k = "klDiv";
    const dense = args.teacherLogits !== undefined;
    const topKForm = args.teacherIndices !== undefined || args.teacherLogprobs !== undefined;
    if (dense === topKForm) this.checks.fail(k, `give exactly one of teacherLogits or (teacherIndices, teacherLogprobs), found ${dense ? "both" : "neither"}`);
    const { rows, vocab } = args;
    this.checks.ints(k, { rows, vocab });
    const temperature = args.temperature ?? 1;
    if (dense) {
      const teacher = this.typed(k, "teacherLogits", args.teacherLogits!, "f32", rows * vocab);
      this.lossRows(k, args, (r0, n, z) => {
        const logq = tf.logSoftmax(z);
        const raw = this.read(teacher, n * vocab, r0 * vocab, [n, vocab]);
        const logp = tf.logSoftmax(temperature === 1 ? raw : tf.div(raw, temperature));
        const p = tf.exp(logp);
        // Terms with p = 0 count 0 (p·log p would be 0·(−∞)).
        const terms = tf.where(tf.greater(p, 0), tf.mul(p, tf.sub(logp, logq)), tf.zerosLike(p));
        return { loss: tf.sum(terms, -1), dz: tf.sub(tf.exp(logq), p) };
      });
      return;
    }
    const { teacherIndices, teacherLogprobs, topK } = args;
    if (teacherIndices === undefined || teacherLogprobs === undefined) return this.checks.fail(k, `the top-k form needs both teacherIndices and teacherLogprobs`);
    if (topK === undefined) return this.checks.fail(k, `the top-k form needs topK, found undefined`);
    this.checks.ints(k, { topK });
    const indices = this.typed(k, "teacherIndices", teacherIndices, "i32", rows * topK);
    const logprobs = this.typed(k, "teacherLogprobs", teacherLogprobs, "f32", rows * topK);
    if (rows * topK > 0) this.checkIds(k, "teacherIndices", indices, rows * topK, vocab, false);
    this.lossRows(k, args, (r0, n, z) => {
      const logq = tf.logSoftmax(z);
      const lp = this.read(logprobs, n * topK, r0 * topK, [n, topK]);
      // (n, K, 2) coordinates [row, id] of each teacher entry in the chunk.
      const rowIds = tf.broadcastTo(tf.reshape(tf.range(0, n, 1, "int32"), [n, 1]), [n, topK]);
      const at = tf.stack([rowIds, this.read(indices, n * topK, r0 * topK, [n, topK])], -1);
      const p = tf.exp(lp);
      const kept = tf.greater(p, 0);
      const mass = tf.where(kept, p, tf.zerosLike(p));
      const terms = tf.where(kept, tf.mul(p, tf.sub(lp, tf.gatherND(logq, at))), tf.zerosLike(p));
      // grad_j = q_j·Σp − Σ_{k: j_k = j} p_k (scatterND sums repeated ids).
      const perId = tf.scatterND(tf.reshape(at, [n * topK, 2]), tf.reshape(mass, [n * topK]), [n, vocab]);
      return { loss: tf.sum(terms, -1), dz: tf.sub(tf.mul(tf.exp(logq), tf.sum(mass, -1, true)), perId) };
    });
  }

  // ---- attention ---------------------------------------------------------------------------------

  /** Checks the shared attention arguments; returns the strided reads of q, k, v. */
  private attentionIo(kernel: string, a: AttentionArgs): AttentionIo {
    const { batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim, causal } = a;
    this.checks.ints(kernel, { batch, queryLen, keyLen });
    this.checks.ints(kernel, { numHeads, numKvHeads, qkDim, vDim }, 1);
    if (numHeads % numKvHeads !== 0) this.checks.fail(kernel, `numKvHeads (${numKvHeads}) must divide numHeads (${numHeads})`);
    if (causal && keyLen < queryLen) this.checks.fail(kernel, `causal attention needs keyLen ≥ queryLen, found keyLen ${keyLen} < queryLen ${queryLen}`);
    if (keyLen === 0 && queryLen > 0 && batch > 0) this.checks.fail(kernel, `keyLen is 0: query rows would see no key`);
    const views = new Map<string, { buf: TfjsBuffer; offset: number; shape: number[]; strides: number[] }>();
    for (const [name, v, tokens, heads, dim] of [["q", a.q, queryLen, numHeads, qkDim], ["k", a.k, keyLen, numKvHeads, qkDim], ["v", a.v, keyLen, numKvHeads, vDim]] as const) {
      const offset = v.offset ?? 0;
      const strides = v.strides ?? ([tokens * heads * dim, heads * dim, dim] as const);
      if (strides.length !== 3 || !strides.every(Number.isInteger)) this.checks.fail(kernel, `${name}.strides must be 3 integers [batch, token, head], found [${strides.join(", ")}]`);
      this.checks.ints(kernel, { [`${name}.offset`]: offset });
      const buf = this.checks.own(kernel, name, v.buf);
      this.checks.dtype(kernel, name, buf, "f32");
      const shape = [batch, tokens, heads, dim];
      this.checks.span(kernel, name, buf, stridedSpan(offset, shape, [...strides, 1]));
      views.set(name, { buf, offset, shape, strides: [...strides, 1] });
    }
    return {
      view: (name) => {
        const found = views.get(name)!;
        return this.readStrided(found.buf, found.offset, found.shape, found.strides);
      },
      matMul: (a, b, transA, transB) => this.matMul(a, b, transA, transB),
    };
  }

  attention(args: AttentionForwardArgs): void {
    const k = "attention";
    const io = this.attentionIo(k, args);
    const rows = args.batch * args.queryLen * args.numHeads;
    const out = this.typed(k, "out", args.out, "f32", rows * args.vDim);
    const lse = args.lse === undefined ? null : this.typed(k, "lse", args.lse, "f32", rows);
    if (rows === 0) return;
    const result = tf.tidy(() => attentionForward(io, args));
    try {
      this.update(out, (old) => this.spliced(old, 0, result.out));
      if (lse !== null) this.update(lse, (old) => this.spliced(old, 0, result.lse));
    } finally {
      result.out.dispose();
      result.lse.dispose();
    }
  }

  attentionBackward(args: AttentionBackwardArgs): void {
    const k = "attentionBackward";
    const io = this.attentionIo(k, args);
    const { batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim } = args;
    const rows = batch * queryLen * numHeads;
    const [out, lse, dOut] = [this.typed(k, "out", args.out, "f32", rows * vDim), this.typed(k, "lse", args.lse, "f32", rows), this.typed(k, "dOut", args.dOut, "f32", rows * vDim)];
    const dq = this.typed(k, "dq", args.dq, "f32", rows * qkDim);
    const dk = this.typed(k, "dk", args.dk, "f32", batch * keyLen * numKvHeads * qkDim);
    const dv = this.typed(k, "dv", args.dv, "f32", batch * keyLen * numKvHeads * vDim);
    if (rows === 0) {
      // No query row: the keys and values get no gradient.
      this.fill(dk, 0, batch * keyLen * numKvHeads * qkDim);
      this.fill(dv, 0, batch * keyLen * numKvHeads * vDim);
      return;
    }
    // Every input is read before any output is written (outputs may alias inputs).
    const grads = tf.tidy(() => {
      const shape = [batch, queryLen, numHeads, vDim];
      return attentionBackward(io, args, this.read(out, rows * vDim, 0, shape), this.read(lse, rows), this.read(dOut, rows * vDim, 0, shape));
    });
    try {
      this.update(dq, (old) => this.spliced(old, 0, grads.dq));
      this.update(dk, (old) => this.spliced(old, 0, grads.dk));
      this.update(dv, (old) => this.spliced(old, 0, grads.dv));
    } finally {
      for (const t of Object.values(grads)) t.dispose();
    }
  }
}
