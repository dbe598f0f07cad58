import { ShapeError } from "../errors.js";
import type { TensorBackend } from "../interfaces/backend.js";
import { Linear, RMSNorm, type AttentionLayer, type RotaryEmbedding } from "../nn/layers.js";
import type { LayerCache } from "../nn/layer-cache.js";
import { Module } from "../nn/module.js";
import type { Rng } from "../random.js";
import { keep } from "../tensor/engine.js";
import * as ops from "../tensor/ops/index.js";
import { stridesOf } from "../tensor/ops/common.js";
import { Tensor } from "../tensor/tensor.js";

/** Sizes of one MLA layer (the seed's DeepseekV3Attention, with n_h key/value heads). */
export interface MlaShape {
  /** d */
  hiddenSize: number;
  /** n_h (query = key/value heads in MLA) */
  numHeads: number;
  /** r_q; null = a full-rank q_proj instead of q_a/q_b */
  qLoraRank: number | null;
  /** r_kv */
  kvLoraRank: number;
  /** d_nope */
  qkNopeHeadDim: number;
  /** d_rope */
  qkRopeHeadDim: number;
  /** d_v */
  vHeadDim: number;
  /** RMSNorms on the two latents (`use_lora_layer_norm`; off in every released config). */
  useLoraLayerNorm: boolean;
  /** Softmax scale: (d_nope + d_rope)^-1/2, times YaRN's mscale² when mscale_all_dim is set. */
  softmaxScale: number;
}

/** The MLA latent cache of one layer: [c_kv ‖ k_pe] (B, M, 1, r_kv + d_rope), filled up to `length`. */
export class LatentKVCache implements LayerCache {
  length = 0;
  readonly latent: Tensor;
  constructor(backend: TensorBackend, readonly batch: number, readonly maxLength: number, readonly kvLoraRank: number, readonly ropeDim: number) {
    this.latent = keep(Tensor.zeros(backend, [batch, maxLength, 1, kvLoraRank + ropeDim]));
  }
  /** Store rows (B, T, 1, r_kv + d_rope) at positions length … length+T−1. */
  append(rows: Tensor): void {
    const t = rows.shape[1]!;
    if (this.length + t > this.maxLength) throw new ShapeError(`latent cache full: ${this.length} + ${t} positions exceed its ${this.maxLength}`);
    const dstStrides = stridesOf(this.latent.shape);
    rows.backend.copyStrided({
      src: rows.buffer, srcStrides: stridesOf(rows.shape),
      dst: this.latent.buffer, dstOffset: this.length * dstStrides[1]!, dstStrides, shape: rows.shape,
    });
    this.length += t;
  }
  get bytes(): number {
    return this.latent.size * 4;
  }
  dispose(): void {
    this.latent.dispose();
  }
}

/**
 * Multi-head Latent Attention with the seed's weight layout (q_a_proj, q_b_proj,
 * kv_a_proj_with_mqa, kv_b_proj, out_proj) and RoPE handling (q_pe and k_pe rotated in the
 * interleaved layout — identical scores to the seed's de-interleave + rotate-half — with YaRN
 * tables when the base model had rope_scaling). Training runs the explicit form; cached inference
 * runs the absorbed form over a latent cache holding only c_kv ‖ k_pe.
 */
export class MultiHeadLatentAttention extends Module implements AttentionLayer {
  readonly q_proj: Linear | null;
  readonly q_a_proj: Linear | null;
  readonly q_a_layernorm: RMSNorm | null;
  readonly q_b_proj: Linear | null;
  readonly kv_a_proj_with_mqa: Linear;
  readonly kv_a_layernorm: RMSNorm | null;
  readonly kv_b_proj: Linear;
  readonly out_proj: Linear;

  constructor(backend: TensorBackend, readonly shape: MlaShape, rng: Rng | null, readonly rotary: RotaryEmbedding) {
    super(backend);
    const { hiddenSize: d, numHeads: h, qLoraRank: rq, kvLoraRank: rkv, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = shape;
    if (rotary.headDim !== dr) throw new ShapeError(`MLA: RoPE tables cover ${rotary.headDim} dims, qk_rope_head_dim is ${dr}`);
    if (rq === null) {
      this.q_proj = this.child("q_proj", new Linear(backend, d, h * (dn + dr), rng));
      this.q_a_proj = this.q_b_proj = this.q_a_layernorm = null;
    } else {
      this.q_proj = null;
      this.q_a_proj = this.child("q_a_proj", new Linear(backend, d, rq, rng));
      this.q_a_layernorm = shape.useLoraLayerNorm ? this.child("q_a_layernorm", new RMSNorm(backend, rq, 1e-6)) : null;
      this.q_b_proj = this.child("q_b_proj", new Linear(backend, rq, h * (dn + dr), rng));
    }
    this.kv_a_proj_with_mqa = this.child("kv_a_proj_with_mqa", new Linear(backend, d, rkv + dr, rng));
    this.kv_a_layernorm = shape.useLoraLayerNorm ? this.child("kv_a_layernorm", new RMSNorm(backend, rkv, 1e-6)) : null;
    this.kv_b_proj = this.child("kv_b_proj", new Linear(backend, rkv, h * (dn + dv), rng));
    this.out_proj = this.child("out_proj", new Linear(backend, h * dv, d, rng));
  }

  /** x (B, T, d) → q (B, T, H, d_nope + d_rope) before RoPE. */
  private queries(x: Tensor): Tensor {
    const [b, t] = x.shape as [number, number];
    const { numHeads: h, qkNopeHeadDim: dn, qkRopeHeadDim: dr } = this.shape;
    let q: Tensor;
    if (this.q_proj) q = this.q_proj.forward(x);
    else {
      let a = this.q_a_proj!.forward(x);
      if (this.q_a_layernorm) a = this.q_a_layernorm.forward(a);
      q = this.q_b_proj!.forward(a);
    }
    return ops.reshape(q, [b, t, h, dn + dr]);
  }

  /** x (B, T, d) → normalised c_kv (B, T, r_kv) and rotated k_pe (B, T, 1, d_rope) at positions pos…. */
  private latents(x: Tensor, pos: number): { cKv: Tensor; kPe: Tensor } {
    const [b, t] = x.shape as [number, number];
    const { kvLoraRank: r, qkRopeHeadDim: dr } = this.shape;
    const a = this.kv_a_proj_with_mqa.forward(x);
    let cKv = ops.narrow(a, 2, 0, r);
    if (this.kv_a_layernorm) cKv = this.kv_a_layernorm.forward(cKv);
    const kPe = this.rotary.forward(ops.reshape(ops.narrow(a, 2, r, dr), [b, t, 1, dr]), pos);
    return { cKv, kPe };
  }

  /** x (B, T, d) → (B, T, d); explicit K/V without a cache (training), absorbed over a latent cache. */
  forward(x: Tensor, cache?: LayerCache): Tensor {
    if (cache) {
      if (!(cache instanceof LatentKVCache)) throw new ShapeError("MLA: needs a latent cache (LatentKVCache)");
      return this.forwardAbsorbed(x, cache);
    }
    const [b, t] = x.shape as [number, number];
    const { numHeads: h, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = this.shape;
    const q = this.queries(x);
    const qNope = ops.narrow(q, 3, 0, dn);
    const qPe = this.rotary.forward(ops.narrow(q, 3, dn, dr));
    const { cKv, kPe } = this.latents(x, 0);
    const kv = ops.reshape(this.kv_b_proj.forward(cKv), [b, t, h, dn + dv]);
    const k = ops.concat([ops.narrow(kv, 3, 0, dn), ops.expand(kPe, [b, t, h, dr])], 3);
    const v = ops.narrow(kv, 3, dn, dv);
    const ctx = ops.attention(ops.concat([qNope, qPe], 3), k, v, { causal: true, scale: this.shape.softmaxScale });
    return this.out_proj.forward(ops.reshape(ctx, [b, t, h * dv]));
  }

  /**
   * Absorbed attention over the latent cache: per head q̃ = q_nope · W_UK (into the r_kv latent
   * space), score = q̃·c_kv + q_pe·k_pe, context = softmax · c_kv, then · W_UVᵀ and out_proj.
   * K and V are never rebuilt; only [c_kv ‖ k_pe] is stored.
   */
  private forwardAbsorbed(x: Tensor, cache: LatentKVCache): Tensor {
    const [b, t] = x.shape as [number, number];
    const { numHeads: h, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = this.shape;
    const pos = cache.length;
    const q = this.queries(x);
    const qPe = this.rotary.forward(ops.narrow(q, 3, dn, dr), pos);
    const { cKv, kPe } = this.latents(x, pos);
    cache.append(ops.concat([ops.reshape(cKv, [b, t, 1, r]), kPe], 3));
    // kv_b (H·(d_nope+d_v), r) per head: W_UK (H, d_nope, r) and W_UV (H, d_v, r).
    const w = ops.reshape(this.kv_b_proj.weight, [h, dn + dv, r]);
    const wUK = ops.narrow(w, 1, 0, dn);
    const wUV = ops.narrow(w, 1, dn, dv);
    const qNope = ops.reshape(ops.permute(ops.narrow(q, 3, 0, dn), [2, 0, 1, 3]), [h, b * t, dn]); // (H, B·T, d_nope)
    const qLatent = ops.permute(ops.reshape(ops.matmul(qNope, wUK), [h, b, t, r]), [1, 2, 0, 3]); // (B, T, H, r)
    const ctxLatent = ops.attentionCached(ops.concat([qLatent, qPe], 3), cache.latent, cache.latent, cache.length, {
      scale: this.shape.softmaxScale,
      valueDim: r,
    }); // (B, T, H, r)
    const ctxHeads = ops.reshape(ops.permute(ctxLatent, [2, 0, 1, 3]), [h, b * t, r]);
    const ctx = ops.permute(ops.reshape(ops.matmul(ctxHeads, wUV, { transB: true }), [h, b, t, dv]), [1, 2, 0, 3]); // (B, T, H, d_v)
    return this.out_proj.forward(ops.reshape(ctx, [b, t, h * dv]));
  }

  createCache(batch: number, maxLength: number): LatentKVCache {
    return new LatentKVCache(this.backend, batch, maxLength, this.shape.kvLoraRank, this.shape.qkRopeHeadDim);
  }

  cachedElementsPerToken(): number {
    return this.shape.kvLoraRank + this.shape.qkRopeHeadDim;
  }
}
