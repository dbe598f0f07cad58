import { ConfigError, noGrad, ops, tidy, type Tensor } from "@ecomla/core";

/** A learning-rate schedule: linear warmup, then cosine decay. */
export interface CosineSchedule {
  /** Peak learning rate, reached at the end of warmup. */
  lr: number;
  /** Optimizer steps in the whole run. */
  totalSteps: number;
  /** Warmup steps (transformers: ceil(warmup_ratio · total)). */
  warmupSteps: number;
  /** Floor the cosine decays to (default 0). */
  minLr?: number;
  /** "cosine" (default) or "constant" (after warmup). */
  kind?: "cosine" | "constant";
}

/** Warmup steps for a ratio of the run, as transformers computes them. */
export function warmupStepsFor(ratio: number, totalSteps: number): number {
  if (!(ratio >= 0 && ratio <= 1)) throw new ConfigError(`warmup_ratio must be in [0, 1], found ${ratio}`);
  return Math.ceil(ratio * totalSteps);
}

/**
 * Learning rate of optimizer step `step` (0-based, the rate used for the update that step makes),
 * as transformers' get_cosine_schedule_with_warmup: lr·step/warmup during warmup, then
 * minLr + (lr − minLr)·½(1 + cos(π·progress)), progress = (step − warmup)/(total − warmup).
 */
export function learningRateAt(s: CosineSchedule, step: number): number {
  const minLr = s.minLr ?? 0;
  if (step < s.warmupSteps) return (s.lr * step) / Math.max(1, s.warmupSteps);
  if (s.kind === "constant") return s.lr;
  const progress = (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps);
  return minLr + (s.lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}

/**
 * Σ‖g‖² over the gradients, reduced on the device to a (1) tensor: one sum of squares per
 * gradient, then one sum over those — the caller reads it back once per optimizer step.
 */
export function gradSquaredNorm(grads: readonly Tensor[]): Tensor {
  if (grads.length === 0) throw new ConfigError("gradient norm: no parameter has a gradient (is every parameter frozen?)");
  return noGrad(() =>
    tidy(() => {
      const parts = grads.map((g) => ops.sumSquares(g.view([1, g.size])));
      return ops.sum(ops.concat(parts, 0).view([1, parts.length]));
    }),
  );
}

/** The factor AdamW's gradScale gets so the global norm is at most maxNorm (torch: max/(norm+1e-6), capped at 1). */
export function clipFactor(norm: number, maxNorm: number | null | undefined): number {
  if (!maxNorm || maxNorm <= 0 || !Number.isFinite(norm)) return 1;
  return Math.min(1, maxNorm / (norm + 1e-6));
}

