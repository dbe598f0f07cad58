import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../errors.js";
import { ConfigReader, type LlamaConfig, type RopeScaling } from "./config.js";
import { yarnMscale } from "./rope.js";

/** Per-layer ranks (the seed's `layer_rank_list` entry). */
export interface LayerRanks {
  qRank: number | null;
  kvRank: number;
}

/** Which layers are MLA and their shapes, as the seed's configs describe them. */
export interface MlaConfig {
  /** Converted layers, ascending. */
  mlaLayers: number[];
  /** Default ranks (layers without an entry in layerRanks use them). */
  kvLoraRank: number;
  qLoraRank: number | null;
  qkRopeHeadDim: number;
  qkNopeHeadDim: number;
  vHeadDim: number;
  useLoraLayerNorm: boolean;
  /** Ranks chosen per layer (dynamic ranks, KV budgets). */
  layerRanks: Map<number, LayerRanks>;
  /** The RoPE rule of the MLA layers (YaRN when the base had rope_scaling, else plain). */
  ropeScaling: RopeScaling | null;
  /**
   * ecomla's partial-RoPE layers (MHA2MLA-style): per layer, the indices of the base model's RoPE
   * frequencies (of head_dim/2) that the layer keeps, in the order of its q_pe/k_pe pairs; those
   * layers rotate with the base model's own frequencies and scaling instead of ropeScaling.
   */
  ropeFrequencyIndices?: Map<number, number[]>;
}

/** The seed's YaRN defaults (DeepseekV3YarnRotaryEmbedding's constructor). */
const YARN_DEFAULTS = { original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 0 };

/**
 * The seed's RoPE replacement for MLA layers when the base model has any rope_scaling: YaRN with
 * the base's factor and YaRN's defaults for the rest (beta_fast 32, beta_slow 1, mscale 1,
 * mscale_all_dim 0, original_max_position_embeddings 4096 — the seed's training scripts drop the
 * base's own value). Null when the base has none.
 */
export function seedYarnScaling(baseRaw: Record<string, unknown> | null | undefined): RopeScaling | null {
  if (!baseRaw) return null;
  const factor = baseRaw["factor"];
  if (typeof factor !== "number") throw new ConfigError(`rope_scaling: a "factor" is required for the YaRN replacement, found ${JSON.stringify(factor)}`);
  return { rope_type: "yarn", factor, ...YARN_DEFAULTS };
}

/** A YaRN rule read from a saved rope_scaling dict as the seed reads it: keys present, else YaRN's defaults. */
export function yarnFromDict(raw: Record<string, unknown>, source: string): RopeScaling {
  const pick = (k: keyof typeof YARN_DEFAULTS) => (typeof raw[k] === "number" ? (raw[k] as number) : YARN_DEFAULTS[k]);
  const factor = raw["factor"];
  if (typeof factor !== "number") throw new ConfigError(`${source}: rope_scaling needs a numeric "factor", found ${JSON.stringify(factor)}`);
  return {
    rope_type: "yarn",
    factor,
    original_max_position_embeddings: pick("original_max_position_embeddings"),
    beta_fast: pick("beta_fast"),
    beta_slow: pick("beta_slow"),
    mscale: pick("mscale"),
    mscale_all_dim: pick("mscale_all_dim"),
  };
}

/** The rope_scaling dict the seed writes into mla_layer_config.json for a YaRN rule. */
function yarnDict(s: RopeScaling | null): Record<string, unknown> | null {
  if (!s) return null;
  if (s.rope_type !== "yarn") return { ...s };
  return {
    beta_fast: s.beta_fast, beta_slow: s.beta_slow, factor: s.factor, mscale: s.mscale, mscale_all_dim: s.mscale_all_dim,
    ...(s.original_max_position_embeddings !== YARN_DEFAULTS.original_max_position_embeddings ? { original_max_position_embeddings: s.original_max_position_embeddings } : {}),
    type: "yarn",
  };
}

/** Softmax scale of an MLA layer: (d_nope + d_rope)^-1/2, × mscale(factor, mscale_all_dim)² when that is set (DeepSeek). */
export function mlaSoftmaxScale(cfg: Pick<MlaConfig, "qkNopeHeadDim" | "qkRopeHeadDim" | "ropeScaling">): number {
  let scale = 1 / Math.sqrt(cfg.qkNopeHeadDim + cfg.qkRopeHeadDim);
  const s = cfg.ropeScaling;
  if (s && s.rope_type === "yarn" && s.mscale_all_dim) {
    const m = yarnMscale(s.factor, s.mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

/** Ranks of layer i (its layer_rank_list entry, else the defaults). */
export function ranksOf(cfg: MlaConfig, layer: number): LayerRanks {
  return cfg.layerRanks.get(layer) ?? { qRank: cfg.qLoraRank, kvRank: cfg.kvLoraRank };
}

function parseRankList(v: unknown, source: string): Map<number, LayerRanks> {
  const out = new Map<number, LayerRanks>();
  if (v === undefined || v === null) return out;
  if (typeof v !== "object" || Array.isArray(v)) throw new ConfigError(`${source}: "layer_rank_list" must be an object {"layer": {"q_rank", "kv_rank"}}, found ${JSON.stringify(v)}`);
  for (const [k, e] of Object.entries(v as Record<string, unknown>)) {
    const entry = e as { q_rank?: unknown; kv_rank?: unknown };
    if (!/^\d+$/.test(k) || typeof entry !== "object" || entry === null || !Number.isInteger(entry.kv_rank) || !(entry.q_rank === null || Number.isInteger(entry.q_rank))) {
      throw new ConfigError(`${source}: layer_rank_list["${k}"] must be {"q_rank": int, "kv_rank": int}, found ${JSON.stringify(e)}`);
    }
    out.set(Number(k), { qRank: entry.q_rank as number | null, kvRank: entry.kv_rank as number });
  }
  return out;
}

function parseLayerKeys(raw: Record<string, unknown>, source: string, defaults: Record<string, unknown>, mlaLayers: number[], ropeScaling: RopeScaling | null): MlaConfig {
  const r = new ConfigReader({ ...defaults, ...raw }, source);
  const qLora = r.raw["q_lora_rank"] === null ? null : r.int("q_lora_rank");
  const freqRaw = r.raw["mla_rope_frequency_indices"];
  let ropeFrequencyIndices: Map<number, number[]> | undefined;
  if (freqRaw !== undefined && freqRaw !== null) {
    if (typeof freqRaw !== "object" || Array.isArray(freqRaw)) throw new ConfigError(`${source}: "mla_rope_frequency_indices" must map layers to index lists, found ${JSON.stringify(freqRaw)}`);
    ropeFrequencyIndices = new Map();
    for (const [k, v] of Object.entries(freqRaw as Record<string, unknown>)) {
      if (!/^\d+$/.test(k) || !Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0)) {
        throw new ConfigError(`${source}: mla_rope_frequency_indices["${k}"] must be a list of frequency indices, found ${JSON.stringify(v)}`);
      }
      ropeFrequencyIndices.set(Number(k), v as number[]);
    }
  }
  const cfg: MlaConfig = {
    ropeFrequencyIndices,
    mlaLayers,
    kvLoraRank: r.int("kv_lora_rank"),
    qLoraRank: qLora,
    qkRopeHeadDim: r.int("qk_rope_head_dim", undefined, 0),
    qkNopeHeadDim: r.int("qk_nope_head_dim", 0, 0),
    vHeadDim: r.int("v_head_dim"),
    useLoraLayerNorm: r.bool("use_lora_layer_norm", false),
    layerRanks: parseRankList(r.raw["layer_rank_list"], source),
    ropeScaling,
  };
  if (cfg.qkRopeHeadDim % 2 !== 0) throw new ConfigError(`${source}: qk_rope_head_dim must be even, found ${cfg.qkRopeHeadDim}`);
  return cfg;
}

// DeepseekV3Config's defaults: mla_layer_config.json is written with use_diff, so keys equal to
// these are absent from the file and must be filled back in.
const DEEPSEEK_DEFAULTS: Record<string, unknown> = {
  kv_lora_rank: 512, q_lora_rank: 1536, qk_rope_head_dim: 64, v_head_dim: 128, qk_nope_head_dim: 128,
  use_lora_layer_norm: false, layer_rank_list: {}, rope_scaling: null, rope_type: "yarn",
};

function readJson(path: string): Record<string, unknown> {
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("expected a JSON object");
    return v as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The MLA description of a model folder, or null for a plain Llama: the seed's MLA_config.json +
 * mla_layer_config.json (MLA layers = all layers not in attn_layers), or the same keys in
 * config.json (`mla_layers`, `kv_lora_rank`, …) as ecomla also writes them.
 */
export function readMlaConfig(dir: string, base: LlamaConfig): MlaConfig | null {
  const seedMla = join(dir, "MLA_config.json");
  const seedLayer = join(dir, "mla_layer_config.json");
  let cfg: MlaConfig | null = null;
  if (existsSync(seedMla) && existsSync(seedLayer)) {
    const mla = readJson(seedMla);
    const layer = readJson(seedLayer);
    const attn = mla["attn_layers"];
    if (!Array.isArray(attn) || !attn.every((x) => Number.isInteger(x))) throw new ConfigError(`${seedMla}: "attn_layers" must be a list of layer indices, found ${JSON.stringify(attn)}`);
    const nLayer = (mla["n_layer"] as number | undefined) ?? base.numHiddenLayers;
    const mlaLayers = Array.from({ length: nLayer }, (_, i) => i).filter((i) => !attn.includes(i));
    const merged = { ...DEEPSEEK_DEFAULTS, ...layer };
    const scaling = merged["rope_scaling"] as Record<string, unknown> | null;
    const ropeType = merged["rope_type"];
    const rope = scaling ? (ropeType === "yarn" ? yarnFromDict(scaling, seedLayer) : parseScalingKeepingType(scaling, seedLayer)) : null;
    cfg = parseLayerKeys(layer, seedLayer, DEEPSEEK_DEFAULTS, mlaLayers, rope);
  } else if (base.raw["mla_layers"] !== undefined) {
    const source = join(dir, "config.json");
    const layers = base.raw["mla_layers"];
    if (!Array.isArray(layers) || !layers.every((x) => Number.isInteger(x))) throw new ConfigError(`${source}: "mla_layers" must be a list of layer indices, found ${JSON.stringify(layers)}`);
    const mlaRope = base.raw["mla_rope_scaling"] as Record<string, unknown> | null | undefined;
    const rope = mlaRope !== undefined ? (mlaRope ? yarnFromDict(mlaRope, source) : null) : seedYarnScaling(base.raw["rope_scaling"] as Record<string, unknown> | null);
    cfg = parseLayerKeys(base.raw, source, {}, [...(layers as number[])].sort((a, b) => a - b), rope);
  }
  if (!cfg) return null;
  const bad = cfg.mlaLayers.find((i) => i < 0 || i >= base.numHiddenLayers);
  if (bad !== undefined) throw new ConfigError(`${dir}: MLA layer ${bad} does not exist (the model has ${base.numHiddenLayers} layers)`);
  if (cfg.vHeadDim !== base.headDim) throw new ConfigError(`${dir}: v_head_dim (${cfg.vHeadDim}) must equal the head dim (${base.headDim}): o_proj is kept from the base model`);
  return cfg;
}

function parseScalingKeepingType(raw: Record<string, unknown>, source: string): RopeScaling {
  const type = raw["rope_type"] ?? raw["type"];
  if (type === "linear" && typeof raw["factor"] === "number") return { rope_type: "linear", factor: raw["factor"] };
  throw new ConfigError(`${source}: rope_type ${JSON.stringify(type)} with this rope_scaling is not supported for MLA layers`);
}

/** The config files ecomla writes for an MLA/hybrid model: config.json keys plus the seed's two files. */
export function mlaConfigFiles(base: LlamaConfig, cfg: MlaConfig): { config: Record<string, unknown>; mlaConfig: Record<string, unknown>; mlaLayerConfig: Record<string, unknown> } {
  const rankList: Record<string, { q_rank: number | null; kv_rank: number }> = {};
  for (const i of cfg.mlaLayers) {
    const r = ranksOf(cfg, i);
    rankList[String(i)] = { q_rank: r.qRank, kv_rank: r.kvRank };
  }
  const keys = {
    kv_lora_rank: cfg.kvLoraRank, q_lora_rank: cfg.qLoraRank, qk_rope_head_dim: cfg.qkRopeHeadDim, qk_nope_head_dim: cfg.qkNopeHeadDim,
    v_head_dim: cfg.vHeadDim, use_lora_layer_norm: cfg.useLoraLayerNorm, layer_rank_list: rankList,
  };
  const attnLayers = Array.from({ length: base.numHiddenLayers }, (_, i) => i).filter((i) => !cfg.mlaLayers.includes(i));
  return {
    config: {
      ...base.raw, head_dim: base.headDim, mla_layers: cfg.mlaLayers, ...keys, mla_rope_scaling: yarnDict(cfg.ropeScaling),
      ...(cfg.ropeFrequencyIndices ? { mla_rope_frequency_indices: Object.fromEntries([...cfg.ropeFrequencyIndices].map(([k, v]) => [String(k), v])) } : {}),
    },
    mlaConfig: {
      d_model: base.hiddenSize, rms_norm_eps: base.rmsNormEps, vocab_size: base.vocabSize, d_inner: base.numAttentionHeads * base.headDim,
      d_xb: base.numKeyValueHeads * base.headDim, intermediate_size: base.intermediateSize, hidden_act: base.raw["hidden_act"] ?? "silu",
      n_layer: base.numHiddenLayers, attn_layers: attnLayers,
    },
    mlaLayerConfig: {
      hidden_size: base.numAttentionHeads * base.headDim, intermediate_size: base.intermediateSize, num_attention_heads: base.numAttentionHeads,
      llama_num_key_value_heads: base.numKeyValueHeads, mla_num_key_value_heads: base.numAttentionHeads,
      max_position_embeddings: base.maxPositionEmbeddings, rope_theta: base.ropeTheta, attention_bias: false, attention_dropout: 0,
      rope_scaling: yarnDict(cfg.ropeScaling), rope_type: "yarn", ...keys,
      q_energy_ratio: null, kv_energy_ratio: null, qkv_rank_divisor: 8, use_fixed_rank_for_first_and_last_block: true,
      model_type: "deepseek_v3",
    },
  };
}
