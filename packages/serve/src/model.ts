// What the server needs from a model: per-sequence caches (sequences join and leave a batch at
// different positions) and one decode step over any set of them.
import {
  CausalSelfAttention, LatentKVCache, LayerKVCache, MultiHeadLatentAttention, Tensor, noGrad, ops, tidy,
  type AttentionLayer, type EngineCache, type EngineModel, type KVCache, type LayerCache, type LlamaForCausalLM,
} from "@ecomla/core";

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

/** Per sequence: rotate at its own position, append to its own cache, attend over it; (1, 1, H, D) each, stacked to (B, 1, H, D). */
function perSequence(batch: number, attend: (b: number) => Tensor): Tensor {
  const parts = Array.from({ length: batch }, (_, b) => attend(b));
  return parts.length === 1 ? parts[0]! : ops.concat(parts, 0);
}

/** Llama GQA attention of one decode step: projections over the batch, RoPE/cache/attention per sequence. */
function gqaDecode(att: CausalSelfAttention, x: Tensor, caches: LayerKVCache[]): Tensor {
  const batch = caches.length;
  const { numHeads: h, numKvHeads: kv, headDim: hd } = att.shape;
  const q = ops.reshape(att.q_proj.forward(x), [batch, 1, h, hd]);
  const k = ops.reshape(att.k_proj.forward(x), [batch, 1, kv, hd]);
  const v = ops.reshape(att.v_proj.forward(x), [batch, 1, kv, hd]);
  const ctx = perSequence(batch, (b) => {
    const cache = caches[b]!;
    const pos = cache.length;
    cache.append(att.rotary.forward(ops.narrow(k, 0, b, 1), pos), ops.narrow(v, 0, b, 1));
    return ops.attentionCached(att.rotary.forward(ops.narrow(q, 0, b, 1), pos), cache.k, cache.v, cache.length);
  }); // (B, 1, H, hd)
  return att.o_proj.forward(ops.reshape(ctx, [batch, 1, h * hd]));
}

/**
 * MLA's absorbed decode step (as MultiHeadLatentAttention's cached forward): the projections, the
 * absorption into the latent space (q_nope · W_UK) and the way out (· W_UVᵀ, out_proj) run over
 * the batch; RoPE, the latent append and the attention over each sequence's latent cache per sequence.
 */
function mlaDecode(att: MultiHeadLatentAttention, x: Tensor, caches: LatentKVCache[]): Tensor {
  const batch = caches.length;
  const { numHeads: h, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = att.shape;
  let q: Tensor;
  if (att.q_proj) q = att.q_proj.forward(x);
  else {
    let a = att.q_a_proj!.forward(x);
    if (att.q_a_layernorm) a = att.q_a_layernorm.forward(a);
    q = att.q_b_proj!.forward(a);
  }
  q = ops.reshape(q, [batch, 1, h, dn + dr]);
  const a = att.kv_a_proj_with_mqa.forward(x); // (B, 1, r + dr)
  let cKv = ops.narrow(a, 2, 0, r);
  if (att.kv_a_layernorm) cKv = att.kv_a_layernorm.forward(cKv);
  const kPe = ops.reshape(ops.narrow(a, 2, r, dr), [batch, 1, 1, dr]);
  const qPe = ops.narrow(q, 3, dn, dr); // (B, 1, H, d_rope)
  const w = ops.reshape(att.kv_b_proj.weight, [h, dn + dv, r]);
  const wUK = ops.narrow(w, 1, 0, dn);
  const wUV = ops.narrow(w, 1, dn, dv);
  const qNope = ops.reshape(ops.permute(ops.narrow(q, 3, 0, dn), [2, 0, 1, 3]), [h, batch, dn]); // (H, B, d_nope)
  const qLatent = ops.permute(ops.reshape(ops.matmul(qNope, wUK), [h, batch, 1, r]), [1, 2, 0, 3]); // (B, 1, H, r)
  const ctxLatent = perSequence(batch, (b) => {
    const cache = caches[b]!;
    const pos = cache.length;
    cache.append(ops.concat([ops.reshape(ops.narrow(cKv, 0, b, 1), [1, 1, 1, r]), att.rotary.forward(ops.narrow(kPe, 0, b, 1), pos)], 3));
    const query = ops.concat([ops.narrow(qLatent, 0, b, 1), att.rotary.forward(ops.narrow(qPe, 0, b, 1), pos)], 3);
    return ops.attentionCached(query, cache.latent, cache.latent, cache.length, { scale: att.shape.softmaxScale, valueDim: r });
  }); // (B, 1, H, r)
  const ctxHeads = ops.reshape(ops.permute(ctxLatent, [2, 0, 1, 3]), [h, batch, r]);
  const ctx = ops.permute(ops.reshape(ops.matmul(ctxHeads, wUV, { transB: true }), [h, batch, 1, dv]), [1, 2, 0, 3]); // (B, 1, H, d_v)
  return att.out_proj.forward(ops.reshape(ctx, [batch, 1, h * dv]));
}

/** One decode step of a layer's attention over sequences at different positions: x (B, 1, d) → (B, 1, d). */
function batchedAttention(att: AttentionLayer, x: Tensor, caches: LayerCache[]): Tensor {
  if (att instanceof CausalSelfAttention && caches.every((c) => c instanceof LayerKVCache)) return gqaDecode(att, x, caches as LayerKVCache[]);
  if (att instanceof MultiHeadLatentAttention && caches.every((c) => c instanceof LatentKVCache)) return mlaDecode(att, x, caches as LatentKVCache[]);
  // Another attention kind: its own cached forward, one sequence at a time.
  return perSequence(caches.length, (b) => att.forward(caches.length === 1 ? x : ops.narrow(x, 0, b, 1), caches[b]));
}

/**
 * ecomla's own model served with continuous batching: in a decode step the embeddings, norms,
 * MLPs and head run once over the whole batch (B, 1, d); so do the attention projections (and
 * MLA's absorption); RoPE, the cache append and the attention run per sequence over its own cache
 * (its positions differ), which for an MLA layer holds the latent c_kv ‖ k_pe only.
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
        h = ops.add(h, batchedAttention(layer.attention, x, kvs.map((kv) => kv.layers[i]!)));
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
