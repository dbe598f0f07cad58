// What every MLA converter shares: option checks and the seed's per-head row layout.
import { EcomlaError, type AttentionLayerConfig, type AttentionLayerWeights, type MlaConversionOptions } from "@ecomla/core";
import { rows, type RowStack } from "./linalg.js";

/** Options after validation, with the layer's sizes. */
export interface MlaLayout {
  d: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  nope: number;
  rope: number;
  vDim: number;
  divisor: number;
}

/** Validate the options against the layer (errors name the option, expected and found). */
export function mlaLayout(config: AttentionLayerConfig, options: MlaConversionOptions, converter: string): MlaLayout {
  const { hiddenSize: d, numHeads: heads, numKvHeads: kvHeads, headDim } = config;
  const { qkNopeHeadDim: nope, qkRopeHeadDim: rope, vHeadDim: vDim } = options;
  const divisor = options.rankDivisor ?? 8;
  const where = `${converter} (layer ${config.layerIndex})`;
  if (!Number.isInteger(divisor) || divisor < 1) throw new EcomlaError(`${where}: rank divisor must be a positive integer, found ${divisor}`);
  if (!Number.isInteger(rope) || rope < 0 || rope % 2 !== 0) throw new EcomlaError(`${where}: qk_rope_head_dim must be an even integer ≥ 0, found ${rope}`);
  if (!Number.isInteger(nope) || nope < 0) throw new EcomlaError(`${where}: qk_nope_head_dim must be an integer ≥ 0, found ${nope}`);
  if (nope + rope > headDim) throw new EcomlaError(`${where}: qk_nope_head_dim + qk_rope_head_dim = ${nope + rope} exceeds the head dim ${headDim}`);
  if (vDim !== headDim) throw new EcomlaError(`${where}: v_head_dim must equal the head dim ${headDim} (o_proj is kept), found ${vDim}`);
  if (heads % kvHeads !== 0) throw new EcomlaError(`${where}: ${kvHeads} key/value heads do not divide ${heads} heads`);
  return { d, heads, kvHeads, headDim, nope, rope, vDim, divisor };
}

/**
 * The seed's key/value stack: W_k and W_v repeat-interleaved from n_kv to n_h heads and stacked
 * [K; V] ((2·n_h·d_h) × d) — kept as its 2·n_kv·d_h distinct rows ([W_k; W_v]) and which of them
 * each stack row is — plus W_k averaged over its n_kv heads (d_h × d).
 */
export function kvStack(weights: AttentionLayerWeights, l: MlaLayout): { stack: RowStack; kAvg: Float64Array } {
  const k = weights.k_proj.data;
  const v = weights.v_proj.data;
  const { d, heads, kvHeads, headDim } = l;
  const group = heads / kvHeads;
  const block = headDim * d;
  // float32, like the seed's weights: the SVD then runs in single precision.
  const distinct = new Float32Array(2 * kvHeads * block);
  distinct.set(k.subarray(0, kvHeads * block));
  distinct.set(v.subarray(0, kvHeads * block), kvHeads * block);
  const source = new Int32Array(2 * heads * headDim);
  for (let h = 0; h < heads; h++) {
    const src = Math.floor(h / group);
    for (let r = 0; r < headDim; r++) {
      source[h * headDim + r] = src * headDim + r;
      source[(heads + h) * headDim + r] = (kvHeads + src) * headDim + r;
    }
  }
  const kAvg = new Float64Array(block);
  for (let g = 0; g < kvHeads; g++) for (let i = 0; i < block; i++) kAvg[i]! += k[g * block + i]! / kvHeads;
  return { stack: { distinct, k: 2 * kvHeads * headDim, source }, kAvg };
}

/** Per head, rows [start, start+count) of a (heads·headDim) × n matrix, stacked head by head. */
export function headRows(a: Float64Array, heads: number, headDim: number, n: number, parts: [number, number][]): Float64Array {
  const per = parts.reduce((s, [, c]) => s + c, 0);
  const out = new Float64Array(heads * per * n);
  let at = 0;
  for (let h = 0; h < heads; h++) {
    for (const [start, count] of parts) {
      out.set(rows(a, n, h * headDim + start, count), at);
      at += count * n;
    }
  }
  return out;
}
