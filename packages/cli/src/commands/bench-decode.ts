import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { ConfigError, EcomlaEngineModel, Rng, readLlamaConfig, type EngineModel, type Pipeline } from "@ecomla/core";
import { openPipeline, resolveBackend, type GlobalOptions } from "../context.js";
import { loadEngineModel, type EngineFlags } from "./engine-io.js";
import { streamAddBandwidth } from "./stream-triad.js";

interface BenchDecodeOptions {
  model: string[];
  engine: string;
  ep?: string;
  backend?: string;
  batch: string;
  context: string;
  tokens: string;
  threads?: string;
  triad?: boolean;
  json?: boolean;
}

/** One engine's decode speed at one (batch, context). */
export interface DecodeTiming {
  engine: string;
  device: string;
  /** Sequences × new tokens per second over the timed decode steps. */
  tokensPerSecond: number;
  msPerStep: number;
}

/** One (model, batch, context) cell: ecomla's engine, and the compared engine in the same run when there is one. */
export interface DecodeCell {
  model: string;
  batch: number;
  context: number;
  ecomla: DecodeTiming;
  other?: DecodeTiming;
  /** ecomla tokens/s ÷ the other engine's (≥ 1: ecomla's own engine is not slower). */
  ecomlaVsOther?: number;
  /** Bytes read per decode step (weights once + every sequence's cache) ÷ tokens in the step. */
  bytesReadPerToken: number;
  /** (bytes read per step ÷ step time) ÷ the memory bandwidth measured in this run (STREAM add on the backend). */
  rooflineFraction?: number;
  /** ecomla tokens/s ÷ the first model's at the same batch and context (the base, when models after it are its conversions). */
  vsFirstModel?: number;
}

/** What a model folder costs per decoded token. */
export interface DecodeModelInfo {
  model: string;
  cachedElementsPerToken: number;
  /** Cache bytes per token as ecomla holds it (f32). */
  cacheBytesPerToken: number;
  /** The same at 16-bit storage (as HF serves bf16 models). */
  cacheBytesPerToken16: number;
  /** First model's cache bytes per token ÷ this one's. */
  cacheRatioVsFirst: number;
  /** Bytes of the weights as held in memory. */
  weightBytes: number;
}

/** Prefill in chunks of this many positions (untimed), so prefill memory stays bounded at long contexts. */
const PREFILL_CHUNK = 256;

function intList(text: string, flag: string): number[] {
  const values = text.split(",").map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((n) => !Number.isInteger(n) || n < 1)) throw new ConfigError(`${flag}: expected comma-separated integers ≥ 1, found "${text}"`);
  return values;
}

/** Fill `context` positions, then time `tokens` decode steps of `batch` sequences. */
async function timeDecode(model: EngineModel, batch: number, context: number, tokens: number, seed: number): Promise<{ tokensPerSecond: number; msPerStep: number }> {
  const rng = new Rng(seed);
  const id = () => Math.floor(rng.next() * model.vocabSize);
  const cache = model.createCache(batch, context + tokens + 1);
  try {
    for (let done = 0; done < context; done += PREFILL_CHUNK) {
      const n = Math.min(PREFILL_CHUNK, context - done);
      await model.prefill(cache, Array.from({ length: batch }, () => Array.from({ length: n }, id)), { lastOnly: true });
    }
    await model.decode(cache, Array.from({ length: batch }, id)); // warm-up step, untimed
    const t0 = performance.now();
    for (let s = 0; s < tokens; s++) await model.decode(cache, Array.from({ length: batch }, id));
    const ms = performance.now() - t0;
    return { tokensPerSecond: (batch * tokens) / (ms / 1000), msPerStep: ms / tokens };
  } finally {
    cache.free();
  }
}

/**
 * A copy of the model folder whose max_position_embeddings covers `positions` (symlinks would
 * not do: both engines read config.json). Weights are copied by reference where the filesystem allows.
 */
function withPositions(dir: string, positions: number, work: string): { dir: string; extended: boolean } {
  // Validated first, so a wrong folder is a clear error rather than a stack trace.
  if (readLlamaConfig(join(dir, "config.json")).maxPositionEmbeddings >= positions) return { dir, extended: false };
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  const copy = join(work, "model");
  cpSync(dir, copy, { recursive: true, filter: (src) => !src.includes("node_modules") && !src.endsWith("/dist") });
  writeFileSync(join(copy, "config.json"), JSON.stringify({ ...config, max_position_embeddings: positions }, null, 2));
  return { dir: copy, extended: true };
}

/** Bytes of a loaded model's weights (ecomla's engine; 0 when the engine does not say). */
function weightBytesOf(model: EngineModel): number {
  if (!(model instanceof EcomlaEngineModel)) return 0;
  return model.model.namedParameters().reduce((n, [, t]) => n + t.size * 4, 0);
}

/** Run the decode benchmark: every model × (batch, context) on ecomla's engine, and on the compared one unless --engine none. */
export async function benchDecode(pipeline: Pipeline, opts: BenchDecodeOptions): Promise<Record<string, unknown>> {
  const batches = intList(opts.batch, "--batch");
  const contexts = intList(opts.context, "--context");
  const tokens = intList(opts.tokens, "--tokens")[0]!;
  const models = Array.isArray(opts.model) ? opts.model : [opts.model];
  if (opts.engine === "ecomla") throw new ConfigError("bench decode: --engine names the engine to compare with ecomla's own (e.g. onnxruntime), or none");
  const compare = opts.engine !== "none";
  for (const dir of models) readLlamaConfig(join(dir, "config.json")); // a wrong folder fails before any timing
  const threads = opts.threads ?? String(Number(process.env.ECOMLA_NUM_THREADS) || availableParallelism());
  const triad = opts.triad === false ? null : await streamAddBandwidth(await resolveBackend(pipeline, opts.backend));
  if (triad && !opts.json) process.stdout.write(`memory bandwidth (STREAM add, ${triad.kernel}): ${(triad.bytesPerSecond / 1e9).toFixed(1)} GB/s\n`);
  const work = mkdtempSync(join(tmpdir(), "ecomla-bench-decode-"));
  const cells: DecodeCell[] = [];
  const infos: DecodeModelInfo[] = [];
  let extendedTo: number | null = null;
  try {
    for (const [m, modelDir] of models.entries()) {
      const needed = Math.max(...contexts) + tokens + 1;
      const { dir, extended } = withPositions(modelDir, needed, join(work, String(m)));
      if (extended) extendedTo = needed;
      const ours = await loadEngineModel(pipeline, { engine: "ecomla", backend: opts.backend }, dir);
      const other = compare ? await loadEngineModel(pipeline, { engine: opts.engine, ep: opts.ep, threads } satisfies EngineFlags, dir) : null;
      const cacheBytesPerToken = ours.model.cachedElementsPerToken * 4;
      const weightBytes = weightBytesOf(ours.model);
      const info: DecodeModelInfo = {
        model: modelDir, cachedElementsPerToken: ours.model.cachedElementsPerToken, cacheBytesPerToken, cacheBytesPerToken16: ours.model.cachedElementsPerToken * 2,
        cacheRatioVsFirst: infos.length ? infos[0]!.cacheBytesPerToken / cacheBytesPerToken : 1, weightBytes,
      };
      infos.push(info);
      try {
        for (const context of contexts) {
          for (const batch of batches) {
            const a = await timeDecode(ours.model, batch, context, tokens, 1);
            const b = other ? await timeDecode(other.model, batch, context, tokens, 1) : null;
            const bytesPerStep = weightBytes + batch * context * cacheBytesPerToken;
            const first = cells.find((c) => c.model === models[0] && c.batch === batch && c.context === context);
            const cell: DecodeCell = {
              model: modelDir, batch, context,
              ecomla: { engine: "ecomla", device: ours.device, ...a },
              ...(b && other ? { other: { engine: other.engine, device: other.device, ...b }, ecomlaVsOther: a.tokensPerSecond / b.tokensPerSecond } : {}),
              bytesReadPerToken: bytesPerStep / batch,
              ...(triad && weightBytes ? { rooflineFraction: bytesPerStep / (a.msPerStep / 1000) / triad.bytesPerSecond } : {}),
              ...(m > 0 && first ? { vsFirstModel: a.tokensPerSecond / first.ecomla.tokensPerSecond } : {}),
            };
            cells.push(cell);
            if (!opts.json) {
              const parts = [`${modelDir} batch ${batch}, context ${context}: ecomla (${ours.device}) ${a.tokensPerSecond.toFixed(1)} tok/s`];
              if (cell.other) parts.push(`${cell.other.engine} ${cell.other.tokensPerSecond.toFixed(1)} tok/s (ecomla ${cell.ecomlaVsOther!.toFixed(2)}×)`);
              if (cell.rooflineFraction !== undefined) parts.push(`${(cell.rooflineFraction * 100).toFixed(0)}% of the bandwidth roofline`);
              if (cell.vsFirstModel !== undefined) parts.push(`${cell.vsFirstModel.toFixed(2)}× the first model`);
              process.stdout.write(parts.join(", ") + "\n");
            }
          }
        }
      } finally {
        ours.model.free();
        await other?.model.free();
      }
    }
    return {
      model: models[0], cachedElementsPerToken: infos[0]!.cachedElementsPerToken, models: infos, decodeTokensTimed: tokens, threads: Number(threads),
      ...(triad ? { memoryBandwidthBytesPerSecond: Math.round(triad.bytesPerSecond), bandwidthKernel: triad.kernel } : {}),
      ...(extendedTo ? { maxPositionEmbeddingsRaisedTo: extendedTo } : {}), cells,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `ecomla bench decode`: decode tokens/s of an engine against ecomla's own on the same model, same run. */
export function benchDecodeCommand(bench: Command): void {
  bench
    .command("decode")
    .description("decode tokens/s and cache bytes per token of one or more models (e.g. a GQA base and its MLA conversions), against the memory-bandwidth roofline and another inference engine (e.g. onnxruntime), in the same run")
    .requiredOption("-m, --model <dirs...>", "model folders (Llama, X-EcoMLA or hybrid checkpoints); models after the first are compared with it")
    .option("--engine <name>", "engine to compare with ecomla's own, or none", "onnxruntime")
    .option("--ep <provider>", "execution provider of the compared engine (cpu, webgpu)")
    .option("-b, --backend <name>", "tensor backend of ecomla's engine (default: cpu when installed)")
    .option("--batch <list>", "batch sizes", "1,8")
    .option("--context <list>", "positions filled before timing", "512,4096")
    .option("--tokens <n>", "timed decode steps per cell", "16")
    .option("--threads <n>", "threads of the compared engine (default: ECOMLA_NUM_THREADS, else every core, as ecomla's CPU backend)")
    .option("--no-triad", "skip the STREAM-style bandwidth measurement (the roofline fractions need it)")
    .option("--json", "print one JSON object instead of text")
    .action(async (opts: BenchDecodeOptions, cmd: Command) => {
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const report = await benchDecode(pipeline, opts);
      if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
    });
}
