import { join } from "node:path";
import type { TensorBackend } from "../interfaces/backend.js";
import { SafetensorsCheckpoint } from "../io/sharded.js";
import { readLlamaConfig, type LlamaConfig } from "./config.js";
import { LlamaForCausalLM } from "./llama.js";
import type { LoadOptions, WeightSource } from "./weights.js";
import { readMlaConfig, type MlaConfig } from "./mla-config.js";

/** A safetensors checkpoint (one file or sharded) seen as a {@link WeightSource}. */
export function checkpointWeights(checkpoint: SafetensorsCheckpoint, location: string): WeightSource {
  return {
    location,
    has: (name) => checkpoint.has(name),
    shapeOf: (name) => [...checkpoint.info(name).shape],
    readF32: (name) => checkpoint.readF32(name),
    async *readF32Chunks(name, maxElements) {
      const total = checkpoint.info(name).shape.reduce((a, b) => a * b, 1);
      for (let offset = 0; offset < total; offset += maxElements) {
        yield { offset, data: await checkpoint.readF32Range(name, offset, Math.min(maxElements, total - offset)) };
      }
    },
  };
}

/**
 * Load a Hugging Face Llama-family model folder (config.json + safetensors) onto a backend —
 * a plain Llama, or an X-EcoMLA model/hybrid in the seed's layout (MLA_config.json +
 * mla_layer_config.json, or the same keys in config.json).
 */
export async function loadLlama(dir: string, backend: TensorBackend, options: LoadOptions & { maxPositions?: number; disableRope?: boolean } = {}): Promise<{ model: LlamaForCausalLM; config: LlamaConfig; mla: MlaConfig | null }> {
  const config = readLlamaConfig(join(dir, "config.json"));
  const mla = readMlaConfig(dir, config);
  const checkpoint = await SafetensorsCheckpoint.open(dir);
  try {
    const model = await LlamaForCausalLM.fromWeights(backend, config, checkpointWeights(checkpoint, dir), { ...options, mla });
    return { model, config, mla };
  } finally {
    await checkpoint.close();
  }
}
