import { Rng, type AttentionConverter, type AttentionLayerConfig, type AttentionLayerWeights, type ConvertedAttention, type MlaConversionOptions } from "@ecomla/core";
import { roundUp } from "./linalg.js";
import { mlaLayout } from "./layout.js";

/** PyTorch's default Linear init, U(−1/√in, 1/√in): what the seed's MLA layers hold without SVD init. */
function kaimingUniform(rng: Rng, out: number, inFeatures: number): { shape: number[]; data: Float32Array } {
  const bound = 1 / Math.sqrt(inFeatures);
  return { shape: [out, inFeatures], data: rng.uniformArray(out * inFeatures, -bound, bound) };
}

/** Same shapes as the SVD converter, random weights (o_proj still kept): the init ablation. */
export class RandomMlaConverter implements AttentionConverter {
  readonly name = "random";

  async convert(config: AttentionLayerConfig, weights: AttentionLayerWeights, options: MlaConversionOptions): Promise<ConvertedAttention> {
    const { d, heads, headDim, nope, rope, divisor } = mlaLayout(config, options, this.name);
    const rng = new Rng(((options.seed ?? 0) * 1000003 + config.layerIndex) >>> 0);
    const kvRank = roundUp(options.kvLoraRank, divisor);
    const qRank = options.qLoraRank === null ? null : roundUp(options.qLoraRank, divisor);
    const w: ConvertedAttention["weights"] = {};
    if (qRank === null) w["q_proj"] = kaimingUniform(rng, heads * (nope + rope), d);
    else {
      w["q_a_proj"] = kaimingUniform(rng, qRank, d);
      w["q_b_proj"] = kaimingUniform(rng, heads * (nope + rope), qRank);
    }
    w["kv_a_proj_with_mqa"] = kaimingUniform(rng, kvRank + rope, d);
    w["kv_b_proj"] = kaimingUniform(rng, heads * (nope + headDim), kvRank);
    w["out_proj"] = { shape: [...weights.o_proj.shape], data: weights.o_proj.data };
    return {
      kind: "mla",
      config: { q_rank: qRank, kv_rank: kvRank, qk_rope_head_dim: rope, qk_nope_head_dim: nope, v_head_dim: headDim },
      weights: w,
      report: { kv_rank: kvRank, ...(qRank !== null ? { q_rank: qRank } : {}), init: "kaiming-uniform" },
    };
  }
}
