import { EcomlaError, type AttentionConverter, type AttentionLayerConfig, type AttentionLayerWeights, type ConversionContext, type ConvertedAttention, type MlaConversionOptions } from "@ecomla/core";
import { checkRank, energyKept, energyRank, host, leftColumns, rankedStackSvd, roundUp, sigmaVt, stackSpectrum, svd } from "./linalg.js";
import { mlaLayout, type MlaLayout } from "./layout.js";

/**
 * The RoPE frequencies (indices of head_dim/2) a layer keeps, by strategy (MHA2MLA's): `high` the
 * fastest-rotating, `low` the slowest, `uniform` evenly spaced, `norm` those whose query and key
 * weights carry the most 2-norm summed over heads (a data-free stand-in for MHA2MLA's activation
 * norms; one choice per layer since the MLA key's RoPE part is shared by all heads).
 */
export function selectFrequencies(strategy: "high" | "low" | "uniform" | "norm", count: number, weights: AttentionLayerWeights, l: MlaLayout): number[] {
  const half = l.headDim / 2;
  if (count > half) throw new EcomlaError(`partial-rope: ${count} frequencies asked, a head has ${half}`);
  if (strategy === "high") return Array.from({ length: count }, (_, i) => i);
  if (strategy === "low") return Array.from({ length: count }, (_, i) => half - count + i);
  if (strategy === "uniform") return Array.from({ length: count }, (_, i) => Math.floor((i * half) / count));
  // Norm of rows (i, i + half) of a head block, over every head.
  const pairNorm = (w: Float32Array, heads: number, i: number) => {
    let total = 0;
    for (let h = 0; h < heads; h++) {
      let s = 0;
      for (const r of [i, i + half]) for (let c = 0; c < l.d; c++) s += w[(h * l.headDim + r) * l.d + c]! ** 2;
      total += Math.sqrt(s);
    }
    return total / heads;
  };
  const score = Array.from({ length: half }, (_, i) => pairNorm(weights.q_proj.data, l.heads, i) * pairNorm(weights.k_proj.data, l.kvHeads, i));
  return Array.from(score.keys()).sort((a, b) => score[b]! - score[a]! || a - b).slice(0, count).sort((a, b) => a - b);
}

/**
 * Partial-RoPE initialisation (after MHA2MLA): each head keeps the RoPE frequencies chosen by a
 * strategy, rotating with the base model's own frequencies (so positions mean what they meant to
 * the teacher), while every other key dimension and the values go through one joint SVD. Query:
 * W_q = U S Vᵀ with U's rows re-ordered per head to [non-RoPE dims ; kept RoPE pairs]. The RoPE
 * key is the head average of W_k's kept pairs (one k_pe shared by all heads, as in the seed's MLA).
 */
export class PartialRopeConverter implements AttentionConverter {
  readonly name = "partial-rope";

  private layout(config: AttentionLayerConfig, weights: AttentionLayerWeights, options: MlaConversionOptions) {
    const l = mlaLayout(config, options, this.name);
    if (l.nope + l.rope !== l.headDim) {
      throw new EcomlaError(`${this.name} (layer ${config.layerIndex}): qk_nope_head_dim + qk_rope_head_dim must equal the head dim ${l.headDim} (every dimension is kept), found ${l.nope} + ${l.rope}`);
    }
    const picks = selectFrequencies(options.ropeSelection ?? "high", l.rope / 2, weights, l);
    const half = l.headDim / 2;
    // Rows of a head: the kept pairs in interleaved order, and the rest in their original order.
    const ropeRows = picks.flatMap((f) => [f, f + half]);
    const keep = new Set(ropeRows);
    const nopeRows = Array.from({ length: l.headDim }, (_, r) => r).filter((r) => !keep.has(r));
    return { l, picks, ropeRows, nopeRows };
  }

  /** [K_nope; V] repeat-interleaved to n_h heads ((n_h·d_nope + n_h·d_h) × d, kept as its distinct rows), and the head-averaged RoPE rows of W_k. */
  private kvStack(weights: AttentionLayerWeights, l: MlaLayout, ropeRows: number[], nopeRows: number[]) {
    const { d, heads, kvHeads, headDim } = l;
    const group = heads / kvHeads;
    const k = weights.k_proj.data;
    const v = weights.v_proj.data;
    const nope = nopeRows.length;
    // Distinct rows: [each key head's non-RoPE rows ; W_v].
    const distinct = new Float32Array((kvHeads * nope + kvHeads * headDim) * d);
    for (let g = 0; g < kvHeads; g++) nopeRows.forEach((r, j) => distinct.set(k.subarray((g * headDim + r) * d, (g * headDim + r + 1) * d), (g * nope + j) * d));
    distinct.set(v.subarray(0, kvHeads * headDim * d), kvHeads * nope * d);
    const rows = heads * nope + heads * headDim;
    const source = new Int32Array(rows);
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      for (let j = 0; j < nope; j++) source[h * nope + j] = g * nope + j;
      for (let r = 0; r < headDim; r++) source[heads * nope + h * headDim + r] = kvHeads * nope + g * headDim + r;
    }
    const kPe = new Float64Array(ropeRows.length * d);
    ropeRows.forEach((r, j) => {
      for (let g = 0; g < kvHeads; g++) for (let c = 0; c < d; c++) kPe[j * d + c]! += k[(g * headDim + r) * d + c]! / kvHeads;
    });
    return { stack: { distinct, k: kvHeads * (nope + headDim), source }, rows, kPe };
  }

  async kvSpectrum(config: AttentionLayerConfig, weights: AttentionLayerWeights, options: MlaConversionOptions, context: ConversionContext): Promise<Float64Array> {
    const { l, ropeRows, nopeRows } = this.layout(config, weights, options);
    const kv = this.kvStack(weights, l, ropeRows, nopeRows);
    return stackSpectrum(kv.stack, l.d, context);
  }

  async convert(config: AttentionLayerConfig, weights: AttentionLayerWeights, options: MlaConversionOptions, context: ConversionContext): Promise<ConvertedAttention> {
    const { l, picks, ropeRows, nopeRows } = this.layout(config, weights, options);
    const { d, heads, headDim, divisor } = l;
    const dynamic = !options.fixedRank;
    const w: ConvertedAttention["weights"] = {};
    const report: Record<string, number | string | boolean> = { rope_frequencies: picks.join(",") };
    const order = [...nopeRows, ...ropeRows]; // per head: [d_nope ; d_rope]
    const reorder = (u: Float64Array | Float32Array, cols: number) => {
      const out = new Float64Array(heads * headDim * cols);
      for (let h = 0; h < heads; h++) order.forEach((r, j) => out.set(u.subarray((h * headDim + r) * cols, (h * headDim + r + 1) * cols), (h * headDim + j) * cols));
      return out;
    };
    let qRank: number | null = null;
    if (options.qLoraRank === null) {
      w["q_proj"] = host(reorder(weights.q_proj.data, d), [heads * headDim, d]);
    } else {
      const m = heads * headDim;
      const q = await svd(weights.q_proj.data, m, d, context);
      qRank = dynamic && options.qEnergy !== undefined ? energyRank(q.s, options.qEnergy, divisor) : roundUp(options.qLoraRank, divisor);
      checkRank(`${this.name} layer ${config.layerIndex} q_lora_rank`, qRank, m, d);
      w["q_a_proj"] = host(sigmaVt(q.s, q.vt, d, qRank), [qRank, d]);
      w["q_b_proj"] = host(reorder(leftColumns(q.u, m, q.s.length, qRank), qRank), [m, qRank]);
      report["q_rank"] = qRank;
      report["q_energy_kept"] = +energyKept(q.s, qRank).toFixed(6);
    }
    const kv = this.kvStack(weights, l, ropeRows, nopeRows);
    const s = await rankedStackSvd(kv.stack, d, context, (sv) => (dynamic && options.kvEnergy !== undefined ? energyRank(sv, options.kvEnergy, divisor) : roundUp(options.kvLoraRank, divisor)));
    const kvRank = s.rank;
    checkRank(`${this.name} layer ${config.layerIndex} kv_lora_rank`, kvRank, kv.rows, d);
    const kvA = new Float64Array((kvRank + ropeRows.length) * d);
    kvA.set(sigmaVt(s.s, s.vt, d, kvRank));
    kvA.set(kv.kPe, kvRank * d);
    w["kv_a_proj_with_mqa"] = host(kvA, [kvRank + ropeRows.length, d]);
    // kv_b per head: [its d_nope key rows ; its d_v value rows] of U.
    const u = s.u; // rows × kvRank
    const nope = nopeRows.length;
    const kvB = new Float64Array(heads * (nope + headDim) * kvRank);
    for (let h = 0; h < heads; h++) {
      kvB.set(u.subarray(h * nope * kvRank, (h + 1) * nope * kvRank), h * (nope + headDim) * kvRank);
      kvB.set(u.subarray((heads * nope + h * headDim) * kvRank, (heads * nope + (h + 1) * headDim) * kvRank), (h * (nope + headDim) + nope) * kvRank);
    }
    w["kv_b_proj"] = host(kvB, [heads * (nope + headDim), kvRank]);
    w["out_proj"] = { shape: [...weights.o_proj.shape], data: weights.o_proj.data };
    report["kv_rank"] = kvRank;
    report["kv_energy_kept"] = +energyKept(s.s, kvRank).toFixed(6);
    return {
      kind: "mla",
      config: { q_rank: qRank, kv_rank: kvRank, qk_rope_head_dim: ropeRows.length, qk_nope_head_dim: nope, v_head_dim: headDim, rope_frequency_indices: picks },
      weights: w,
      report,
    };
  }
}
