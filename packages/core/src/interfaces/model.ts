import type { Tensor } from "../tensor/tensor.js";

/** A causal language model as evaluators and teachers see it. */
export interface LanguageModel {
  readonly vocabSize: number;
  /** Logits for every position. tokens (B, T) i32 → (B, T, V) f32. */
  forward(tokens: Tensor): Tensor;
  /** Bytes of KV cache per token over all layers at the cache dtype (for reports). */
  kvCacheBytesPerToken(): number;
  /**
   * Optional: logits computed outside ecomla's tensors (an inference engine such as onnxruntime).
   * ids (B·T, row-major) i32 → (B, T, V) f32 on the host; evaluators call it instead of forward.
   */
  hostLogits?(ids: Int32Array, batch: number, tokens: number): Promise<Float32Array>;
}
