import { EcomlaError, ShapeError } from "../errors.js";
import type { Module } from "../nn/module.js";

/** Where named weights come from (a safetensors checkpoint, or anything shaped like one). */
export interface WeightSource {
  /** Human-readable location for errors (a folder or file). */
  readonly location: string;
  has(name: string): boolean;
  /** Shape of a stored tensor. */
  shapeOf(name: string): number[];
  /** The tensor as f32 (converted from the stored dtype). */
  readF32(name: string): Promise<Float32Array>;
  /**
   * Optional: the tensor as f32 in pieces of at most `maxElements`, so a large embedding never
   * exists twice on the host (RSS stays near the model's size while loading).
   */
  readF32Chunks?(name: string, maxElements: number): AsyncIterable<{ offset: number; data: Float32Array }>;
}

/** Options of {@link loadWeights}. */
export interface LoadOptions {
  /** Called after each tensor with (tensors done, total, name). */
  onProgress?: (done: number, total: number, name: string) => void;
  /** Pieces of at most this many elements when the source can stream (default 16M = 64 MB). */
  chunkElements?: number;
}

/**
 * Copy every parameter of `module` from `source` by name: all missing names and all shape
 * mismatches are reported at once, before anything is read.
 */
export async function loadWeights(module: Module, source: WeightSource, options: LoadOptions = {}): Promise<void> {
  const params = module.namedParameters();
  const missing = params.filter(([name]) => !source.has(name)).map(([name]) => name);
  if (missing.length) {
    const shown = missing.slice(0, 8).join(", ");
    throw new EcomlaError(`${source.location}: ${missing.length} expected tensor${missing.length > 1 ? "s are" : " is"} missing: ${shown}${missing.length > 8 ? `, … (${missing.length - 8} more)` : ""}`);
  }
  const wrong = params
    .map(([name, t]) => ({ name, expected: t.shape, found: source.shapeOf(name) }))
    .filter((m) => m.expected.length !== m.found.length || m.expected.some((d, i) => d !== m.found[i]));
  if (wrong.length) {
    throw new ShapeError(
      `${source.location}: ` + wrong.map((w) => `tensor ${w.name}: expected shape [${w.expected.join(", ")}] (from config.json), found [${w.found.join(", ")}]`).join("; "),
    );
  }
  const chunk = options.chunkElements ?? 16 * 1024 * 1024;
  let done = 0;
  for (const [name, t] of params) {
    if (source.readF32Chunks && t.size > chunk) {
      for await (const piece of source.readF32Chunks(name, chunk)) t.backend.upload(t.buffer, piece.data, piece.offset);
    } else {
      t.backend.upload(t.buffer, await source.readF32(name));
    }
    options.onProgress?.(++done, params.length, name);
  }
}
