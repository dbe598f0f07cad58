import { EcomlaError } from "../errors.js";
import { Rng } from "../random.js";
import { tidy } from "../tensor/engine.js";
import { Tensor } from "../tensor/tensor.js";
import type { TensorBackend } from "../interfaces/backend.js";
import type { KVCache } from "./kv-cache.js";

/** A model that can run incremental inference over a cache (Llama, MLA, hybrids). */
export interface CachedCausalLM {
  readonly vocabSize: number;
  readonly backend: TensorBackend;
  createCache(batch: number, maxLength: number): KVCache;
  /** ids (1, T) → logits (1, T or 1, V) continuing the cache. */
  step(ids: Tensor, cache: KVCache, options?: { lastOnly?: boolean }): Tensor;
}

/** Sampling settings; temperature 0 (the default) is greedy decoding. */
export interface SamplingOptions {
  maxNewTokens: number;
  temperature?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches topP. */
  topP?: number;
  seed?: number;
  /** Stop after emitting one of these. */
  stopTokenIds?: readonly number[];
  /** Called with each new token id as it is chosen. */
  onToken?: (id: number) => void;
}

/** What {@link generate} returns, with timings for throughput reports. */
export interface GenerationResult {
  /** The new token ids (without the prompt). */
  tokens: number[];
  prefillMs: number;
  decodeMs: number;
  /** New tokens after the first per second of decode time. */
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
}

/** Index of the largest value (the first one on ties, like torch.argmax). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Draw a token from logits with temperature and nucleus (top-p) filtering. */
export function sampleToken(logits: Float32Array, temperature: number, topP: number, rng: Rng): number {
  if (temperature <= 0) return argmax(logits);
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const probs = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += probs[i] = Math.exp((logits[i]! - max) / temperature);
  const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b);
  // Keep tokens until the kept mass reaches topP (at least one), as HF's TopPLogitsWarper.
  let kept = 0;
  let mass = 0;
  while (kept < order.length && (kept === 0 || mass < topP * total)) mass += probs[order[kept++]!]!;
  let r = rng.next() * mass;
  for (let i = 0; i < kept; i++) {
    r -= probs[order[i]!]!;
    if (r < 0) return order[i]!;
  }
  return order[kept - 1]!;
}

/** Prefill the prompt, then decode token by token over the model's cache. */
export async function generate(model: CachedCausalLM, prompt: readonly number[], options: SamplingOptions): Promise<GenerationResult> {
  if (prompt.length === 0) throw new EcomlaError("generate: the prompt is empty (tokenize at least one token, e.g. BOS)");
  const rng = new Rng(options.seed ?? 0);
  const temperature = options.temperature ?? 0;
  const topP = options.topP ?? 1;
  const cache = model.createCache(1, prompt.length + options.maxNewTokens);
  const stop = new Set(options.stopTokenIds ?? []);
  const tokens: number[] = [];
  const be = model.backend;
  const lastLogits = async (ids: number[]) => {
    const logits = tidy(() => model.step(Tensor.from(be, Int32Array.from(ids), [1, ids.length]), cache, { lastOnly: true }));
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    return data.subarray(data.length - model.vocabSize);
  };
  try {
    const t0 = performance.now();
    let next = sampleToken(await lastLogits([...prompt]), temperature, topP, rng);
    const prefillMs = performance.now() - t0;
    const t1 = performance.now();
    for (;;) {
      tokens.push(next);
      options.onToken?.(next);
      if (tokens.length >= options.maxNewTokens || stop.has(next)) break;
      next = sampleToken(await lastLogits([next]), temperature, topP, rng);
    }
    const decodeMs = performance.now() - t1;
    return {
      tokens, prefillMs, decodeMs,
      prefillTokensPerSecond: prompt.length / (prefillMs / 1000),
      decodeTokensPerSecond: tokens.length > 1 ? (tokens.length - 1) / (decodeMs / 1000) : 0,
    };
  } finally {
    cache.dispose();
  }
}
