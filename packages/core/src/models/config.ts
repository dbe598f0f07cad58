import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.js";

/** `rope_scaling` of a Llama config.json (the types ecomla understands). */
export type RopeScaling =
  | {
      rope_type: "llama3";
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    }
  | { rope_type: "linear"; factor: number }
  | {
      rope_type: "yarn";
      factor: number;
      beta_fast: number;
      beta_slow: number;
      mscale: number;
      mscale_all_dim: number;
      original_max_position_embeddings: number;
    };

/** A Llama-family config (HF LlamaConfig keys, camel-cased), validated. */
export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** d_h: `head_dim` when present, else hidden_size / num_attention_heads. */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  /** The config.json object as read (other keys are kept for writing back). */
  raw: Record<string, unknown>;
}

/** Reads keys of a parsed config.json with errors that name the file, the key, expected and found. */
export class ConfigReader {
  constructor(
    readonly raw: Record<string, unknown>,
    readonly source: string,
  ) {}

  private fail(key: string, expected: string): never {
    const v = this.raw[key];
    throw new ConfigError(`${this.source}: key "${key}" must be ${expected}, found ${v === undefined ? "nothing (missing)" : JSON.stringify(v)}`);
  }

  /** A positive integer (or a default when absent and one is given). */
  int(key: string, fallback?: number, min = 1): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(key, `an integer ≥ ${min}`);
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) this.fail(key, `an integer ≥ ${min}`);
    return v;
  }

  /** A positive finite number. */
  num(key: string, fallback?: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(key, "a positive number");
    }
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) this.fail(key, "a positive number");
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") this.fail(key, "true or false");
    return v;
  }

  /** A token id, a list of ids, or null. */
  tokenIds(key: string): number | number[] | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v === "number" && Number.isInteger(v)) return v;
    if (Array.isArray(v) && v.every((x) => Number.isInteger(x))) return v as number[];
    this.fail(key, "a token id, a list of ids, or null");
  }
}

function parseRopeScaling(r: ConfigReader): RopeScaling | null {
  const v = r.raw["rope_scaling"];
  if (v === undefined || v === null) return null;
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new ConfigError(`${r.source}: key "rope_scaling" must be an object or null, found ${JSON.stringify(v)}`);
  }
  const s = new ConfigReader(v as Record<string, unknown>, `${r.source} (rope_scaling)`);
  const type = (s.raw["rope_type"] ?? s.raw["type"]) as string | undefined;
  switch (type) {
    case "llama3":
      return {
        rope_type: "llama3",
        factor: s.num("factor"),
        low_freq_factor: s.num("low_freq_factor"),
        high_freq_factor: s.num("high_freq_factor"),
        original_max_position_embeddings: s.int("original_max_position_embeddings"),
      };
    case "linear":
      return { rope_type: "linear", factor: s.num("factor") };
    case "yarn":
      return {
        rope_type: "yarn",
        factor: s.num("factor"),
        beta_fast: s.num("beta_fast", 32),
        beta_slow: s.num("beta_slow", 1),
        mscale: s.num("mscale", 1),
        mscale_all_dim: (s.raw["mscale_all_dim"] as number | undefined) ?? 0,
        original_max_position_embeddings: s.int("original_max_position_embeddings", 4096),
      };
    case "default":
      return null;
    default:
      throw new ConfigError(`${r.source}: rope_scaling type ${JSON.stringify(type)} is not supported (supported: llama3, linear, yarn, default)`);
  }
}

/** Validate a parsed LlamaForCausalLM config.json; `source` names the file in errors. */
export function parseLlamaConfig(raw: unknown, source = "config.json"): LlamaConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: expected a JSON object`);
  const r = new ConfigReader(raw as Record<string, unknown>, source);
  const hiddenSize = r.int("hidden_size");
  const numAttentionHeads = r.int("num_attention_heads");
  const numKeyValueHeads = r.int("num_key_value_heads", numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ConfigError(`${source}: num_key_value_heads (${numKeyValueHeads}) must divide num_attention_heads (${numAttentionHeads})`);
  }
  if (r.raw["head_dim"] == null && hiddenSize % numAttentionHeads !== 0) {
    throw new ConfigError(`${source}: hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numAttentionHeads}) and no head_dim is given`);
  }
  const headDim = r.int("head_dim", hiddenSize / numAttentionHeads);
  if (headDim % 2 !== 0) throw new ConfigError(`${source}: head_dim must be even for RoPE, found ${headDim}`);
  if (r.raw["attention_bias"] === true || r.raw["mlp_bias"] === true) {
    throw new ConfigError(`${source}: attention_bias / mlp_bias true is not supported (Llama checkpoints have no biases)`);
  }
  return {
    vocabSize: r.int("vocab_size"),
    hiddenSize,
    intermediateSize: r.int("intermediate_size"),
    numHiddenLayers: r.int("num_hidden_layers"),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: r.num("rms_norm_eps", 1e-6),
    ropeTheta: r.num("rope_theta", 10000),
    ropeScaling: parseRopeScaling(r),
    maxPositionEmbeddings: r.int("max_position_embeddings", 2048),
    tieWordEmbeddings: r.bool("tie_word_embeddings", false),
    bosTokenId: (r.tokenIds("bos_token_id") as number | null) ?? null,
    eosTokenId: r.tokenIds("eos_token_id"),
    raw: r.raw,
  };
}

/** Read and validate `path` (a config.json). */
export function readLlamaConfig(path: string): LlamaConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseLlamaConfig(raw, path);
}
