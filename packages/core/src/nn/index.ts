export { Module, normalParam } from "./module.js";
export {
  Linear,
  Embedding,
  RMSNorm,
  RotaryEmbedding,
  ropeInverseFrequencies,
  SwiGLUMLP,
  CausalSelfAttention,
  DecoderBlock,
  type AttentionShape,
  type AttentionLayer,
  type BlockShape,
} from "./layers.js";
export { LayerKVCache, type LayerCache } from "./layer-cache.js";
export { AdamW, type AdamWOptions } from "./optim.js";
