import { ShapeError } from "../../errors.js";
import { Tensor } from "../tensor.js";
import { backendOf, expectDtype, expectRank, fmt, needsGrad, record } from "./common.js";

/** Softmax over the last axis. Differentiable. */
export function softmax(x: Tensor): Tensor {
  const be = backendOf("softmax", x);
  expectDtype("softmax", "x", x, "f32");
  const cols = x.shape[x.rank - 1] ?? 1;
  const rows = x.size / Math.max(1, cols);
  const out = Tensor.empty(be, x.shape);
  if (x.size) be.softmax(x.buffer, out.buffer, rows, cols);
  return record(out, "softmax", [x], (g) => {
    const dx = Tensor.empty(be, x.shape);
    if (x.size) be.softmaxBackward(out.buffer, g.buffer, dx.buffer, rows, cols);
    return [dx];
  });
}

/** RMSNorm over the last axis: x (…, d), weight (d). Differentiable in both. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const be = backendOf("rmsNorm", x, weight);
  const cols = weight.size;
  if (x.shape[x.rank - 1] !== cols) throw new ShapeError(`rmsNorm: input ${fmt(x.shape)} does not end in the weight's size ${cols}`);
  const rows = x.size / cols;
  const out = Tensor.empty(be, x.shape);
  const rstd = Tensor.empty(be, [rows]);
  if (rows) be.rmsNorm(x.buffer, weight.buffer, out.buffer, rstd.buffer, rows, cols, eps);
  if (!needsGrad(x, weight)) {
    rstd.dispose();
    return out;
  }
  return record(out, "rmsNorm", [x, weight], (g) => {
    const dx = Tensor.empty(be, x.shape);
    const dw = Tensor.zeros(be, weight.shape);
    if (rows) be.rmsNormBackward(x.buffer, weight.buffer, rstd.buffer, g.buffer, dx.buffer, dw.buffer, rows, cols);
    return [dx, dw];
  });
}

/** Rotary tables: cos and sin (positions, headDim/2), built on the host by the RoPE layer. */
export interface RopeTables {
  /** (P, D/2) */
  cos: Tensor;
  /** (P, D/2) */
  sin: Tensor;
}

/** Options of {@link rope}. */
export interface RopeOptions {
  layout?: "half" | "interleaved";
  /** Position of token 0 (decode with a cache). */
  posOffset?: number;
  /** (B, T) i32 explicit positions (packed sequences). */
  positions?: Tensor;
  /** Multiplier on cos and sin (YaRN's mscale). */
  scale?: number;
}

/** Rotary position embedding on x (B, T, H, D). Differentiable in x. */
export function rope(x: Tensor, tables: RopeTables, options: RopeOptions = {}): Tensor {
  const be = backendOf("rope", x, tables.cos, tables.sin);
  expectRank("rope", "x", x, 4);
  const [batch, seqLen, numHeads, headDim] = x.shape as [number, number, number, number];
  if (tables.cos.shape[1] !== headDim / 2) {
    throw new ShapeError(`rope: tables have ${tables.cos.shape[1]} frequencies, head dim ${headDim} needs ${headDim / 2}`);
  }
  const maxPos = tables.cos.shape[0]!;
  const posOffset = options.posOffset ?? 0;
  if (!options.positions && posOffset + seqLen > maxPos) {
    throw new ShapeError(`rope: positions up to ${posOffset + seqLen - 1} exceed the table's ${maxPos} rows`);
  }
  const base = {
    batch, seqLen, numHeads, headDim,
    layout: options.layout ?? "half",
    cos: tables.cos.buffer, sin: tables.sin.buffer,
    posOffset, positions: options.positions?.buffer, scale: options.scale ?? 1,
  } as const;
  const out = Tensor.empty(be, x.shape);
  if (x.size) be.rope({ ...base, x: x.buffer, out: out.buffer });
  return record(out, "rope", [x], (g) => {
    const dx = Tensor.empty(be, x.shape);
    if (x.size) be.rope({ ...base, x: g.buffer, out: dx.buffer, inverse: true });
    return [dx];
  });
}

/** Options of {@link attention}. */
export interface AttentionOptions {
  /** Multiplier of q·k (default Dqk^-1/2). */
  scale?: number;
  /** Causal mask with the queries as the last T of S positions (default true). */
  causal?: boolean;
}

/**
 * Multi-head attention with GQA: q (B, T, Hq, Dqk), k (B, S, Hkv, Dqk), v (B, S, Hkv, Dv)
 * → (B, T, Hq, Dv). Differentiable in q, k, v.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const be = backendOf("attention", q, k, v);
  for (const [name, t] of [["q", q], ["k", k], ["v", v]] as const) {
    expectRank("attention", name, t, 4);
    expectDtype("attention", name, t, "f32");
  }
  const [batch, queryLen, numHeads, qkDim] = q.shape as [number, number, number, number];
  const [kb, keyLen, numKvHeads, kd] = k.shape as [number, number, number, number];
  const [vb, vs, vh, vDim] = v.shape as [number, number, number, number];
  if (kb !== batch || vb !== batch || vs !== keyLen || vh !== numKvHeads || kd !== qkDim) {
    throw new ShapeError(`attention: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} do not fit (B, T, Hq, Dqk) / (B, S, Hkv, Dqk) / (B, S, Hkv, Dv)`);
  }
  if (numHeads % numKvHeads !== 0) throw new ShapeError(`attention: ${numKvHeads} key/value heads do not divide ${numHeads} query heads`);
  const causal = options.causal ?? true;
  if (causal && keyLen < queryLen) throw new ShapeError(`attention: causal attention needs at least as many keys (${keyLen}) as queries (${queryLen})`);
  const args = {
    batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim,
    scale: options.scale ?? 1 / Math.sqrt(qkDim), causal,
    q: { buf: q.buffer }, k: { buf: k.buffer }, v: { buf: v.buffer },
  };
  const out = Tensor.empty(be, [batch, queryLen, numHeads, vDim]);
  const grad = needsGrad(q, k, v);
  const lse = grad ? Tensor.empty(be, [batch, numHeads, queryLen]) : null;
  if (out.size) be.attention({ ...args, out: out.buffer, lse: lse?.buffer });
  if (!grad) return out;
  return record(out, "attention", [q, k, v], (g) => {
    const dq = Tensor.empty(be, q.shape);
    const dk = Tensor.empty(be, k.shape);
    const dv = Tensor.empty(be, v.shape);
    if (out.size) be.attentionBackward({ ...args, out: out.buffer, lse: lse!.buffer, dOut: g.buffer, dq: dq.buffer, dk: dk.buffer, dv: dv.buffer });
    return [dq, dk, dv];
  });
}

/** silu(gate) ⊙ up (same shapes). Differentiable in both. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  const be = backendOf("swiglu", gate, up);
  if (fmt(gate.shape) !== fmt(up.shape)) throw new ShapeError(`swiglu: gate ${fmt(gate.shape)} and up ${fmt(up.shape)} differ`);
  const out = Tensor.empty(be, gate.shape);
  if (out.size) be.swiglu(gate.buffer, up.buffer, out.buffer, out.size);
  return record(out, "swiglu", [gate, up], (g) => {
    const dGate = Tensor.empty(be, gate.shape);
    const dUp = Tensor.empty(be, up.shape);
    if (out.size) be.swigluBackward(gate.buffer, up.buffer, g.buffer, dGate.buffer, dUp.buffer, out.size);
    return [dGate, dUp];
  });
}

/** Rows of table (V, D) at ids (…) i32 → (…, D). Differentiable in table. */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  const be = backendOf("embedding", ids, table);
  expectDtype("embedding", "ids", ids, "i32");
  expectRank("embedding", "table", table, 2);
  const [vocab, dim] = table.shape as [number, number];
  const out = Tensor.empty(be, [...ids.shape, dim]);
  if (ids.size) be.embedding(ids.buffer, table.buffer, out.buffer, ids.size, vocab, dim);
  return record(out, "embedding", [ids, table], (g) => {
    const dTable = Tensor.zeros(be, table.shape);
    if (ids.size) be.embeddingBackward(ids.buffer, g.buffer, dTable.buffer, ids.size, vocab, dim);
    return [null, dTable];
  });
}

/** Options shared by the fused losses. */
export interface FusedLossOptions {
  /** (N) per-row weights (a mask, or a per-row normaliser). */
  weights?: Tensor;
  /** Multiplier of the summed loss; default 1/N (the mean over rows). */
  scale?: number;
  /** Temperature τ (default 1). */
  temperature?: number;
}

function lossRows(op: string, logits: Tensor): { rows: number; vocab: number } {
  expectRank(op, "logits", logits, 2);
  expectDtype(op, "logits", logits, "f32");
  return { rows: logits.shape[0]!, vocab: logits.shape[1]! };
}

/**
 * Fused total of per-row losses, loss = scale · Σ_r w_r·ℓ_r → scalar; the kernel writes d/dlogits
 * during the forward, and backward only scales it by the incoming gradient.
 */
function fusedLoss(
  op: string,
  logits: Tensor,
  options: FusedLossOptions,
  run: (lossBuf: Tensor, gradBuf: Tensor | null) => void,
): Tensor {
  const be = logits.backend;
  const { rows, vocab } = lossRows(op, logits);
  const scaleBy = options.scale ?? 1 / Math.max(1, rows);
  const perRow = Tensor.empty(be, [rows]);
  const grad = needsGrad(logits) ? Tensor.empty(be, [rows, vocab]) : null;
  if (rows) run(perRow, grad);
  const total = Tensor.empty(be, [1]);
  if (rows) be.reduceLastAxis("sum", perRow.buffer, total.buffer, 1, rows);
  else be.fill(total.buffer, 0, 1);
  be.unary("scale", total.buffer, total.buffer, 1, scaleBy);
  perRow.dispose();
  const out = total.view([]);
  total.dispose();
  if (!grad) return out;
  return record(out, op, [logits], (g) => {
    // d total / d logits = scale · grad, times the incoming scalar g.
    const dx = Tensor.empty(be, [rows, vocab]);
    be.binary("mul", grad.buffer, [rows, vocab], g.buffer, [1, 1], dx.buffer, [rows, vocab]);
    be.unary("scale", dx.buffer, dx.buffer, dx.size, scaleBy);
    return [dx];
  });
}

/** Cross-entropy of logits (N, V) against labels (N) i32 (negative = ignored). */
export function crossEntropy(logits: Tensor, labels: Tensor, options: FusedLossOptions = {}): Tensor {
  const be = backendOf("crossEntropy", logits, labels, ...(options.weights ? [options.weights] : []));
  expectDtype("crossEntropy", "labels", labels, "i32");
  if (labels.size !== logits.shape[0]) throw new ShapeError(`crossEntropy: ${labels.size} labels for ${logits.shape[0]} rows of logits`);
  return fusedLoss("crossEntropy", logits, options, (loss, grad) =>
    be.crossEntropy({
      logits: logits.buffer, rows: logits.shape[0]!, vocab: logits.shape[1]!, labels: labels.buffer,
      temperature: options.temperature, weights: options.weights?.buffer, loss: loss.buffer, grad: grad?.buffer,
    }),
  );
}

/** Teacher targets for {@link klDiv}: dense logits (N, V), or top-k ids (N, K) i32 with log-probs (N, K). */
export type KlTeacher = { logits: Tensor } | { indices: Tensor; logprobs: Tensor };

/** Forward KL(teacher ‖ student) of student logits (N, V). */
export function klDiv(logits: Tensor, teacher: KlTeacher, options: FusedLossOptions = {}): Tensor {
  const inputs = "logits" in teacher ? [teacher.logits] : [teacher.indices, teacher.logprobs];
  const be = backendOf("klDiv", logits, ...inputs, ...(options.weights ? [options.weights] : []));
  const { rows, vocab } = lossRows("klDiv", logits);
  let topK: number | undefined;
  if ("logits" in teacher) {
    if (fmt(teacher.logits.shape) !== fmt(logits.shape)) throw new ShapeError(`klDiv: teacher logits ${fmt(teacher.logits.shape)} differ from student ${fmt(logits.shape)}`);
  } else {
    expectDtype("klDiv", "teacher indices", teacher.indices, "i32");
    topK = teacher.indices.shape[1];
    if (teacher.indices.rank !== 2 || teacher.indices.shape[0] !== rows || fmt(teacher.logprobs.shape) !== fmt(teacher.indices.shape)) {
      throw new ShapeError(`klDiv: top-k indices ${fmt(teacher.indices.shape)} and log-probs ${fmt(teacher.logprobs.shape)} must both be (${rows}, K)`);
    }
  }
  return fusedLoss("klDiv", logits, options, (loss, grad) =>
    be.klDiv({
      logits: logits.buffer, rows, vocab, temperature: options.temperature, weights: options.weights?.buffer,
      loss: loss.buffer, grad: grad?.buffer,
      ...("logits" in teacher
        ? { teacherLogits: teacher.logits.buffer }
        : { teacherIndices: teacher.indices.buffer, teacherLogprobs: teacher.logprobs.buffer, topK }),
    }),
  );
}


/**
 * Inference attention over a key/value cache: q (B, T, Hq, Dqk) against the first `keyLen`
 * positions of kCache (B, M, Hkv, Dqk) and vCache (B, M, Hkv, Dc), the queries being the last T
 * of those positions (causal). Values are the first `valueDim` (default Dc) elements of each vCache
 * row, so MLA's latent cache can serve as both keys ([c_kv ‖ k_pe]) and values (c_kv). Reads the
 * caches in place through strided views. Not differentiable.
 */
export function attentionCached(q: Tensor, kCache: Tensor, vCache: Tensor, keyLen: number, options: { scale?: number; valueDim?: number } = {}): Tensor {
  const be = backendOf("attentionCached", q, kCache, vCache);
  expectRank("attentionCached", "q", q, 4);
  const [batch, queryLen, numHeads, qkDim] = q.shape as [number, number, number, number];
  const [, maxLen, numKvHeads, kd] = kCache.shape as [number, number, number, number];
  const vRow = vCache.shape[3]!;
  const vDim = options.valueDim ?? vRow;
  if (kd !== qkDim || kCache.shape[0] !== batch || vCache.shape[0] !== batch || vCache.shape[1] !== maxLen || vCache.shape[2] !== numKvHeads || vDim > vRow) {
    throw new ShapeError(`attentionCached: q ${fmt(q.shape)} does not fit caches k ${fmt(kCache.shape)} / v ${fmt(vCache.shape)} (value dim ${vDim})`);
  }
  if (keyLen < queryLen || keyLen > maxLen) throw new ShapeError(`attentionCached: ${keyLen} cached keys for ${queryLen} queries (cache holds ${maxLen})`);
  const out = Tensor.empty(be, [batch, queryLen, numHeads, vDim]);
  be.attention({
    batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim,
    scale: options.scale ?? 1 / Math.sqrt(qkDim), causal: true,
    q: { buf: q.buffer },
    k: { buf: kCache.buffer, strides: [maxLen * numKvHeads * qkDim, numKvHeads * qkDim, qkDim] },
    v: { buf: vCache.buffer, strides: [maxLen * numKvHeads * vRow, numKvHeads * vRow, vRow] },
    out: out.buffer,
  });
  return out;
}
