import type { Command } from "commander";
import { ConfigError, convertCheckpoint, paramMatchedQRank, readLlamaConfig, type MlaConversionOptions } from "@ecomla/core";
import { join } from "node:path";
import { openPipeline, resolveBackend, type GlobalOptions } from "../context.js";
import { progressBar } from "../progress.js";
import { writeModelCard } from "@ecomla/train";
import { numberFlag } from "./model-io.js";

interface ConvertOptions {
  model: string;
  out: string;
  converter: string;
  kvRank?: string;
  qRank?: string;
  ropeDim?: string;
  nopeDim?: string;
  vDim?: string;
  layers?: string;
  kvEnergy?: string;
  qEnergy?: string;
  kvBudget?: string;
  rankDivisor?: string;
  seed?: string;
  ropeSelection?: string;
  backend?: string;
  json?: boolean;
}

function parseLayers(spec: string | undefined, numLayers: number): number[] | undefined {
  if (spec === undefined || spec === "all") return undefined;
  const layers = spec.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const bad = layers.find((n) => !Number.isInteger(n) || n < 0 || n >= numLayers);
  if (layers.length === 0 || bad !== undefined) throw new ConfigError(`--layers: expected "all" or comma-separated layer indices in [0, ${numLayers}), found "${spec}"`);
  return [...new Set(layers)].sort((a, b) => a - b);
}

function ropeSelection(v: string | undefined): MlaConversionOptions["ropeSelection"] {
  if (v === undefined) return undefined;
  if (v === "high" || v === "low" || v === "uniform" || v === "norm") return v;
  throw new ConfigError(`--rope-selection: expected high, low, uniform or norm, found "${v}"`);
}

/** `ecomla convert`: MHA/GQA → MLA (all layers or a hybrid), written in the seed's X-EcoMLA layout. */
export function convertCommand(program: Command): void {
  program
    .command("convert")
    .description("convert a Llama model's attention into Multi-head Latent Attention (X-EcoMLA SVD initialisation by default)")
    .requiredOption("-m, --model <dir>", "Hugging Face Llama model folder")
    .requiredOption("-o, --out <dir>", "output folder (X-EcoMLA layout: config.json, MLA_config.json, mla_layer_config.json, safetensors)")
    .option("--converter <name>", "attention converter (registered name)", "xecomla")
    .option("--kv-rank <r>", "KV latent rank r_kv (kv_lora_rank)", "128")
    .option("--q-rank <r>", "query rank r_q (q_lora_rank); 'none' keeps a full-rank q projection", "auto")
    .option("--rope-dim <d>", "RoPE dims per head d_rope (qk_rope_head_dim); default: half the head dim")
    .option("--nope-dim <d>", "non-RoPE q/k dims per head d_nope (qk_nope_head_dim); default: head dim − d_rope")
    .option("--v-dim <d>", "value head dim (must equal the head dim)")
    .option("--layers <list>", "layers to convert: 'all' or e.g. 1,2,3 (the rest stay GQA: a hybrid)", "all")
    .option("--kv-energy <δ>", "dynamic KV rank: keep singular values up to this cumulative energy (first/last layer stay fixed)")
    .option("--q-energy <δ>", "dynamic query rank from energy")
    .option("--kv-budget <f>", "KV cache as a fraction of the base model's; ranks spread across layers by energy")
    .option("--rank-divisor <n>", "round ranks up to a multiple of n", "8")
    .option("--rope-selection <s>", "partial-rope: which RoPE frequencies to keep: high, low, uniform or norm", "high")
    .option("--seed <s>", "seed (random converter)", "0")
    .option("-b, --backend <name>", "backend whose SVD to use (default: cpu when installed, else reference)")
    .option("--json", "print the conversion report as JSON")
    .action(async (opts: ConvertOptions, cmd: Command) => {
      const base = readLlamaConfig(join(opts.model, "config.json"));
      const hd = base.headDim;
      const rope = numberFlag(opts.ropeDim, "--rope-dim", hd / 2, (n) => Number.isInteger(n) && n >= 0 && n % 2 === 0 && n <= hd, `an even integer in [0, ${hd}]`);
      const nope = numberFlag(opts.nopeDim, "--nope-dim", hd - rope, (n) => Number.isInteger(n) && n >= 0 && n + rope <= hd, `an integer with d_nope + d_rope ≤ ${hd}`);
      const kvRank = numberFlag(opts.kvRank, "--kv-rank", 128, (n) => Number.isInteger(n) && n >= 1, "an integer ≥ 1");
      const qRank = opts.qRank === "none" ? null : opts.qRank === "auto" || opts.qRank === undefined ? paramMatchedQRank(base, kvRank, rope, nope) : numberFlag(opts.qRank, "--q-rank", 0, (n) => Number.isInteger(n) && n >= 1, "an integer ≥ 1, 'auto' or 'none'");
      const energy = (v: string | undefined, flag: string) => (v === undefined ? undefined : numberFlag(v, flag, 1, (n) => n > 0 && n <= 1, "a number in (0, 1]"));
      const options: MlaConversionOptions & { layers?: number[]; kvBudget?: number } = {
        kvLoraRank: kvRank, qLoraRank: qRank, qkRopeHeadDim: rope, qkNopeHeadDim: nope,
        vHeadDim: numberFlag(opts.vDim, "--v-dim", hd, (n) => n === hd, `the head dim ${hd}`),
        kvEnergy: energy(opts.kvEnergy, "--kv-energy"), qEnergy: energy(opts.qEnergy, "--q-energy"),
        rankDivisor: numberFlag(opts.rankDivisor, "--rank-divisor", 8, (n) => Number.isInteger(n) && n >= 1, "an integer ≥ 1"),
        seed: numberFlag(opts.seed, "--seed", 0, Number.isInteger, "an integer"),
        ropeSelection: ropeSelection(opts.ropeSelection),
        layers: parseLayers(opts.layers, base.numHiddenLayers),
        kvBudget: opts.kvBudget === undefined ? undefined : numberFlag(opts.kvBudget, "--kv-budget", 1, (n) => n > 0 && n <= 1, "a fraction in (0, 1]"),
      };
      const pipeline = await openPipeline(cmd.optsWithGlobals<GlobalOptions>());
      const converter = pipeline.get("converter", opts.converter);
      const backend = await resolveBackend(pipeline, opts.backend);
      const bar = progressBar("converting");
      const t0 = performance.now();
      let report;
      try {
        report = await convertCheckpoint(opts.model, opts.out, converter, backend.capabilities, {
          ...options,
          onLayer: (_layer, done, total) => bar.update(done, total, `layer ${_layer}`),
        });
      } finally {
        bar.stop();
      }
      await writeModelCard({
        dir: opts.out, base: opts.model, kind: "convert", converter: opts.converter,
        recipe: {
          kv_lora_rank: opts.kvEnergy || opts.kvBudget ? undefined : kvRank, q_lora_rank: qRank ?? "full", qk_rope_head_dim: rope, qk_nope_head_dim: nope, layers: opts.layers ?? "all",
          kv_energy: options.kvEnergy, q_energy: options.qEnergy, kv_budget: options.kvBudget, rank_divisor: options.rankDivisor,
        },
      });
      const seconds = (performance.now() - t0) / 1000;
      const summary = { ...report, seconds: +seconds.toFixed(2), svd: backend.capabilities.svd ? backend.name : "jacobi (reference)" };
      if (opts.json) {
        process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
        return;
      }
      for (const l of report.layers) process.stdout.write(`layer ${String(l.layer).padStart(3)}: ${Object.entries(l.report).map(([k, v]) => `${k} ${v}`).join(", ")}\n`);
      process.stdout.write(
        `KV cache per token: ${report.elementsPerToken} elements (base ${report.baseElementsPerToken}): ${report.compressionRatio.toFixed(2)}× smaller, ` +
          `${((100 * report.elementsPerToken) / report.baseElementsPerToken).toFixed(1)}% of the base — wrote ${opts.out} in ${seconds.toFixed(1)} s\n`,
      );
    });
}
