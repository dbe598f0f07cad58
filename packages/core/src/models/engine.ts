import { ConfigError, EcomlaError, ShapeError } from "../errors.js";
import { Rng } from "../random.js";
import { sampleToken, type GenerationResult, type SamplingOptions } from "./generate.js";
import type { EngineCache, EngineLoadOptions, EngineModel, InferenceEngine } from "../interfaces/engine.js";
import { tidy } from "../tensor/engine.js";
import { Tensor } from "../tensor/tensor.js";
import type { KVCache } from "./kv-cache.js";
import type { LlamaForCausalLM } from "./llama.js";
import { loadLlama } from "./pretrained.js";

/** ids (B, T) as one flat i32 array, checking the rows are equal-length and non-empty. */
export function flattenIds(ids: readonly (readonly number[])[], what: string): { data: Int32Array; batch: number; tokens: number } {
  const batch = ids.length;
  const tokens = ids[0]?.length ?? 0;
  if (batch === 0 || tokens === 0) throw new ShapeError(`${what}: expected at least one sequence of at least one token, found ${batch} × ${tokens}`);
  const data = new Int32Array(batch * tokens);
  ids.forEach((row, b) => {
    if (row.length !== tokens) throw new ShapeError(`${what}: sequence ${b} has ${row.length} tokens, sequence 0 has ${tokens} (rows must be equal-length)`);
    data.set(row, b * tokens);
  });
  return { data, batch, tokens };
}

class EcomlaEngineCache implements EngineCache {
  constructor(readonly kv: KVCache, readonly batch: number) {}
  get length(): number {
    return this.kv.length;
  }
  free(): void {
    this.kv.dispose();
  }
}

/** A model loaded by ecomla's own engine: the Llama/MLA/hybrid forward on a tensor backend. */
export class EcomlaEngineModel implements EngineModel {
  readonly vocabSize: number;
  readonly eosTokenIds: readonly number[];
  readonly cachedElementsPerToken: number;
  constructor(readonly model: LlamaForCausalLM) {
    this.vocabSize = model.vocabSize;
    const eos = model.config.eosTokenId;
    this.eosTokenIds = Array.isArray(eos) ? eos : eos !== null ? [eos] : [];
    this.cachedElementsPerToken = model.kvCacheElementsPerToken();
  }
  createCache(batch: number, maxLength: number): EngineCache {
    return new EcomlaEngineCache(this.model.createCache(batch, maxLength), batch);
  }
  private cacheOf(cache: EngineCache): EcomlaEngineCache {
    if (!(cache instanceof EcomlaEngineCache)) throw new ConfigError("ecomla engine: the cache was not created by this engine's model");
    return cache;
  }
  private async run(cache: EcomlaEngineCache, ids: readonly (readonly number[])[], lastOnly: boolean): Promise<Float32Array> {
    const { data, batch, tokens } = flattenIds(ids, "ecomla engine");
    if (batch !== cache.batch) throw new ShapeError(`ecomla engine: ${batch} sequences for a cache of batch ${cache.batch}`);
    const be = this.model.backend;
    const logits = tidy(() => this.model.step(Tensor.from(be, data, [batch, tokens]), cache.kv, { lastOnly }));
    try {
      return Float32Array.from((await logits.data()) as Float32Array);
    } finally {
      logits.dispose();
    }
  }
  prefill(cache: EngineCache, ids: readonly (readonly number[])[], options: { lastOnly?: boolean } = {}): Promise<Float32Array> {
    return this.run(this.cacheOf(cache), ids, options.lastOnly ?? false);
  }
  decode(cache: EngineCache, ids: readonly number[]): Promise<Float32Array> {
    return this.run(this.cacheOf(cache), ids.map((id) => [id]), true);
  }
  async forward(ids: readonly (readonly number[])[]): Promise<Float32Array> {
    const { data, batch, tokens } = flattenIds(ids, "ecomla engine");
    const be = this.model.backend;
    const logits = tidy(() => this.model.forward(Tensor.from(be, data, [batch, tokens])));
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

/** ecomla's own engine: loads an HF Llama / X-EcoMLA / hybrid folder onto a tensor backend. */
export class EcomlaEngine implements InferenceEngine {
  readonly name = "ecomla";
  async load(modelDir: string, options: EngineLoadOptions = {}): Promise<EngineModel> {
    if (!options.backend) throw new ConfigError("ecomla engine: needs a tensor backend (EngineLoadOptions.backend)");
    const { model } = await loadLlama(modelDir, options.backend);
    return new EcomlaEngineModel(model);
  }
}

/** Prefill the prompt, then decode token by token through an engine's cache (as {@link generate} does for ecomla's own model). */
export async function generateWithEngine(model: EngineModel, prompt: readonly number[], options: SamplingOptions): Promise<GenerationResult> {
  if (prompt.length === 0) throw new EcomlaError("generate: the prompt is empty (tokenize at least one token, e.g. BOS)");
  const rng = new Rng(options.seed ?? 0);
  const temperature = options.temperature ?? 0;
  const topP = options.topP ?? 1;
  const stop = new Set(options.stopTokenIds ?? []);
  const cache = model.createCache(1, prompt.length + options.maxNewTokens);
  const tokens: number[] = [];
  try {
    const t0 = performance.now();
    let next = sampleToken(await model.prefill(cache, [prompt], { lastOnly: true }), temperature, topP, rng);
    const prefillMs = performance.now() - t0;
    const t1 = performance.now();
    for (;;) {
      tokens.push(next);
      options.onToken?.(next);
      if (tokens.length >= options.maxNewTokens || stop.has(next)) break;
      next = sampleToken(await model.decode(cache, [next]), temperature, topP, rng);
    }
    const decodeMs = performance.now() - t1;
    return {
      tokens, prefillMs, decodeMs,
      prefillTokensPerSecond: prompt.length / (prefillMs / 1000),
      decodeTokensPerSecond: tokens.length > 1 ? (tokens.length - 1) / (decodeMs / 1000) : 0,
    };
  } finally {
    cache.free();
  }
}
