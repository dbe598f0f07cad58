import type { AttentionConverter, AttentionLayerConfig, AttentionLayerWeights, ConversionContext, ConvertedAttention, MlaConversionOptions } from "@ecomla/core";
import { checkRank, energyKept, energyRank, f64, host, leftColumns, rankedStackSvd, roundUp, sigmaVt, stackSpectrum, svd, vstack } from "./linalg.js";
import { headRows, kvStack, mlaLayout } from "./layout.js";

/**
 * The seed's SVD initialisation (X-EcoMLA): Σ folded into the down projections, W_k/W_v
 * repeat-interleaved to n_h heads and jointly factorised, the RoPE key taken from the head-averaged
 * W_k, per-head row selection [first d_nope, last d_rope]; o_proj kept as out_proj.
 */
export class XEcoMlaConverter implements AttentionConverter {
  readonly name = "xecomla";

  async kvSpectrum(config: AttentionLayerConfig, weights: AttentionLayerWeights, options: MlaConversionOptions, context: ConversionContext): Promise<Float64Array> {
    const l = mlaLayout(config, options, this.name);
    return stackSpectrum(kvStack(weights, l).stack, l.d, context);
  }

  async convert(config: AttentionLayerConfig, weights: AttentionLayerWeights, options: MlaConversionOptions, context: ConversionContext): Promise<ConvertedAttention> {
    const l = mlaLayout(config, options, this.name);
    const { d, heads, headDim, nope, rope, divisor } = l;
    const dynamic = !options.fixedRank;
    const report: Record<string, number | string | boolean> = {};
    const outWeights: ConvertedAttention["weights"] = {};

    // Query: W_q = U S Vᵀ; q_a = diag(S) Vᵀ, q_b = U per head [first d_nope, last d_rope rows].
    let qRank: number | null = null;
    const qRowParts: [number, number][] = [[0, nope], [headDim - rope, rope]];
    if (options.qLoraRank === null) {
      outWeights["q_proj"] = host(headRows(f64(weights.q_proj), heads, headDim, d, qRowParts), [heads * (nope + rope), d]);
    } else {
      const m = heads * headDim;
      const q = await svd(weights.q_proj.data, m, d, context);
      qRank = dynamic && options.qEnergy !== undefined ? energyRank(q.s, options.qEnergy, divisor) : roundUp(options.qLoraRank, divisor);
      checkRank(`${this.name} layer ${config.layerIndex} q_lora_rank`, qRank, m, d);
      outWeights["q_a_proj"] = host(sigmaVt(q.s, q.vt, d, qRank), [qRank, d]);
      const u = leftColumns(q.u, m, q.s.length, qRank);
      outWeights["q_b_proj"] = host(headRows(u, heads, headDim, qRank, qRowParts), [heads * (nope + rope), qRank]);
      report["q_rank"] = qRank;
      report["q_energy_kept"] = +energyKept(q.s, qRank).toFixed(6);
    }

    // Keys/values: joint SVD of [K; V] (repeat-interleaved); kv_a = [diag(S) Vᵀ ; k_avg's last d_rope rows].
    const { stack, kAvg } = kvStack(weights, l);
    const m = 2 * heads * headDim;
    // On the distinct rows of the stack: the same factors as the seed's SVD of the whole stack.
    const kv = await rankedStackSvd(stack, d, context, (s) => (dynamic && options.kvEnergy !== undefined ? energyRank(s, options.kvEnergy, divisor) : roundUp(options.kvLoraRank, divisor)));
    const kvRank = kv.rank;
    checkRank(`${this.name} layer ${config.layerIndex} kv_lora_rank`, kvRank, m, d);
    outWeights["kv_a_proj_with_mqa"] = host(vstack([sigmaVt(kv.s, kv.vt, d, kvRank), kAvg.slice((headDim - rope) * d, headDim * d)]), [kvRank + rope, d]);
    // kv_b per head: [first d_nope rows of its U_k block ; all d_v rows of its U_v block].
    const u = kv.u; // m × kvRank
    const kvB = new Float64Array(heads * (nope + headDim) * kvRank);
    let at = 0;
    for (let h = 0; h < heads; h++) {
      kvB.set(u.subarray(h * headDim * kvRank, (h * headDim + nope) * kvRank), at);
      at += nope * kvRank;
      kvB.set(u.subarray((heads + h) * headDim * kvRank, (heads + h + 1) * headDim * kvRank), at);
      at += headDim * kvRank;
    }
    outWeights["kv_b_proj"] = host(kvB, [heads * (nope + headDim), kvRank]);
    outWeights["out_proj"] = { shape: [...weights.o_proj.shape], data: weights.o_proj.data };
    report["kv_rank"] = kvRank;
    report["kv_energy_kept"] = +energyKept(kv.s, kvRank).toFixed(6);

    return {
      kind: "mla",
      config: { q_rank: qRank, kv_rank: kvRank, qk_rope_head_dim: rope, qk_nope_head_dim: nope, v_head_dim: headDim },
      weights: outWeights,
      report,
    };
  }
}
