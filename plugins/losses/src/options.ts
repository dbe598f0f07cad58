import { ConfigError } from "@ecomla/core";

/** How per-position losses become the scalar: mean over counted positions, their sum, or the seed's batchmean. */
export type Reduction = "mean" | "sum" | "batchmean";

/** Options shared by every loss of this package (each loss reads the ones it uses). */
export interface LossOptions {
  /** τ: both distributions are softened by it and KL-type terms are multiplied by τ², so gradients keep their size (default 1). */
  temperature?: number;
  /** β of the generalised JSD: m = β·p_t + (1−β)·p_s; 0 is forward KL, 1 reverse KL (default 0.5). */
  beta?: number;
  /** Weight of the KL term of `kl-ce-mix` (the seed's `kl_weight`, default 1). */
  klWeight?: number;
  /** Weight of the CE term of `kl-ce-mix` (the seed's `ce_weight`, default 0). */
  ceWeight?: number;
  /**
   * "mean" (default): Σ over counted positions / their count. "sum": Σ over counted positions.
   * "batchmean": Σ / number of sequences, as the seed's F.kl_div(..., reduction="batchmean") over
   * (B, T, V) logits; needs `seqLen`. In `kl-ce-mix` it applies to the KL term only (CE stays a mean, as HF computes it).
   */
  reduction?: Reduction;
  /** Tokens per sequence, for "batchmean" (number of sequences = N / seqLen). */
  seqLen?: number;
  /** `topk-kl`: renormalise the teacher's top-k log-probs to sum to 1 over the k ids (default false: the missing mass is dropped). */
  renormalize?: boolean;
}

/** Fully resolved options (defaults filled in). */
export type ResolvedLossOptions = Required<Omit<LossOptions, "seqLen">> & { seqLen: number | null };

/** Config keys accepted for each option: camelCase, and the seed's snake_case spellings. */
const KEYS: Record<string, keyof LossOptions> = {
  temperature: "temperature",
  beta: "beta",
  klWeight: "klWeight",
  kl_weight: "klWeight",
  ceWeight: "ceWeight",
  ce_weight: "ceWeight",
  reduction: "reduction",
  seqLen: "seqLen",
  seq_len: "seqLen",
  renormalize: "renormalize",
};

function finite(key: string, v: unknown, check: (x: number) => boolean, expected: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) throw new ConfigError(`loss options: "${key}" must be ${expected}, found ${JSON.stringify(v)}`);
  return v;
}

/**
 * Validate loss options given in camelCase or as the seed's config keys (`kl_weight`, `ce_weight`,
 * `seq_len`); unknown keys are an error, so a typo in a config does not silently change the loss.
 */
export function resolveLossOptions(raw: LossOptions | Record<string, unknown> = {}): ResolvedLossOptions {
  const out: ResolvedLossOptions = { temperature: 1, beta: 0.5, klWeight: 1, ceWeight: 0, reduction: "mean", seqLen: null, renormalize: false };
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined || value === null) continue;
    const name = KEYS[key];
    if (!name) throw new ConfigError(`loss options: unknown key "${key}"; expected one of ${Object.keys(KEYS).join(", ")}`);
    switch (name) {
      case "temperature":
        out.temperature = finite(key, value, (x) => x > 0, "a number > 0");
        break;
      case "beta":
        out.beta = finite(key, value, (x) => x >= 0 && x <= 1, "a number in [0, 1]");
        break;
      case "klWeight":
      case "ceWeight":
        out[name] = finite(key, value, (x) => x >= 0, "a number ≥ 0");
        break;
      case "seqLen":
        out.seqLen = finite(key, value, (x) => Number.isInteger(x) && x >= 1, "an integer ≥ 1");
        break;
      case "reduction":
        if (value !== "mean" && value !== "sum" && value !== "batchmean") throw new ConfigError(`loss options: "${key}" must be "mean", "sum" or "batchmean", found ${JSON.stringify(value)}`);
        out.reduction = value;
        break;
      case "renormalize":
        if (typeof value !== "boolean") throw new ConfigError(`loss options: "${key}" must be true or false, found ${JSON.stringify(value)}`);
        out.renormalize = value;
        break;
    }
  }
  if (out.reduction === "batchmean" && out.seqLen === null) throw new ConfigError(`loss options: reduction "batchmean" needs "seqLen" (tokens per sequence)`);
  return out;
}
