import type { TensorBackend } from "./backend.js";

/** Where an engine runs a model: a tensor backend (ecomla's own engine) or an execution provider (runtimes such as onnxruntime). */
export interface EngineLoadOptions {
  /** The tensor backend, for engines that run on ecomla's backends. */
  backend?: TensorBackend;
  /** Execution provider for engines that bring their own runtime (e.g. "cpu", "webgpu"). */
  executionProvider?: string;
  /** Threads an engine's own runtime may use (default: the runtime's choice). */
  threads?: number;
}

/** One batch of sequences' cache in an engine (whatever it holds: K/V, MLA latents, runtime tensors). */
export interface EngineCache {
  /** Sequences in the batch. */
  readonly batch: number;
  /** Positions filled (the same for every sequence). */
  readonly length: number;
  /** Release what the cache holds. */
  free(): void;
}

/**
 * A model loaded by an {@link InferenceEngine}: prefill a batch of prompts into a cache, then decode
 * one token per sequence at a time. Logits are float32, row-major.
 */
export interface EngineModel {
  readonly vocabSize: number;
  /** End-of-sequence ids from the model's config. */
  readonly eosTokenIds: readonly number[];
  /** Elements cached per token over all layers (2·n_kv·d_h per GQA layer, r_kv + d_rope per MLA layer). */
  readonly cachedElementsPerToken: number;
  /** An empty cache for `batch` sequences of up to maxLength positions. */
  createCache(batch: number, maxLength: number): EngineCache;
  /**
   * ids (B, T) — B equal-length rows — continue the cache; returns logits (B, T, V), or only the
   * last position's (B, 1, V) with `lastOnly`.
   */
  prefill(cache: EngineCache, ids: readonly (readonly number[])[], options?: { lastOnly?: boolean }): Promise<Float32Array>;
  /** One new token per sequence (B) continues the cache; returns logits (B, V). */
  decode(cache: EngineCache, ids: readonly number[]): Promise<Float32Array>;
  /** Full-sequence logits (B, T, V) without keeping a cache. */
  forward(ids: readonly (readonly number[])[]): Promise<Float32Array>;
  /** Release the model. */
  free(): Promise<void> | void;
}

/** A whole-model runtime: loads a model folder it understands and runs it (ecomla's own forward is "ecomla"). */
export interface InferenceEngine {
  /** Registered name, e.g. "ecomla", "onnxruntime". */
  readonly name: string;
  /** Load a model folder (an HF checkpoint for ecomla; an ONNX export, or a checkpoint it exports first, for runtimes). */
  load(modelDir: string, options?: EngineLoadOptions): Promise<EngineModel>;
}

/** Writes a model folder in another format (`ecomla export <format>`). */
export interface ModelExporter {
  /** Format name, e.g. "onnx". */
  readonly format: string;
  /**
   * Export modelDir into outDir. Checks the model before writing anything; writes into a temporary
   * folder and renames it into place, so a failed export leaves nothing behind.
   */
  export(modelDir: string, outDir: string, options?: ExportOptions): Promise<ExportReport>;
}

/** Options of {@link ModelExporter.export}; keys beyond these are format-specific. */
export interface ExportOptions {
  /** Storage dtype of the weights, e.g. "f32" or "f16". */
  dtype?: string;
  /** Format version, e.g. the ONNX opset. */
  opset?: number;
  /** Replace an existing outDir. */
  overwrite?: boolean;
  onProgress?: (done: number, total: number, what: string) => void;
}

/** What an export wrote. */
export interface ExportReport {
  outDir: string;
  /** Files written, relative to outDir. */
  files: string[];
  bytes: number;
  elapsedMs: number;
  /** Format-specific details (e.g. the cache layout). */
  details?: Record<string, unknown>;
}
