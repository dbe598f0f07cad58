export { parseLlamaConfig, readLlamaConfig, ConfigReader, type LlamaConfig, type RopeScaling } from "./config.js";
export { ropeFrequencies, yarnMscale } from "./rope.js";
export { LlamaForCausalLM, LlamaModel } from "./llama.js";
export { KVCache, LayerKVCache } from "./kv-cache.js";
export { loadWeights, type WeightSource, type LoadOptions } from "./weights.js";
export { generate, sampleToken, argmax, type CachedCausalLM, type SamplingOptions, type GenerationResult } from "./generate.js";
export { loadLlama, checkpointWeights } from "./pretrained.js";
