import type { BackendCapabilities } from "./backend.js";
import type { HostTensor } from "./host.js";

/** What a converter needs to know about the model around the attention layer it converts. */
export interface AttentionLayerConfig {
  /** d */
  hiddenSize: number;
  /** n_h */
  numHeads: number;
  /** n_kv */
  numKvHeads: number;
  /** d_h */
  headDim: number;
  /** RoPE base θ. */
  ropeTheta: number;
  /** The base model's rope_scaling entry, as in config.json (or null). */
  ropeScaling: Record<string, unknown> | null;
  /** Index of this layer and the model's layer count (for first/last-layer rules). */
  layerIndex: number;
  numLayers: number;
}

/** One attention layer's weights in HF Llama names, [out, in] as in PyTorch. */
export interface AttentionLayerWeights {
  /** (n_h·d_h, d) */
  q_proj: HostTensor;
  /** (n_kv·d_h, d) */
  k_proj: HostTensor;
  /** (n_kv·d_h, d) */
  v_proj: HostTensor;
  /** (d, n_h·d_h) */
  o_proj: HostTensor;
}

/** A converted attention layer: its kind, the config keys it needs, its weights and a report. */
export interface ConvertedAttention {
  /** Attention kind of the new layer, e.g. "mla". */
  kind: string;
  /** Per-layer config values (e.g. kv_lora_rank, q_lora_rank, qk_rope_head_dim …). */
  config: Record<string, unknown>;
  /** New weights by name, [out, in]. */
  weights: Record<string, HostTensor>;
  /** What the converter did: ranks chosen, energy kept, anything worth printing. */
  report: Record<string, number | string | boolean>;
}

/** Options of the MLA converters (X-EcoMLA names in the comments). */
export interface MlaConversionOptions {
  /** r_kv (kv_lora_rank): fixed KV latent rank. */
  kvLoraRank: number;
  /** r_q (q_lora_rank): fixed query rank; null keeps a full-rank q projection. */
  qLoraRank: number | null;
  /** d_rope (qk_rope_head_dim) */
  qkRopeHeadDim: number;
  /** d_nope (qk_nope_head_dim) */
  qkNopeHeadDim: number;
  /** d_v (v_head_dim); must equal the base head dim (o_proj is kept). */
  vHeadDim: number;
  /** δ for the KV rank: keep the singular values whose cumulative energy stays ≤ δ (kv_energy_ratio). */
  kvEnergy?: number;
  /** δ for the query rank (q_energy_ratio). */
  qEnergy?: number;
  /** Ranks are rounded up to a multiple of this (qkv_rank_divisor, default 8). */
  rankDivisor?: number;
  /** Use the fixed ranks even with energies set (the seed: first and last layer). */
  fixedRank?: boolean;
  /** Seed of random initialisations. */
  seed?: number;
  /** partial-rope: which RoPE frequencies to keep. */
  ropeSelection?: "high" | "low" | "uniform" | "norm";
}

/** Host-side helpers a converter may use (e.g. the backend's SVD). */
export interface ConversionContext {
  capabilities: BackendCapabilities;
}

/**
 * Turns one attention layer into another kind (MHA/GQA → MLA). Pure host-side and deterministic:
 * the same input gives the same output.
 */
export interface AttentionConverter {
  /** Registry name, e.g. "xecomla". */
  readonly name: string;
  convert(
    config: AttentionLayerConfig,
    weights: AttentionLayerWeights,
    options: MlaConversionOptions,
    context: ConversionContext,
  ): Promise<ConvertedAttention>;
  /**
   * Optional: the singular values the KV rank is chosen from (descending), so a model-level
   * driver can spread a KV-cache budget across layers by energy before converting.
   */
  kvSpectrum?(config: AttentionLayerConfig, weights: AttentionLayerWeights, options: MlaConversionOptions, context: ConversionContext): Promise<Float64Array>;
}
