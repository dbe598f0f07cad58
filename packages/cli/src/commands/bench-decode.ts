import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { ConfigError, Rng, type EngineModel, type Pipeline } from "@ecomla/core";
import { openPipeline, type GlobalOptions } from "../context.js";
import { loadEngineModel, type EngineFlags } from "./engine-io.js";

interface BenchDecodeOptions {
  model: string;
  engine: string;
  ep?: string;
  backend?: string;
  batch: string;
  context: string;
  tokens: string;
  threads?: string;
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

/** One (batch, context) cell: the compared engine against ecomla's own, in the same run. */
export interface DecodeCell {
  batch: number;
  context: number;
  ecomla: DecodeTiming;
  other: DecodeTiming;
  /** ecomla tokens/s ÷ the other engine's (≥ 1: ecomla's own engine is not slower). */
  ecomlaVsOther: number;
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
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { max_position_embeddings?: number };
  if ((config.max_position_embeddings ?? 0) >= positions) return { dir, extended: false };
  const copy = join(work, "model");
  cpSync(dir, copy, { recursive: true, filter: (src) => !src.includes("node_modules") && !src.endsWith("/dist") });
  writeFileSync(join(copy, "config.json"), JSON.stringify({ ...config, max_position_embeddings: positions }, null, 2));
  return { dir: copy, extended: true };
}

/** Run the decode benchmark: every (batch, context) on ecomla's engine and on the compared one. */
export async function benchDecode(pipeline: Pipeline, opts: BenchDecodeOptions): Promise<Record<string, unknown>> {
  const batches = intList(opts.batch, "--batch");
  const contexts = intList(opts.context, "--context");
  const tokens = intList(opts.tokens, "--tokens")[0]!;
  if (opts.engine === "ecomla") throw new ConfigError("bench decode: --engine names the engine to compare with ecomla's own (e.g. onnxruntime)");
  const threads = opts.threads ?? String(Number(process.env.ECOMLA_NUM_THREADS) || availableParallelism());
  const work = mkdtempSync(join(tmpdir(), "ecomla-bench-decode-"));
  try {
    const needed = Math.max(...contexts) + tokens + 1;
    const { dir, extended } = withPositions(opts.model, needed, work);
    const ours = await loadEngineModel(pipeline, { engine: "ecomla", backend: opts.backend }, dir);
    const flags: EngineFlags = { engine: opts.engine, ep: opts.ep, threads };
    const other = await loadEngineModel(pipeline, flags, dir);
    const cells: DecodeCell[] = [];
    try {
      for (const context of contexts) {
        for (const batch of batches) {
          const a = await timeDecode(ours.model, batch, context, tokens, 1);
          const b = await timeDecode(other.model, batch, context, tokens, 1);
          const cell: DecodeCell = {
            batch, context,
            ecomla: { engine: "ecomla", device: ours.device, ...a },
            other: { engine: other.engine, device: other.device, ...b },
            ecomlaVsOther: a.tokensPerSecond / b.tokensPerSecond,
          };
          cells.push(cell);
          if (!opts.json) {
            process.stdout.write(
              `batch ${batch}, context ${context}: ecomla (${ours.device}) ${a.tokensPerSecond.toFixed(1)} tok/s, ${other.engine} (${other.device}) ${b.tokensPerSecond.toFixed(1)} tok/s — ecomla ${cell.ecomlaVsOther.toFixed(2)}× ${other.engine}\n`,
            );
          }
        }
      }
    } finally {
      ours.model.free();
      await other.model.free();
    }
    return {
      model: opts.model, cachedElementsPerToken: ours.model.cachedElementsPerToken, decodeTokensTimed: tokens, threads: Number(threads),
      ...(extended ? { maxPositionEmbeddingsRaisedTo: needed } : {}), cells,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `ecomla bench decode`: decode tokens/s of an engine against ecomla's own on the same model, same run. */
export function benchDecodeCommand(bench: Command): void {
  bench
    .command("decode")
    .description("decode tokens/s of an inference engine (e.g. onnxruntime) against ecomla's own engine on the same model, in the same run")
    .requiredOption("-m, --model <dir>", "model folder (Llama, X-EcoMLA or hybrid checkpoint)")
    .option("--engine <name>", "engine to compare with ecomla's own", "onnxruntime")
    .option("--ep <provider>", "execution provider of the compared engine (cpu, webgpu)")
    .option("-b, --backend <name>", "tensor backend of ecomla's engine (default: cpu when installed)")
    .option("--batch <list>", "batch sizes", "1,8")
    .option("--context <list>", "positions filled before timing", "512,4096")
    .option("--tokens <n>", "timed decode steps per cell", "16")
    .option("--threads <n>", "threads of the compared engine (default: ECOMLA_NUM_THREADS, else every core, as ecomla's CPU backend)")
    .option("--json", "print one JSON object instead of text")
    .action(async (opts: BenchDecodeOptions, cmd: Command) => {
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const report = await benchDecode(pipeline, opts);
      if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
    });
}
