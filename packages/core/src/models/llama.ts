import { ShapeError } from "../errors.js";
import type { TensorBackend } from "../interfaces/backend.js";
import type { LanguageModel } from "../interfaces/model.js";
import { CausalSelfAttention, DecoderBlock, Embedding, Linear, RMSNorm, RotaryEmbedding, type AttentionLayer } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import type { Rng } from "../random.js";
import { noGrad } from "../tensor/engine.js";
import * as ops from "../tensor/ops/index.js";
import type { Tensor } from "../tensor/tensor.js";
import type { LlamaConfig } from "./config.js";
import { KVCache } from "./kv-cache.js";
import { ropeFrequencies } from "./rope.js";
import { loadWeights, type WeightSource, type LoadOptions } from "./weights.js";
import { MultiHeadLatentAttention } from "./mla.js";
import { mlaSoftmaxScale, ranksOf, type MlaConfig } from "./mla-config.js";

/** Builds layer i's attention (and names it) — how hybrids put MLA in some layers. */
export type AttentionFactory = (layerIndex: number, rng: Rng | null) => { attention: AttentionLayer; name: string } | null;

/** The decoder stack under HF's `model.` prefix: embed_tokens, layers.{i}, norm. */
export class LlamaModel extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: DecoderBlock[];
  readonly norm: RMSNorm;
  constructor(backend: TensorBackend, config: LlamaConfig, rng: Rng | null, rotary: RotaryEmbedding, attentionFor?: AttentionFactory) {
    super(backend);
    this.embed_tokens = this.child("embed_tokens", new Embedding(backend, config.vocabSize, config.hiddenSize, rng));
    const shape = { hiddenSize: config.hiddenSize, numHeads: config.numAttentionHeads, numKvHeads: config.numKeyValueHeads, headDim: config.headDim };
    this.layers = Array.from({ length: config.numHiddenLayers }, (_, i) => {
      const chosen = attentionFor?.(i, rng) ?? { attention: new CausalSelfAttention(backend, shape, rng, rotary), name: "self_attn" };
      const block = new DecoderBlock(backend, { hiddenSize: config.hiddenSize, intermediateSize: config.intermediateSize, rmsNormEps: config.rmsNormEps }, rng, chosen.attention, chosen.name);
      return this.child(`layers.${i}`, block);
    });
    this.norm = this.child("norm", new RMSNorm(backend, config.hiddenSize, config.rmsNormEps));
  }
}

/** Options of {@link LlamaForCausalLM}. */
export interface LlamaOptions {
  /** Rows of the RoPE tables (default: max_position_embeddings). */
  maxPositions?: number;
  /** MLA layers (X-EcoMLA hybrids): those layers get {@link MultiHeadLatentAttention} under `mla.`. */
  mla?: MlaConfig | null;
  /** Per-layer attention choice beyond MLA; Llama GQA attention where it returns null. */
  attentionFor?: AttentionFactory;
  /** Debug: no rotation at all (every RoPE frequency 0), to check conversions exactly. */
  disableRope?: boolean;
}

/**
 * Llama-family causal LM, computed as transformers' LlamaForCausalLM (RMSNorm in f32,
 * rotate-half RoPE with llama3/linear scaling, GQA, SwiGLU, optionally tied head). Parameters
 * carry HF names, so checkpoints load and save by name.
 */
export class LlamaForCausalLM extends Module implements LanguageModel {
  readonly model: LlamaModel;
  /** Null when the head is tied to the embeddings. */
  readonly lm_head: Linear | null;
  readonly rotary: RotaryEmbedding;
  /** RoPE of the MLA layers (d_rope, interleaved, YaRN when the base had rope_scaling), if any. */
  readonly mlaRotary: RotaryEmbedding | null;
  readonly mla: MlaConfig | null;
  /** Per-layer RoPE tables of partial-RoPE layers. */
  private readonly layerRotaries: RotaryEmbedding[] = [];

  constructor(backend: TensorBackend, readonly config: LlamaConfig, rng: Rng | null, options: LlamaOptions = {}) {
    super(backend);
    const frequencies = (dim: number, scaling: LlamaConfig["ropeScaling"]) =>
      options.disableRope ? { inverseFrequencies: new Float64Array(dim / 2), attentionFactor: 1 } : ropeFrequencies(dim, config.ropeTheta, scaling);
    const { inverseFrequencies, attentionFactor } = frequencies(config.headDim, config.ropeScaling);
    const positions = options.maxPositions ?? config.maxPositionEmbeddings;
    this.rotary = new RotaryEmbedding(backend, config.headDim, positions, inverseFrequencies, { layout: "half", scale: attentionFactor });
    const mla = (this.mla = options.mla ?? null);
    let mlaRotary: RotaryEmbedding | null = null;
    if (mla && mla.mlaLayers.length) {
      const f = frequencies(mla.qkRopeHeadDim, mla.ropeScaling);
      mlaRotary = new RotaryEmbedding(backend, mla.qkRopeHeadDim, positions, f.inverseFrequencies, { layout: "interleaved", scale: f.attentionFactor });
    }
    this.mlaRotary = mlaRotary;
    // Partial-RoPE layers keep some of the base model's own frequencies (its scaling included).
    const baseFrequencies = frequencies(config.headDim, config.ropeScaling);
    const layerRotary = (i: number): RotaryEmbedding | null => {
      const picks = mla?.ropeFrequencyIndices?.get(i);
      if (!picks) return mlaRotary;
      if (picks.length * 2 !== mla!.qkRopeHeadDim || picks.some((f) => f >= config.headDim / 2)) {
        throw new ShapeError(`layer ${i}: ${picks.length} RoPE frequencies for qk_rope_head_dim ${mla!.qkRopeHeadDim}, indices must be < ${config.headDim / 2}`);
      }
      const r = new RotaryEmbedding(backend, mla!.qkRopeHeadDim, positions, Float64Array.from(picks, (f) => baseFrequencies.inverseFrequencies[f]!), { layout: "interleaved", scale: baseFrequencies.attentionFactor });
      this.layerRotaries.push(r);
      return r;
    };
    const attentionFor: AttentionFactory = (i, layerRng) => {
      if (mla && mlaRotary && mla.mlaLayers.includes(i)) {
        const ranks = ranksOf(mla, i);
        const shape = {
          hiddenSize: config.hiddenSize, numHeads: config.numAttentionHeads, qLoraRank: ranks.qRank, kvLoraRank: ranks.kvRank,
          qkNopeHeadDim: mla.qkNopeHeadDim, qkRopeHeadDim: mla.qkRopeHeadDim, vHeadDim: mla.vHeadDim,
          useLoraLayerNorm: mla.useLoraLayerNorm, softmaxScale: mlaSoftmaxScale(mla),
        };
        return { attention: new MultiHeadLatentAttention(backend, shape, layerRng, layerRotary(i)!), name: "mla" };
      }
      return options.attentionFor?.(i, layerRng) ?? null;
    };
    this.model = this.child("model", new LlamaModel(backend, config, rng, this.rotary, attentionFor));
    this.lm_head = config.tieWordEmbeddings ? null : this.child("lm_head", new Linear(backend, config.hiddenSize, config.vocabSize, rng));
  }

  /** Build a model and load its weights from a checkpoint (HF names). */
  static async fromWeights(backend: TensorBackend, config: LlamaConfig, source: WeightSource, options: LoadOptions & LlamaOptions = {}): Promise<LlamaForCausalLM> {
    const model = new LlamaForCausalLM(backend, config, null, options);
    try {
      await loadWeights(model, source, options);
    } catch (err) {
      model.dispose();
      throw err;
    }
    return model;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** hidden (…, d) → logits (…, V) through the head (or the tied embeddings). */
  private head(hidden: Tensor): Tensor {
    return this.lm_head ? this.lm_head.forward(hidden) : ops.linear(hidden, this.model.embed_tokens.weight);
  }

  /** Full-sequence forward for training and scoring: ids (B, T) i32 → logits (B, T, V). */
  forward(ids: Tensor): Tensor {
    return this.head(this.hidden(ids));
  }

  /** Final hidden states: ids (B, T) i32 → (B, T, d). */
  hidden(ids: Tensor, cache?: KVCache): Tensor {
    if (ids.rank !== 2) throw new ShapeError(`LlamaForCausalLM: ids must be (batch, tokens), found [${ids.shape.join(", ")}]`);
    let h = this.model.embed_tokens.forward(ids);
    this.model.layers.forEach((layer, i) => {
      h = layer.forward(h, cache?.layers[i]);
    });
    return this.model.norm.forward(h);
  }

  /**
   * Inference step over a cache: the T new tokens ids (B, T) continue the cached positions.
   * Returns logits (B, T, V), or only the last position's (B, 1, V) with `lastOnly`.
   */
  step(ids: Tensor, cache: KVCache, options: { lastOnly?: boolean } = {}): Tensor {
    return noGrad(() => {
      const h = this.hidden(ids, cache);
      const t = h.shape[1]!;
      return this.head(options.lastOnly && t > 1 ? ops.narrow(h, 1, t - 1, 1) : h);
    });
  }

  /** An empty cache for `batch` sequences of up to maxLength positions (one entry per layer, of its kind). */
  createCache(batch: number, maxLength: number): KVCache {
    return new KVCache(this.model.layers.map((l) => l.attention.createCache(batch, maxLength)));
  }

  /** Elements cached per token over all layers (2·n_kv·d_h per GQA layer, r_kv + d_rope per MLA layer). */
  kvCacheElementsPerToken(): number {
    return this.model.layers.reduce((n, l) => n + l.attention.cachedElementsPerToken(), 0);
  }

  /** Bytes of KV cache per token at 16-bit storage (as HF serves bf16 models). */
  kvCacheBytesPerToken(): number {
    return this.kvCacheElementsPerToken() * 2;
  }

  override dispose(): void {
    super.dispose();
    this.rotary.dispose();
    this.mlaRotary?.dispose();
    for (const r of this.layerRotaries) r.dispose();
  }
}
