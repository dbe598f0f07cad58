// A layer's decode cache. It lives beside the layers that fill it (nn), below the models that
// hold one per layer (models/kv-cache.ts), so neither folder imports the other both ways.
import { ShapeError } from "../errors.js";
import type { TensorBackend } from "../interfaces/backend.js";
import { keep } from "../tensor/engine.js";
import { Tensor } from "../tensor/tensor.js";
import { stridesOf } from "../tensor/ops/common.js";

/** A model-level cache entry for one layer (keys/values, or MLA's latent). */
export interface LayerCache {
  /** Positions filled. */
  length: number;
  /** Bytes held. */
  readonly bytes: number;
  dispose(): void;
}

/** One attention layer's cache: keys (B, M, Hkv, Dk) and values (B, M, Hkv, Dv), filled up to `length`. */
export class LayerKVCache implements LayerCache {
  /** Positions filled. */
  length = 0;
  readonly k: Tensor;
  readonly v: Tensor;
  constructor(backend: TensorBackend, readonly batch: number, readonly maxLength: number, readonly numKvHeads: number, keyDim: number, valueDim: number) {
    this.k = keep(Tensor.zeros(backend, [batch, maxLength, numKvHeads, keyDim]));
    this.v = keep(Tensor.zeros(backend, [batch, maxLength, numKvHeads, valueDim]));
  }

  /** Store k (B, T, Hkv, Dk) and v (B, T, Hkv, Dv) at positions length … length+T−1. */
  append(k: Tensor, v: Tensor): void {
    const t = k.shape[1]!;
    if (this.length + t > this.maxLength) {
      throw new ShapeError(`KV cache full: ${this.length} + ${t} positions exceed its ${this.maxLength}`);
    }
    for (const [src, dst] of [[k, this.k], [v, this.v]] as const) {
      if (src.shape[0] !== this.batch || src.shape[2] !== this.numKvHeads || src.shape[3] !== dst.shape[3]) {
        throw new ShapeError(`KV cache append: [${src.shape.join(", ")}] does not fit the cache [${dst.shape.join(", ")}]`);
      }
      const dstStrides = stridesOf(dst.shape);
      src.backend.copyStrided({
        src: src.buffer, srcStrides: stridesOf(src.shape),
        dst: dst.buffer, dstOffset: this.length * dstStrides[1]!, dstStrides, shape: src.shape,
      });
    }
    this.length += t;
  }

  /** Bytes held (f32 storage). */
  get bytes(): number {
    return (this.k.size + this.v.size) * 4;
  }

  dispose(): void {
    this.k.dispose();
    this.v.dispose();
  }
}
