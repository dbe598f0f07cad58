import { ShapeError } from "../errors.js";
import type { TensorBackend } from "../interfaces/backend.js";
import type { Rng } from "../random.js";
import { keep } from "../tensor/engine.js";
import { Tensor } from "../tensor/tensor.js";
import * as ops from "../tensor/ops/index.js";
import { Module, normalParam } from "./module.js";
import { LayerKVCache, type LayerCache } from "./layer-cache.js";

/** Default init std (HF's initializer_range). */
const INIT_STD = 0.02;

/** y = x Wᵀ (+ b); weight (out, in) as in PyTorch. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(backend: TensorBackend, readonly inFeatures: number, readonly outFeatures: number, rng: Rng | null, options: { bias?: boolean; std?: number } = {}) {
    super(backend);
    this.weight = this.param("weight", normalParam(backend, [outFeatures, inFeatures], rng, options.std ?? INIT_STD));
    this.bias = options.bias ? this.param("bias", Tensor.zeros(backend, [outFeatures])) : null;
  }
  /** x (…, in) → (…, out) */
  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias ?? undefined);
  }
}

/** Token embedding table (vocab, dim). */
export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(backend: TensorBackend, readonly vocabSize: number, readonly dim: number, rng: Rng | null, options: { std?: number } = {}) {
    super(backend);
    this.weight = this.param("weight", normalParam(backend, [vocabSize, dim], rng, options.std ?? INIT_STD));
  }
  /** ids (…) i32 → (…, dim) */
  forward(ids: Tensor): Tensor {
    return ops.embedding(ids, this.weight);
  }
}

/** RMSNorm with a learned scale, initialised to ones. */
export class RMSNorm extends Module {
  readonly weight: Tensor;
  constructor(backend: TensorBackend, readonly dim: number, readonly eps = 1e-6) {
    super(backend);
    this.weight = this.param("weight", Tensor.full(backend, [dim], 1));
  }
  /** x (…, dim) → (…, dim) */
  forward(x: Tensor): Tensor {
    return ops.rmsNorm(x, this.weight, this.eps);
  }
}

/** Inverse frequencies θ^(−2i/d) of plain RoPE, i < d/2. Scaled variants (llama3, YaRN) give their own. */
export function ropeInverseFrequencies(headDim: number, theta: number): Float64Array {
  const inv = new Float64Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / headDim);
  return inv;
}

/**
 * Rotary position embedding: cos/sin tables (maxPositions, headDim/2) built once on the host
 * from inverse frequencies, applied in the rotate-half (HF Llama) or interleaved layout.
 */
export class RotaryEmbedding {
  readonly tables: ops.RopeTables;
  constructor(
    readonly backend: TensorBackend,
    readonly headDim: number,
    readonly maxPositions: number,
    inverseFrequencies: Float64Array,
    readonly options: { layout?: "half" | "interleaved"; scale?: number } = {},
  ) {
    if (headDim % 2 !== 0 || inverseFrequencies.length !== headDim / 2) {
      throw new ShapeError(`RotaryEmbedding: head dim ${headDim} must be even with ${headDim / 2} frequencies, got ${inverseFrequencies.length}`);
    }
    const half = headDim / 2;
    const cos = new Float32Array(maxPositions * half);
    const sin = new Float32Array(maxPositions * half);
    for (let p = 0; p < maxPositions; p++) {
      for (let i = 0; i < half; i++) {
        // float32 angles, as transformers computes them (inv_freq ⊗ positions in float32).
        const a = Math.fround(p * inverseFrequencies[i]!);
        cos[p * half + i] = Math.cos(a);
        sin[p * half + i] = Math.sin(a);
      }
    }
    this.tables = { cos: keep(Tensor.from(backend, cos, [maxPositions, half])), sin: keep(Tensor.from(backend, sin, [maxPositions, half])) };
  }
  /** x (B, T, H, headDim) → same, rotated at positions posOffset … posOffset+T−1. */
  forward(x: Tensor, posOffset = 0): Tensor {
    return ops.rope(x, this.tables, { layout: this.options.layout, scale: this.options.scale, posOffset });
  }
  dispose(): void {
    this.tables.cos.dispose();
    this.tables.sin.dispose();
  }
}

/** Llama's MLP: down(silu(gate(x)) ⊙ up(x)). */
export class SwiGLUMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  constructor(backend: TensorBackend, hidden: number, intermediate: number, rng: Rng | null) {
    super(backend);
    this.gate_proj = this.child("gate_proj", new Linear(backend, hidden, intermediate, rng));
    this.up_proj = this.child("up_proj", new Linear(backend, hidden, intermediate, rng));
    this.down_proj = this.child("down_proj", new Linear(backend, intermediate, hidden, rng));
  }
  /** x (…, hidden) → (…, hidden) */
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(ops.swiglu(this.gate_proj.forward(x), this.up_proj.forward(x)));
  }
}

/** Shape of a GQA attention layer. */
export interface AttentionShape {
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * The attention of a decoder block: Llama's GQA attention and MLA both implement it, so a model
 * can choose per layer (hybrids).
 */
export interface AttentionLayer extends Module {
  /** x (B, T, hidden) → (B, T, hidden); with a cache the T tokens continue the cached positions. */
  forward(x: Tensor, cache?: LayerCache): Tensor;
  /** An empty cache for `batch` sequences of up to maxLength positions. */
  createCache(batch: number, maxLength: number): LayerCache;
  /** Elements cached per token (K and V, or MLA's c_kv ‖ k_pe). */
  cachedElementsPerToken(): number;
}

/** Causal self-attention with grouped-query heads and RoPE (HF Llama layout and names). */
export class CausalSelfAttention extends Module implements AttentionLayer {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  constructor(backend: TensorBackend, readonly shape: AttentionShape, rng: Rng | null, readonly rotary: RotaryEmbedding) {
    super(backend);
    const { hiddenSize: d, numHeads: h, numKvHeads: kv, headDim: hd } = shape;
    if (h % kv !== 0) throw new ShapeError(`CausalSelfAttention: ${kv} key/value heads do not divide ${h} heads`);
    this.q_proj = this.child("q_proj", new Linear(backend, d, h * hd, rng));
    this.k_proj = this.child("k_proj", new Linear(backend, d, kv * hd, rng));
    this.v_proj = this.child("v_proj", new Linear(backend, d, kv * hd, rng));
    this.o_proj = this.child("o_proj", new Linear(backend, h * hd, d, rng));
  }
  /**
   * x (B, T, hidden) → (B, T, hidden). With a cache, the T tokens continue the cached positions
   * (prefill, then decode one token at a time); without, they are the whole sequence (training).
   */
  forward(x: Tensor, cache?: LayerCache): Tensor {
    const [b, t] = x.shape as [number, number, number];
    const { numHeads: h, numKvHeads: kv, headDim: hd } = this.shape;
    const pos = cache?.length ?? 0;
    const q = this.rotary.forward(ops.reshape(this.q_proj.forward(x), [b, t, h, hd]), pos);
    const k = this.rotary.forward(ops.reshape(this.k_proj.forward(x), [b, t, kv, hd]), pos);
    const v = ops.reshape(this.v_proj.forward(x), [b, t, kv, hd]);
    let ctx: Tensor;
    if (cache) {
      if (!(cache instanceof LayerKVCache)) throw new ShapeError("CausalSelfAttention: needs a key/value cache (LayerKVCache)");
      cache.append(k, v);
      ctx = ops.attentionCached(q, cache.k, cache.v, cache.length);
    } else {
      ctx = ops.attention(q, k, v, { causal: true });
    }
    return this.o_proj.forward(ops.reshape(ctx, [b, t, h * hd]));
  }
  createCache(batch: number, maxLength: number): LayerKVCache {
    const { numKvHeads: kv, headDim: hd } = this.shape;
    return new LayerKVCache(this.backend, batch, maxLength, kv, hd, hd);
  }
  cachedElementsPerToken(): number {
    return 2 * this.shape.numKvHeads * this.shape.headDim;
  }
}

/** Sizes of a decoder block around its attention. */
export interface BlockShape {
  hiddenSize: number;
  intermediateSize: number;
  rmsNormEps: number;
}

/**
 * A pre-norm Llama decoder block: x + attn(norm(x)), then + mlp(norm(·)). The attention is given
 * (GQA or MLA) and registered under `attentionName` ("self_attn" in HF Llama, "mla" in the seed's
 * X-EcoMLA checkpoints).
 */
export class DecoderBlock extends Module {
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;
  readonly mlp: SwiGLUMLP;
  readonly attention: AttentionLayer;
  constructor(backend: TensorBackend, shape: BlockShape, rng: Rng | null, attention: AttentionLayer, attentionName = "self_attn") {
    super(backend);
    this.input_layernorm = this.child("input_layernorm", new RMSNorm(backend, shape.hiddenSize, shape.rmsNormEps));
    this.attention = this.child(attentionName, attention);
    this.post_attention_layernorm = this.child("post_attention_layernorm", new RMSNorm(backend, shape.hiddenSize, shape.rmsNormEps));
    this.mlp = this.child("mlp", new SwiGLUMLP(backend, shape.hiddenSize, shape.intermediateSize, rng));
  }
  /** x (B, T, hidden) → (B, T, hidden); see {@link AttentionLayer.forward} for the cache. */
  forward(x: Tensor, cache?: LayerCache): Tensor {
    const h = ops.add(x, this.attention.forward(this.input_layernorm.forward(x), cache));
    return ops.add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}
