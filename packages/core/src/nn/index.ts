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
} from "./layers.js";
export { AdamW, type AdamWOptions } from "./optim.js";
