import { ShapeError, ops, type Tensor } from "@ecomla/core";
import type { Reduction } from "./options.js";

/** How per-position losses ℓ_r become the scalar: loss = scale · Σ_r weights_r · ℓ_r (weights absent = all 1). */
export interface RowReduction {
  /** (N) f32 */
  weights?: Tensor;
  scale: number;
}

/**
 * Which positions count, as a (N) f32 0/1 tensor computed on the device (no read-back, so the
 * loss stays asynchronous): the mask, times "label ≥ 0" when labels are given. Undefined = all.
 */
export function countedPositions(loss: string, rows: number, mask?: Tensor, labels?: Tensor): Tensor | undefined {
  if (mask && (mask.size !== rows || mask.dtype !== "f32")) throw new ShapeError(`${loss}: mask must be (${rows}) f32, found [${mask.shape.join(", ")}] ${mask.dtype}`);
  if (!labels) return mask;
  if (labels.size !== rows || labels.dtype !== "i32") throw new ShapeError(`${loss}: labels must be (${rows}) i32, found [${labels.shape.join(", ")}] ${labels.dtype}`);
  // For integers l, relu(l+1) − relu(l) is exactly 1 when l ≥ 0 and 0 when l < 0: an "is counted"
  // indicator from the elementwise ops every backend has (there is no comparison op).
  const l = ops.reshape(ops.cast(labels, "f32"), [rows]);
  const valid = ops.sub(ops.relu(ops.addScalar(l, 1)), ops.relu(l));
  return mask ? ops.mul(ops.reshape(mask, [rows]), valid) : valid;
}

/** The weights and scale of a reduction over N rows of which `counted` count (undefined = all). */
export function rowReduction(loss: string, rows: number, reduction: Reduction, seqLen: number | null, counted?: Tensor): RowReduction {
  const weights = counted ? ops.reshape(counted, [rows]) : undefined;
  switch (reduction) {
    case "sum":
      return { weights, scale: 1 };
    case "batchmean": {
      if (!seqLen || rows % seqLen !== 0) throw new ShapeError(`${loss}: batchmean needs N = ${rows} positions to be whole sequences of seqLen ${seqLen}`);
      return { weights, scale: seqLen / rows };
    }
    case "mean": {
      if (!weights) return { scale: 1 / Math.max(1, rows) };
      // Normalised on the device; a floor of 1 makes a fully masked batch give 0, not NaN.
      const count = ops.sumAll(weights);
      return { weights: ops.div(weights, ops.maximum(count, ops.fullLike(count, 1))), scale: 1 };
    }
  }
}

/** Σ_r w_r·perRow_r · (scale·factor) → scalar; differentiable. perRow (N). */
export function reduceRows(perRow: Tensor, red: RowReduction, factor = 1): Tensor {
  const weighted = red.weights ? ops.mul(perRow, red.weights) : perRow;
  return ops.scale(ops.sumAll(weighted), red.scale * factor);
}

/**
 * log softmax(x/τ) over the last axis of x (N, V), written with primitive ops. The row max is
 * taken without gradient: log-softmax does not change under a per-row shift, so that is exact.
 */
export function logSoftmax(x: Tensor, temperature = 1): Tensor {
  const rows = x.shape[0]!;
  const z = temperature === 1 ? x : ops.scale(x, 1 / temperature);
  const shifted = ops.sub(z, ops.max(z).view([rows, 1]));
  return ops.sub(shifted, ops.reshape(ops.log(ops.sum(ops.exp(shifted))), [rows, 1]));
}
