import { ShapeError } from "../errors.js";
import type { TensorBackend } from "../interfaces/backend.js";
import type { LanguageModel } from "../interfaces/model.js";
import { DecoderBlock, Embedding, Linear, RMSNorm, RotaryEmbedding } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import type { Rng } from "../random.js";
import { noGrad } from "../tensor/engine.js";
import * as ops from "../tensor/ops/index.js";
import type { Tensor } from "../tensor/tensor.js";
import type { LlamaConfig } from "./config.js";
import { KVCache, LayerKVCache } from "./kv-cache.js";
import { ropeFrequencies } from "./rope.js";
import { loadWeights, type WeightSource, type LoadOptions } from "./weights.js";

/** The decoder stack under HF's `model.` prefix: embed_tokens, layers.{i}, norm. */
export class LlamaModel extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: DecoderBlock[];
  readonly norm: RMSNorm;
  constructor(backend: TensorBackend, config: LlamaConfig, rng: Rng | null) {
    super(backend);
    this.embed_tokens = this.child("embed_tokens", new Embedding(backend, config.vocabSize, config.hiddenSize, rng));
    this.layers = Array.from({ length: config.numHiddenLayers }, (_, i) =>
      this.child(`layers.${i}`, new DecoderBlock(backend, {
        hiddenSize: config.hiddenSize, numHeads: config.numAttentionHeads, numKvHeads: config.numKeyValueHeads,
        headDim: config.headDim, intermediateSize: config.intermediateSize, rmsNormEps: config.rmsNormEps,
      }, rng)),
    );
    this.norm = this.child("norm", new RMSNorm(backend, config.hiddenSize, config.rmsNormEps));
  }
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

  constructor(backend: TensorBackend, readonly config: LlamaConfig, rng: Rng | null, options: { maxPositions?: number } = {}) {
    super(backend);
    this.model = this.child("model", new LlamaModel(backend, config, rng));
    this.lm_head = config.tieWordEmbeddings ? null : this.child("lm_head", new Linear(backend, config.hiddenSize, config.vocabSize, rng));
    const { inverseFrequencies, attentionFactor } = ropeFrequencies(config.headDim, config.ropeTheta, config.ropeScaling);
    const positions = options.maxPositions ?? config.maxPositionEmbeddings;
    this.rotary = new RotaryEmbedding(backend, config.headDim, positions, inverseFrequencies, { layout: "half", scale: attentionFactor });
  }

  /** Build a model and load its weights from a checkpoint (HF names). */
  static async fromWeights(backend: TensorBackend, config: LlamaConfig, source: WeightSource, options: LoadOptions & { maxPositions?: number } = {}): Promise<LlamaForCausalLM> {
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
      h = layer.forward(h, this.rotary, cache?.layers[i]);
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

  /** An empty cache for `batch` sequences of up to maxLength positions. */
  createCache(batch: number, maxLength: number): KVCache {
    const c = this.config;
    return new KVCache(Array.from({ length: c.numHiddenLayers }, () => new LayerKVCache(this.backend, batch, maxLength, c.numKeyValueHeads, c.headDim, c.headDim)));
  }

  /** Elements cached per token over all layers: 2·n_kv·d_h per layer. */
  kvCacheElementsPerToken(): number {
    return this.config.numHiddenLayers * 2 * this.config.numKeyValueHeads * this.config.headDim;
  }

  /** Bytes of KV cache per token at 16-bit storage (as HF serves bf16 models). */
  kvCacheBytesPerToken(): number {
    return this.kvCacheElementsPerToken() * 2;
  }

  override dispose(): void {
    super.dispose();
    this.rotary.dispose();
  }
}
