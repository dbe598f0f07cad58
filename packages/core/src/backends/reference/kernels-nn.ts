// Fused neural-network kernels of the reference backend, each forward next to its backward.
// Arguments are validated by ReferenceBackend; every row is gathered into float64 scratch before
// anything is written, so outputs that alias inputs (softmax, rope, loss grads) are safe.
import { sigmoid } from "./math.js";
import type { FloatStore } from "./kernels-basic.js";

// ---- softmax -----------------------------------------------------------------------------------

export function softmaxForward(
  x: FloatStore, // (rows, cols)
  out: FloatStore, // (rows, cols)
  rows: number,
  cols: number,
): void {
  const row = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let max = -Infinity;
    for (let j = 0; j < cols; j++) {
      row[j] = x[base + j]!;
      max = Math.max(max, row[j]!);
    }
    let sum = 0;
    for (let j = 0; j < cols; j++) {
      row[j] = Math.exp(row[j]! - max);
      sum += row[j]!;
    }
    for (let j = 0; j < cols; j++) out[base + j] = row[j]! / sum;
  }
}

export function softmaxBackward(
  y: FloatStore, // (rows, cols)
  dy: FloatStore, // (rows, cols)
  dx: FloatStore, // (rows, cols)
  rows: number,
  cols: number,
): void {
  const yRow = new Float64Array(cols);
  const dyRow = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) {
      yRow[j] = y[base + j]!;
      dyRow[j] = dy[base + j]!;
      dot += yRow[j]! * dyRow[j]!;
    }
    for (let j = 0; j < cols; j++) dx[base + j] = yRow[j]! * (dyRow[j]! - dot);
  }
}

// ---- RMSNorm -----------------------------------------------------------------------------------

export function rmsNormForward(
  x: FloatStore, // (rows, cols)
  weight: FloatStore, // (cols)
  out: FloatStore, // (rows, cols)
  rstd: FloatStore, // (rows)
  rows: number,
  cols: number,
  eps: number,
): void {
  const row = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let sumSquares = 0;
    for (let j = 0; j < cols; j++) {
      row[j] = x[base + j]!;
      sumSquares += row[j]! * row[j]!;
    }
    const inv = 1 / Math.sqrt(sumSquares / cols + eps);
    for (let j = 0; j < cols; j++) out[base + j] = row[j]! * inv * weight[j]!;
    rstd[r] = inv;
  }
}

/** dx_j = r·w_j·dy_j − (r³/n)·x_j·Σ_i dy_i·w_i·x_i; dWeight_j += Σ_rows dy_j·x_j·r. */
export function rmsNormBackward(
  x: FloatStore, // (rows, cols)
  weight: FloatStore, // (cols)
  rstd: FloatStore, // (rows)
  dy: FloatStore, // (rows, cols)
  dx: FloatStore, // (rows, cols)
  dWeight: FloatStore, // (cols)
  rows: number,
  cols: number,
): void {
  const dWeightSum = new Float64Array(cols);
  const xRow = new Float64Array(cols);
  const dyRow = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const inv = rstd[r]!;
    let dot = 0;
    for (let j = 0; j < cols; j++) {
      xRow[j] = x[base + j]!;
      dyRow[j] = dy[base + j]!;
      dot += dyRow[j]! * weight[j]! * xRow[j]!;
      dWeightSum[j] += dyRow[j]! * xRow[j]! * inv;
    }
    const coeff = (inv * inv * inv * dot) / cols;
    for (let j = 0; j < cols; j++) dx[base + j] = inv * weight[j]! * dyRow[j]! - coeff * xRow[j]!;
  }
  for (let j = 0; j < cols; j++) dWeight[j] = dWeight[j]! + dWeightSum[j]!;
}

// ---- rotary embedding ----------------------------------------------------------------------------

export interface RopeParams {
  batch: number;
  seqLen: number;
  numHeads: number;
  headDim: number;
  layout: "half" | "interleaved";
  posOffset: number;
  scale: number;
  inverse: boolean;
}

export function ropeKernel(
  p: RopeParams,
  x: FloatStore, // (B, T, H, D)
  out: FloatStore, // (B, T, H, D)
  cos: FloatStore, // (P, D/2)
  sin: FloatStore, // (P, D/2)
  positions: Int32Array | null, // (B, T)
): void {
  const halfDim = p.headDim / 2;
  const sinSign = p.inverse ? -1 : 1;
  for (let b = 0; b < p.batch; b++) {
    for (let t = 0; t < p.seqLen; t++) {
      const pos = positions === null ? p.posOffset + t : positions[b * p.seqLen + t]!;
      for (let h = 0; h < p.numHeads; h++) {
        const base = ((b * p.seqLen + t) * p.numHeads + h) * p.headDim;
        for (let i = 0; i < halfDim; i++) {
          const c = p.scale * cos[pos * halfDim + i]!;
          const s = sinSign * p.scale * sin[pos * halfDim + i]!;
          const ia = base + (p.layout === "half" ? i : 2 * i);
          const ib = base + (p.layout === "half" ? i + halfDim : 2 * i + 1);
          const xa = x[ia]!;
          const xb = x[ib]!;
          out[ia] = xa * c - xb * s;
          out[ib] = xb * c + xa * s;
        }
      }
    }
  }
}

// ---- attention -----------------------------------------------------------------------------------

/** A strided [batch, token, head, dim] view; dim is contiguous. */
export interface AttentionViewData {
  data: FloatStore;
  offset: number;
  strides: readonly [number, number, number];
}

export interface AttentionDims {
  batch: number;
  queryLen: number;
  keyLen: number;
  numHeads: number;
  numKvHeads: number;
  qkDim: number;
  vDim: number;
  scale: number;
  causal: boolean;
}

function viewIndex(v: AttentionViewData, b: number, t: number, h: number): number {
  return v.offset + b * v.strides[0] + t * v.strides[1] + h * v.strides[2];
}

/** Keys visible to query t: all S, or s ≤ t + (S − T) when causal. */
function visibleKeys(d: AttentionDims, t: number): number {
  return d.causal ? Math.min(d.keyLen, t + d.keyLen - d.queryLen + 1) : d.keyLen;
}

/** Writes scale·q·k_s for the visible keys of one query row into scores; returns the count. */
function scoreRow(d: AttentionDims, q: AttentionViewData, k: AttentionViewData, b: number, t: number, h: number, scores: Float64Array): number {
  const kvHead = Math.floor(h / (d.numHeads / d.numKvHeads));
  const qi = viewIndex(q, b, t, h);
  const count = visibleKeys(d, t);
  for (let s = 0; s < count; s++) {
    const ki = viewIndex(k, b, s, kvHead);
    let dot = 0;
    for (let c = 0; c < d.qkDim; c++) dot += q.data[qi + c]! * k.data[ki + c]!;
    scores[s] = d.scale * dot;
  }
  return count;
}

export function attentionForward(
  d: AttentionDims,
  q: AttentionViewData, // (B, T, Hq, Dqk)
  k: AttentionViewData, // (B, S, Hkv, Dqk)
  v: AttentionViewData, // (B, S, Hkv, Dv)
  out: FloatStore, // (B, T, Hq, Dv)
  lse: FloatStore | null, // (B, Hq, T)
): void {
  const scores = new Float64Array(d.keyLen);
  const acc = new Float64Array(d.vDim);
  const group = d.numHeads / d.numKvHeads;
  for (let b = 0; b < d.batch; b++) {
    for (let t = 0; t < d.queryLen; t++) {
      for (let h = 0; h < d.numHeads; h++) {
        const kvHead = Math.floor(h / group);
        const count = scoreRow(d, q, k, b, t, h, scores);
        let max = -Infinity;
        for (let s = 0; s < count; s++) max = Math.max(max, scores[s]!);
        let sum = 0;
        acc.fill(0);
        for (let s = 0; s < count; s++) {
          const weight = Math.exp(scores[s]! - max);
          sum += weight;
          const vi = viewIndex(v, b, s, kvHead);
          for (let c = 0; c < d.vDim; c++) acc[c] += weight * v.data[vi + c]!;
        }
        const oi = ((b * d.queryLen + t) * d.numHeads + h) * d.vDim;
        for (let c = 0; c < d.vDim; c++) out[oi + c] = acc[c]! / sum;
        if (lse !== null) lse[(b * d.numHeads + h) * d.queryLen + t] = max + Math.log(sum);
      }
    }
  }
}

/**
 * With p_s = exp(score_s − lse) and δ = dO·out: dv_s += p_s·dO; ds_s = p_s·(dO·v_s − δ);
 * dq += scale·Σ_s ds_s·k_s; dk_s += scale·ds_s·q. dq, dk, dv are overwritten.
 */
export function attentionBackward(
  d: AttentionDims,
  q: AttentionViewData, // (B, T, Hq, Dqk)
  k: AttentionViewData, // (B, S, Hkv, Dqk)
  v: AttentionViewData, // (B, S, Hkv, Dv)
  out: FloatStore, // (B, T, Hq, Dv)
  lse: FloatStore, // (B, Hq, T)
  dOut: FloatStore, // (B, T, Hq, Dv)
  dq: FloatStore, // (B, T, Hq, Dqk)
  dk: FloatStore, // (B, S, Hkv, Dqk)
  dv: FloatStore, // (B, S, Hkv, Dv)
): void {
  const { batch, queryLen, keyLen, numHeads, numKvHeads, qkDim, vDim } = d;
  const group = numHeads / numKvHeads;
  const scores = new Float64Array(keyLen);
  const dqRow = new Float64Array(qkDim);
  // dk/dv gather contributions from every query row and every head of the group.
  const dkAcc = new Float64Array(batch * keyLen * numKvHeads * qkDim);
  const dvAcc = new Float64Array(batch * keyLen * numKvHeads * vDim);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < queryLen; t++) {
      for (let h = 0; h < numHeads; h++) {
        const kvHead = Math.floor(h / group);
        const count = scoreRow(d, q, k, b, t, h, scores);
        const rowLse = lse[(b * numHeads + h) * queryLen + t]!;
        const oi = ((b * queryLen + t) * numHeads + h) * vDim;
        let delta = 0;
        for (let c = 0; c < vDim; c++) delta += dOut[oi + c]! * out[oi + c]!;
        const qi = viewIndex(q, b, t, h);
        dqRow.fill(0);
        for (let s = 0; s < count; s++) {
          const prob = Math.exp(scores[s]! - rowLse);
          const vi = viewIndex(v, b, s, kvHead);
          const kvRow = (b * keyLen + s) * numKvHeads + kvHead;
          let dProb = 0;
          for (let c = 0; c < vDim; c++) {
            dProb += dOut[oi + c]! * v.data[vi + c]!;
            dvAcc[kvRow * vDim + c] += prob * dOut[oi + c]!;
          }
          const dScore = d.scale * prob * (dProb - delta);
          const ki = viewIndex(k, b, s, kvHead);
          for (let c = 0; c < qkDim; c++) {
            dqRow[c] += dScore * k.data[ki + c]!;
            dkAcc[kvRow * qkDim + c] += dScore * q.data[qi + c]!;
          }
        }
        const dqBase = ((b * queryLen + t) * numHeads + h) * qkDim;
        for (let c = 0; c < qkDim; c++) dq[dqBase + c] = dqRow[c]!;
      }
    }
  }
  for (let i = 0; i < dkAcc.length; i++) dk[i] = dkAcc[i]!;
  for (let i = 0; i < dvAcc.length; i++) dv[i] = dvAcc[i]!;
}

// ---- SwiGLU --------------------------------------------------------------------------------------

export function swigluForward(
  gate: FloatStore, // (n)
  up: FloatStore, // (n)
  out: FloatStore, // (n)
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    out[i] = g * sigmoid(g) * up[i]!;
  }
}

export function swigluBackward(
  gate: FloatStore, // (n)
  up: FloatStore, // (n)
  dOut: FloatStore, // (n)
  dGate: FloatStore, // (n)
  dUp: FloatStore, // (n)
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    const u = up[i]!;
    const dy = dOut[i]!;
    const s = sigmoid(g);
    dGate[i] = dy * u * s * (1 + g * (1 - s));
    dUp[i] = dy * g * s;
  }
}

// ---- embedding -----------------------------------------------------------------------------------

export function embeddingForward(
  ids: Int32Array, // (n)
  table: FloatStore, // (vocab, dim)
  out: FloatStore, // (n, dim)
  n: number,
  dim: number,
): void {
  for (let i = 0; i < n; i++) {
    const row = ids[i]! * dim;
    for (let c = 0; c < dim; c++) out[i * dim + c] = table[row + c]!;
  }
}

export function embeddingBackward(
  ids: Int32Array, // (n)
  dOut: FloatStore, // (n, dim)
  dTable: FloatStore, // (vocab, dim)
  n: number,
  dim: number,
): void {
  for (let i = 0; i < n; i++) {
    const row = ids[i]! * dim;
    for (let c = 0; c < dim; c++) dTable[row + c] = dTable[row + c]! + dOut[i * dim + c]!;
  }
}

// ---- losses ----------------------------------------------------------------------------------------

/** Fills z with logits[r]/τ and returns log Σ exp(z) (max-subtracted). */
function scaledRowLogSumExp(
  logits: FloatStore, // (N, V)
  r: number,
  vocab: number,
  temperature: number,
  z: Float64Array, // (V) scratch, written
): number {
  let max = -Infinity;
  for (let j = 0; j < vocab; j++) {
    z[j] = logits[r * vocab + j]! / temperature;
    max = Math.max(max, z[j]!);
  }
  let sum = 0;
  for (let j = 0; j < vocab; j++) sum += Math.exp(z[j]! - max);
  return max + Math.log(sum);
}

export interface LossParams {
  rows: number;
  vocab: number;
  temperature: number;
}

/** loss[r] = w_r·(lse(z) − z_label); grad = (w_r/τ)·(softmax(z) − onehot(label)); label < 0 gives zeros. */
export function crossEntropyKernel(
  p: LossParams,
  logits: FloatStore, // (N, V)
  labels: Int32Array, // (N)
  weights: FloatStore | null, // (N)
  loss: FloatStore, // (N)
  grad: FloatStore | null, // (N, V)
): void {
  const z = new Float64Array(p.vocab);
  for (let r = 0; r < p.rows; r++) {
    const label = labels[r]!;
    const base = r * p.vocab;
    if (label < 0) {
      loss[r] = 0;
      if (grad !== null) for (let j = 0; j < p.vocab; j++) grad[base + j] = 0;
      continue;
    }
    const w = weights === null ? 1 : weights[r]!;
    const lse = scaledRowLogSumExp(logits, r, p.vocab, p.temperature, z);
    loss[r] = w * (lse - z[label]!);
    if (grad !== null) {
      for (let j = 0; j < p.vocab; j++) grad[base + j] = (w / p.temperature) * (Math.exp(z[j]! - lse) - (j === label ? 1 : 0));
    }
  }
}

/** Dense teacher: p = softmax(teacher/τ); loss = w·Σ p (log p − log q); grad = (w/τ)(q − p). Terms with p = 0 count 0. */
export function klDivDenseKernel(
  p: LossParams,
  logits: FloatStore, // (N, V)
  teacherLogits: FloatStore, // (N, V)
  weights: FloatStore | null, // (N)
  loss: FloatStore, // (N)
  grad: FloatStore | null, // (N, V)
): void {
  const z = new Float64Array(p.vocab);
  const zt = new Float64Array(p.vocab);
  for (let r = 0; r < p.rows; r++) {
    const w = weights === null ? 1 : weights[r]!;
    const lse = scaledRowLogSumExp(logits, r, p.vocab, p.temperature, z);
    const lseTeacher = scaledRowLogSumExp(teacherLogits, r, p.vocab, p.temperature, zt);
    let sum = 0;
    for (let j = 0; j < p.vocab; j++) {
      const logP = zt[j]! - lseTeacher;
      const prob = Math.exp(logP);
      if (prob > 0) sum += prob * (logP - (z[j]! - lse));
    }
    loss[r] = w * sum;
    if (grad !== null) {
      const base = r * p.vocab;
      for (let j = 0; j < p.vocab; j++) grad[base + j] = (w / p.temperature) * (Math.exp(z[j]! - lse) - Math.exp(zt[j]! - lseTeacher));
    }
  }
}

/**
 * Top-k teacher, unnormalised: p_k = exp(lp_k) at ids j_k; loss = w·Σ_k p_k (lp_k − log q_{j_k});
 * grad_j = (w/τ)(q_j·Σ_k p_k − Σ_{k: j_k = j} p_k). Terms with p_k = 0 count 0.
 */
export function klDivTopKKernel(
  p: LossParams,
  topK: number,
  logits: FloatStore, // (N, V)
  teacherIndices: Int32Array, // (N, K)
  teacherLogprobs: FloatStore, // (N, K)
  weights: FloatStore | null, // (N)
  loss: FloatStore, // (N)
  grad: FloatStore | null, // (N, V)
): void {
  const z = new Float64Array(p.vocab);
  const gradRow = new Float64Array(p.vocab);
  for (let r = 0; r < p.rows; r++) {
    const w = weights === null ? 1 : weights[r]!;
    const lse = scaledRowLogSumExp(logits, r, p.vocab, p.temperature, z);
    let sum = 0;
    let massTotal = 0;
    gradRow.fill(0);
    for (let kk = 0; kk < topK; kk++) {
      const j = teacherIndices[r * topK + kk]!;
      const logP = teacherLogprobs[r * topK + kk]!;
      const prob = Math.exp(logP);
      if (prob === 0) continue;
      sum += prob * (logP - (z[j]! - lse));
      massTotal += prob;
      gradRow[j] -= prob;
    }
    loss[r] = w * sum;
    if (grad !== null) {
      const base = r * p.vocab;
      for (let j = 0; j < p.vocab; j++) grad[base + j] = (w / p.temperature) * (Math.exp(z[j]! - lse) * massTotal + gradRow[j]!);
    }
  }
}

// ---- optimizer -------------------------------------------------------------------------------------

export interface AdamWParams {
  n: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  biasCorrection1: number;
  biasCorrection2: number;
  gradScale: number;
}

export function adamwKernel(
  p: AdamWParams,
  param: FloatStore, // (n)
  grad: FloatStore, // (n)
  m: FloatStore, // (n)
  v: FloatStore, // (n)
): void {
  for (let i = 0; i < p.n; i++) {
    const g = grad[i]! * p.gradScale;
    const mi = p.beta1 * m[i]! + (1 - p.beta1) * g;
    const vi = p.beta2 * v[i]! + (1 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const x = param[i]!;
    param[i] = x - p.lr * p.weightDecay * x - (p.lr * (mi / p.biasCorrection1)) / (Math.sqrt(vi / p.biasCorrection2) + p.eps);
  }
}
