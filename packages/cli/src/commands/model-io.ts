import { ConfigError, HfTokenizer, loadLlama, type LlamaForCausalLM, type TensorBackend } from "@ecomla/core";
import { progressBar } from "../progress.js";

/** Load a model folder with a progress bar; reports the load time. */
export async function loadModelWithProgress(dir: string, backend: TensorBackend): Promise<{ model: LlamaForCausalLM; loadMs: number }> {
  const bar = progressBar("loading");
  const t0 = performance.now();
  try {
    const { model } = await loadLlama(dir, backend, { onProgress: (done, total, name) => bar.update(done, total, name) });
    return { model, loadMs: performance.now() - t0 };
  } finally {
    bar.stop();
  }
}

/** The model folder's tokenizer (tokenizer.json), or a clear error when it has none. */
export function loadTokenizer(dir: string): HfTokenizer {
  return HfTokenizer.fromDir(dir);
}

/** Parse "1,2,3" into ids below vocabSize, naming the flag on bad input. */
export function parseIds(text: string, flag: string, vocabSize: number): number[] {
  const ids = text.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (ids.length === 0 || ids.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new ConfigError(`${flag}: expected comma-separated non-negative token ids, found "${text}"`);
  }
  const bad = ids.find((n) => n >= vocabSize);
  if (bad !== undefined) throw new ConfigError(`${flag}: token id ${bad} is out of range for a vocabulary of ${vocabSize}`);
  return ids;
}

/** A number flag within bounds, naming the flag on bad input. */
export function numberFlag(value: string | undefined, flag: string, fallback: number, check: (n: number) => boolean, expected: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new ConfigError(`${flag}: expected ${expected}, found "${value}"`);
  return n;
}
