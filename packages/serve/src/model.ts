// What the server needs from a model: per-sequence caches (sequences join and leave a batch at
// different positions) and one decode step over any set of them.
import { Tensor, noGrad, ops, tidy, type EngineCache, type EngineModel, type KVCache, type LlamaForCausalLM } from "@ecomla/core";

/** One sequence's cache (its own positions; latent-only for MLA layers). */
export interface SequenceCache {
  /** Positions filled. */
  readonly length: number;
  /** Bytes the cache holds now (allocated for its whole length). */
  readonly bytes: number;
  free(): void;
}

/** A model that serves sequences of different lengths in one decode step. */
export interface ServedModel {
  readonly vocabSize: number;
  readonly eosTokenIds: readonly number[];
  /** Longest sequence (prompt + new tokens) the model takes. */
  readonly maxContext: number;
  /** An empty cache for one sequence of up to maxLength positions. */
  open(maxLength: number): SequenceCache;
  /** ids (T) continue the sequence; logits (T, V) with `all`, else the last position's (V). */
  prefill(cache: SequenceCache, ids: readonly number[], all: boolean): Promise<Float32Array>;
  /** One token per sequence (B) in one step; logits (B, V). */
  decode(caches: readonly SequenceCache[], ids: readonly number[]): Promise<Float32Array>;
  free(): Promise<void> | void;
}

class ModelSequenceCache implements SequenceCache {
  constructor(readonly kv: KVCache) {}
  get length(): number {
    return this.kv.length;
  }
  get bytes(): number {
    return this.kv.bytes;
  }
  free(): void {
    this.kv.dispose();
  }
}

/**
 * ecomla's own model served with continuous batching: in a decode step the embeddings, norms,
 * MLPs and head run once over the whole batch (B, 1, d); each sequence's attention runs over its
 * own cache (its positions differ), which for an MLA layer is the latent c_kv ‖ k_pe only.
 */
export class BatchedLlama implements ServedModel {
  readonly vocabSize: number;
  readonly eosTokenIds: readonly number[];
  readonly maxContext: number;
  constructor(readonly model: LlamaForCausalLM) {
    this.vocabSize = model.vocabSize;
    const eos = model.config.eosTokenId;
    this.eosTokenIds = Array.isArray(eos) ? eos : eos !== null && eos !== undefined ? [eos] : [];
    this.maxContext = model.config.maxPositionEmbeddings;
  }
  open(maxLength: number): SequenceCache {
    return new ModelSequenceCache(this.model.createCache(1, maxLength));
  }
  private kvOf(cache: SequenceCache): KVCache {
    if (!(cache instanceof ModelSequenceCache)) throw new Error("serve: a cache from another model");
    return cache.kv;
  }
  async prefill(cache: SequenceCache, ids: readonly number[], all: boolean): Promise<Float32Array> {
    const be = this.model.backend;
    const kv = this.kvOf(cache);
    const logits = tidy(() => this.model.step(Tensor.from(be, Int32Array.from(ids), [1, ids.length]), kv, { lastOnly: !all }));
    try {
      return Float32Array.from((await logits.data()) as Float32Array);
    } finally {
      logits.dispose();
    }
  }
  async decode(caches: readonly SequenceCache[], ids: readonly number[]): Promise<Float32Array> {
    const kvs = caches.map((c) => this.kvOf(c));
    const batch = ids.length;
    const m = this.model;
    const logits = tidy(() => noGrad(() => {
      let h = m.model.embed_tokens.forward(Tensor.from(m.backend, Int32Array.from(ids), [batch, 1])); // (B, 1, d)
      m.model.layers.forEach((layer, i) => {
        const x = layer.input_layernorm.forward(h);
        const parts = kvs.map((kv, b) => layer.attention.forward(batch === 1 ? x : ops.narrow(x, 0, b, 1), kv.layers[i]));
        h = ops.add(h, parts.length === 1 ? parts[0]! : ops.concat(parts, 0));
        h = ops.add(h, layer.mlp.forward(layer.post_attention_layernorm.forward(h)));
      });
      h = m.model.norm.forward(h);
      return m.lm_head ? m.lm_head.forward(h) : ops.linear(h, m.model.embed_tokens.weight); // (B, 1, V)
    }));
    try {
      return Float32Array.from((await logits.data()) as Float32Array);
    } finally {
      logits.dispose();
    }
  }
  free(): void {
    this.model.dispose();
  }
}

class EngineSequenceCache implements SequenceCache {
  constructor(readonly cache: EngineCache, private readonly bytesPerToken: number, private readonly maxLength: number) {}
  get length(): number {
    return this.cache.length;
  }
  get bytes(): number {
    return this.bytesPerToken * this.maxLength;
  }
  free(): void {
    this.cache.free();
  }
}

/**
 * Any registered inference engine (e.g. onnxruntime). Its caches hold equal-length rows, so each
 * sequence has a batch-1 cache and a decode step runs the sequences one after another.
 */
export class EngineServedModel implements ServedModel {
  readonly vocabSize: number;
  readonly eosTokenIds: readonly number[];
  constructor(readonly engineModel: EngineModel, readonly maxContext: number) {
    this.vocabSize = engineModel.vocabSize;
    this.eosTokenIds = engineModel.eosTokenIds;
  }
  open(maxLength: number): SequenceCache {
    return new EngineSequenceCache(this.engineModel.createCache(1, maxLength), this.engineModel.cachedElementsPerToken * 4, maxLength);
  }
  private cacheOf(cache: SequenceCache): EngineCache {
    if (!(cache instanceof EngineSequenceCache)) throw new Error("serve: a cache from another model");
    return cache.cache;
  }
  async prefill(cache: SequenceCache, ids: readonly number[], all: boolean): Promise<Float32Array> {
    return this.engineModel.prefill(this.cacheOf(cache), [ids], { lastOnly: !all });
  }
  async decode(caches: readonly SequenceCache[], ids: readonly number[]): Promise<Float32Array> {
    const out = new Float32Array(ids.length * this.vocabSize);
    for (let b = 0; b < ids.length; b++) out.set(await this.engineModel.decode(this.cacheOf(caches[b]!), [ids[b]!]), b * this.vocabSize);
    return out;
  }
  free(): Promise<void> | void {
    return this.engineModel.free();
  }
}
