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
  type LayerCache,
  type BlockShape,
} from "./layers.js";
export { AdamW, type AdamWOptions } from "./optim.js";
