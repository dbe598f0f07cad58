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
  config: Record<string, number | string | boolean>;
  /** New weights by name, [out, in]. */
  weights: Record<string, HostTensor>;
  /** What the converter did: ranks chosen, energy kept, anything worth printing. */
  report: Record<string, number | string | boolean>;
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
    options: Record<string, unknown>,
    context: ConversionContext,
  ): Promise<ConvertedAttention>;
}
