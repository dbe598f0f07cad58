import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, EcomlaError } from "../errors.js";
import type { BackendCapabilities } from "../interfaces/backend.js";
import type { AttentionConverter, AttentionLayerConfig, AttentionLayerWeights, ConvertedAttention, MlaConversionOptions } from "../interfaces/converter.js";
import type { HostTensor } from "../interfaces/host.js";
import { SafetensorsCheckpoint } from "../io/sharded.js";
import { writeShardedSafetensors, type TensorToWrite } from "../io/index.js";
import { writeTextAtomically } from "../io/safetensors-write.js";
import { readLlamaConfig, type LlamaConfig } from "./config.js";
import { mlaConfigFiles, readMlaConfig, seedYarnScaling, type MlaConfig } from "./mla-config.js";

/** Options of {@link convertCheckpoint}. */
export interface ConvertCheckpointOptions extends MlaConversionOptions {
  /** Layers to convert (default: all). */
  layers?: number[];
  /** Target KV-cache size as a fraction of the base model's: per-layer ranks spread by singular-value energy. */
  kvBudget?: number;
  /** With energies: keep the fixed ranks in the first and last layer (the seed's use_fixed_rank_for_first_and_last_block; default true). */
  fixedFirstLast?: boolean;
  /** Called after each converted layer. */
  onLayer?: (layer: number, done: number, total: number, report: ConvertedAttention["report"]) => void;
  /** Largest shard in bytes (default 2 GiB). */
  maxShardBytes?: number;
}

/** What a conversion did. */
export interface ConversionReport {
  converter: string;
  layers: { layer: number; report: ConvertedAttention["report"] }[];
  /** Cached elements per token of the base model and of the result (all layers). */
  baseElementsPerToken: number;
  elementsPerToken: number;
  /** Base / converted. */
  compressionRatio: number;
  outDir: string;
}

/** Cached elements per token of each layer of a (possibly hybrid) model. */
export function cacheElementsPerLayer(base: LlamaConfig, mla: MlaConfig | null): number[] {
  return Array.from({ length: base.numHiddenLayers }, (_, i) => {
    if (mla && mla.mlaLayers.includes(i)) {
      const ranks = mla.layerRanks.get(i);
      return (ranks?.kvRank ?? mla.kvLoraRank) + mla.qkRopeHeadDim;
    }
    return 2 * base.numKeyValueHeads * base.headDim;
  });
}

/**
 * Spread a KV-cache budget over layers: every converted layer starts at `divisor` and the next
 * `divisor` of rank goes, again and again, to the layer whose next singular values carry the most
 * of that layer's energy, while the total cache stays within the budget.
 */
export function allocateKvRanks(spectra: Map<number, Float64Array>, rankBudget: number, divisor: number): Map<number, number> {
  const ranks = new Map<number, number>();
  const totals = new Map<number, number>();
  for (const [layer, s] of spectra) {
    ranks.set(layer, divisor);
    totals.set(layer, s.reduce((a, v) => a + v * v, 0) || 1);
  }
  let used = divisor * spectra.size;
  if (used > rankBudget) throw new ConfigError(`kv budget too small: ${spectra.size} layers need at least rank ${divisor} each (${used} in all), the budget allows ${Math.max(0, rankBudget)}`);
  const gain = (layer: number) => {
    const s = spectra.get(layer)!;
    const r = ranks.get(layer)!;
    let g = 0;
    for (let i = r; i < Math.min(r + divisor, s.length); i++) g += s[i]! * s[i]!;
    return g / totals.get(layer)!;
  };
  while (used + divisor <= rankBudget) {
    let best = -1;
    let bestGain = 0;
    for (const layer of spectra.keys()) {
      const g = gain(layer);
      if (g > bestGain) [best, bestGain] = [layer, g];
    }
    if (best < 0) break;
    ranks.set(best, ranks.get(best)! + divisor);
    used += divisor;
  }
  return ranks;
}

/**
 * The query rank that keeps an MLA layer's q/k/v parameters at most the original's, rounded down
 * to a multiple of 32, as the seed's configs choose it: (d + n_h(d_nope+d_rope))·r_q +
 * d(r_kv+d_rope) + r_kv·n_h(d_nope+d_v) ≤ d·n_h·d_h + 2·d·n_kv·d_h. On Llama-3.2-1B this gives the
 * seed's 864/1184/1344/1440 for r_kv 512/256/128/48 (the seed used 1424 at 64, where this gives 1440).
 */
export function paramMatchedQRank(base: LlamaConfig, kvRank: number, ropeDim: number, nopeDim: number): number {
  const d = base.hiddenSize;
  const h = base.numAttentionHeads;
  const hd = base.headDim;
  const budget = d * h * hd + 2 * d * base.numKeyValueHeads * hd - d * (kvRank + ropeDim) - kvRank * h * (nopeDim + hd);
  return Math.max(8, Math.floor(budget / (d + h * (nopeDim + ropeDim)) / 32) * 32);
}

const ATTENTION_NAMES = ["q_proj", "k_proj", "v_proj", "o_proj"] as const;

/**
 * Convert a Hugging Face Llama checkpoint's attention layers with `converter` and write an
 * X-EcoMLA checkpoint in the seed's layout (model.layers.{i}.mla.*; config.json with the MLA keys,
 * MLA_config.json, mla_layer_config.json). Layers are converted one at a time while the output
 * streams to disk, so memory stays near one layer plus one tensor.
 */
export async function convertCheckpoint(
  srcDir: string,
  outDir: string,
  converter: AttentionConverter,
  capabilities: BackendCapabilities,
  options: ConvertCheckpointOptions,
): Promise<ConversionReport> {
  const base = readLlamaConfig(join(srcDir, "config.json"));
  if (readMlaConfig(srcDir, base)) throw new ConfigError(`${srcDir} is already an MLA model; convert its base model instead`);
  const layers = options.layers ?? Array.from({ length: base.numHiddenLayers }, (_, i) => i);
  const bad = layers.find((i) => !Number.isInteger(i) || i < 0 || i >= base.numHiddenLayers);
  if (bad !== undefined) throw new ConfigError(`--layers: layer ${bad} does not exist (the model has ${base.numHiddenLayers})`);
  const ckpt = await SafetensorsCheckpoint.open(srcDir);
  try {
    const layerConfig = (i: number): AttentionLayerConfig => ({
      hiddenSize: base.hiddenSize, numHeads: base.numAttentionHeads, numKvHeads: base.numKeyValueHeads, headDim: base.headDim,
      ropeTheta: base.ropeTheta, ropeScaling: (base.raw["rope_scaling"] as Record<string, unknown> | null) ?? null, layerIndex: i, numLayers: base.numHiddenLayers,
    });
    const readAttention = async (i: number): Promise<AttentionLayerWeights> => {
      const out: Partial<Record<(typeof ATTENTION_NAMES)[number], HostTensor>> = {};
      for (const n of ATTENTION_NAMES) {
        const name = `model.layers.${i}.self_attn.${n}.weight`;
        out[n] = { shape: [...ckpt.info(name).shape], data: await ckpt.readF32(name) };
      }
      return out as AttentionLayerWeights;
    };
    const context = { capabilities };
    const fixedFirstLast = options.fixedFirstLast ?? true;
    const perLayerOptions = new Map<number, MlaConversionOptions>();
    for (const i of layers) {
      const fixed = options.fixedRank || (fixedFirstLast && (i === 0 || i === base.numHiddenLayers - 1));
      perLayerOptions.set(i, { ...options, fixedRank: fixed });
    }
    if (options.kvBudget !== undefined) {
      if (!(options.kvBudget > 0 && options.kvBudget <= 1)) throw new ConfigError(`--kv-budget must be in (0, 1], found ${options.kvBudget}`);
      if (!converter.kvSpectrum) throw new ConfigError(`converter "${converter.name}" cannot rank layers by energy (no kvSpectrum); use fixed ranks`);
      const spectra = new Map<number, Float64Array>();
      for (const i of layers) spectra.set(i, await converter.kvSpectrum(layerConfig(i), await readAttention(i), options, context));
      const baseTotal = base.numHiddenLayers * 2 * base.numKeyValueHeads * base.headDim;
      const kept = (base.numHiddenLayers - layers.length) * 2 * base.numKeyValueHeads * base.headDim;
      const rankBudget = Math.floor(options.kvBudget * baseTotal) - kept - layers.length * options.qkRopeHeadDim;
      const ranks = allocateKvRanks(spectra, rankBudget, options.rankDivisor ?? 8);
      for (const [i, r] of ranks) perLayerOptions.set(i, { ...perLayerOptions.get(i)!, kvLoraRank: r, kvEnergy: undefined, fixedRank: true });
    }

    // Converted weights are held (as f32) until written: about the size of the attention weights
    // being replaced, while everything else streams from the source file tensor by tensor.
    const results = new Map<number, ConvertedAttention>();
    for (const i of layers) {
      const result = await converter.convert(layerConfig(i), await readAttention(i), perLayerOptions.get(i)!, context);
      if (result.kind !== "mla") throw new EcomlaError(`converter "${converter.name}" produced a "${result.kind}" layer; only "mla" layers can be saved`);
      results.set(i, result);
      options.onLayer?.(i, results.size, layers.length, result.report);
    }
    const weightDtype = ckpt.info("model.layers.0.self_attn.q_proj.weight").dtype;
    const dtypeOf = (name: string) => {
      const dt = ckpt.info(name).dtype;
      if (dt !== "F32" && dt !== "BF16" && dt !== "F16") throw new ConfigError(`${srcDir}: tensor ${name} has dtype ${dt}; F32, BF16 or F16 expected`);
      return dt;
    };
    const outDtype = weightDtype === "F32" || weightDtype === "BF16" || weightDtype === "F16" ? weightDtype : "F32";
    const tensors: TensorToWrite[] = [];
    const converting = new Set(layers);
    for (const name of ckpt.names()) {
      const m = /^model\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|o_proj)\.weight$/.exec(name);
      if (m && converting.has(Number(m[1]))) continue;
      // Copied as stored bytes: no decode to f32 and re-encode.
      tensors.push({ name, dtype: dtypeOf(name), shape: [...ckpt.info(name).shape], data: async () => (await ckpt.read(name)).data });
    }
    for (const i of layers) {
      for (const [w, t] of Object.entries(results.get(i)!.weights)) {
        tensors.push({ name: `model.layers.${i}.mla.${w}.weight`, dtype: outDtype, shape: t.shape, data: t.data });
      }
    }

    // Record the ranks each layer got, then the config files.
    const first = results.get(layers[0]!)!;
    const nope = first.config["qk_nope_head_dim"] as number;
    const rope = first.config["qk_rope_head_dim"] as number;
    const layerRanks = new Map(layers.map((i) => [i, { qRank: results.get(i)!.config["q_rank"] as number | null, kvRank: results.get(i)!.config["kv_rank"] as number }]));
    const picks = layers.filter((i) => Array.isArray(results.get(i)!.config["rope_frequency_indices"]));
    const mla: MlaConfig = {
      mlaLayers: [...layers].sort((a, b) => a - b), kvLoraRank: options.kvLoraRank, qLoraRank: options.qLoraRank,
      qkRopeHeadDim: rope, qkNopeHeadDim: nope, vHeadDim: options.vHeadDim, useLoraLayerNorm: false, layerRanks,
      ropeScaling: seedYarnScaling(base.raw["rope_scaling"] as Record<string, unknown> | null),
      ...(picks.length ? { ropeFrequencyIndices: new Map(picks.map((i) => [i, results.get(i)!.config["rope_frequency_indices"] as number[]])) } : {}),
    };
    mkdirSync(outDir, { recursive: true });
    await writeShardedSafetensors(outDir, tensors, { maxShardBytes: options.maxShardBytes ?? 2 ** 31 });
    const files = mlaConfigFiles(base, mla);
    await writeTextAtomically(join(outDir, "MLA_config.json"), JSON.stringify(files.mlaConfig, null, 2) + "\n");
    await writeTextAtomically(join(outDir, "mla_layer_config.json"), JSON.stringify(files.mlaLayerConfig, null, 2) + "\n");
    await writeTextAtomically(join(outDir, "config.json"), JSON.stringify(files.config, null, 2) + "\n");
    for (const f of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]) {
      if (existsSync(join(srcDir, f))) copyFileSync(join(srcDir, f), join(outDir, f));
    }
    const baseElements = cacheElementsPerLayer(base, null).reduce((a, b) => a + b, 0);
    const elements = cacheElementsPerLayer(base, mla).reduce((a, b) => a + b, 0);
    return {
      converter: converter.name,
      layers: layers.map((layer) => ({ layer, report: results.get(layer)!.report })),
      baseElementsPerToken: baseElements,
      elementsPerToken: elements,
      compressionRatio: baseElements / elements,
      outDir,
    };
  } finally {
    await ckpt.close();
  }
}
